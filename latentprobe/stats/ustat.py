"""Intervals for a mean over pairs of distinct instances (a degree-2 U-statistic).

The mean off-diagonal similarity ``U = 1/(n(n-1)) sum_{i != j} s_ij`` averages ``n(n-1)/2`` pair
values, but the pairs are not independent: every instance enters ``n - 1`` of them. Hoeffding's
decomposition gives ``var(U) ~ 4 var(h_1(Z)) / n`` where ``h_1(z) = E[s(z, Z')]``; an interval that
resamples each instance's mean similarity to the others (``r_i``) as if those were the
observations estimates ``var(h_1) / n``, a quarter of it: the interval is half as wide as it
should be and covered 0.66-0.72 at nominal 0.95 in simulation
(:func:`latentprobe.geometry.similarity_coverage`).

Two intervals that respect the structure:

* :func:`jackknife_u_interval` (the default of :func:`latentprobe.geometry.across_instances`):
  leave one *instance* out of the U-statistic. From the per-instance means alone,
  ``U_(-i) = (n(n-1) U - 2(n-1) r_i) / ((n-1)(n-2))``, so the jackknife costs O(n) once the
  ``r_i`` are known (no pair matrix is needed). The interval is ``U +- t_{n-1} se_J`` with the
  jackknife standard error ``se_J^2 = (n-1)/n sum_i (U_(-i) - mean U_(-.))^2``, consistent for
  U-statistics (Arvesen 1969).
* :func:`pair_bootstrap_u_interval`: resample instances with replacement and average the pair
  values over pairs of *different original* instances (an instance is never paired with its own
  copy, which would add the diagonal 1s); percentile interval. It needs the n x n matrix.

References: Hoeffding (1948), "A class of statistics with asymptotically normal distribution";
Arvesen (1969), "Jackknifing U-statistics", Ann. Math. Statist. 40.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float
from scipy import stats

from latentprobe.errors import StatsInputError
from latentprobe.stats.resample import resample_indices
from latentprobe.validate import positive_int, probability

__all__ = ["jackknife_u_interval", "pair_bootstrap_u_interval"]


def jackknife_u_interval(
    row_means: Float[np.ndarray, "n *m"], *, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Leave-one-instance-out jackknife t interval of a mean over pairs of distinct instances.

    Parameters
    ----------
    row_means : array, shape (n,) or (n, m)
        ``row_means[i] = 1/(n-1) sum_{j != i} s_ij``: each instance's mean pair value with the
        other instances, for one or ``m`` statistics (columns, e.g. latent steps). The pair values
        must be symmetric (``s_ij = s_ji``), as cosines are.
    level : float, default 0.95
        Nominal coverage.

    Returns
    -------
    estimate, low, high, se : numpy.ndarray, shape (m,) (or 0-d for 1-D input)
        The U-statistic (mean of ``row_means``), the bounds ``estimate +- t_{n-1, (1+level)/2} se``
        and the jackknife standard error. NaN bounds and ``se`` when ``n < 3``.

    Raises
    ------
    StatsInputError
        When ``row_means`` is not 1-D or 2-D, is empty, or holds non-finite values.

    Notes
    -----
    The interval is about uncertainty over new sets of instances drawn like these; it does not
    cover dependence *between* instances (several questions about one image): pass one instance
    per independent unit, or the interval is too narrow.

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe.stats import jackknife_u_interval
    >>> s = np.array([[1.0, 0.2, 0.4], [0.2, 1.0, 0.6], [0.4, 0.6, 1.0]])
    >>> r = (s.sum(axis=1) - 1.0) / 2  # each instance's mean similarity to the others
    >>> est, low, high, se = jackknife_u_interval(r)
    >>> round(float(est), 3), bool(low < est < high)
    (0.4, True)
    """
    probability(level, "level", hint="e.g. 0.95", error=StatsInputError)
    r = np.asarray(row_means, dtype=np.float64)
    if r.ndim not in (1, 2) or r.shape[0] == 0:
        raise StatsInputError(f"row_means must be a non-empty (n,) or (n, m) array, got shape {r.shape}.")
    if not np.all(np.isfinite(r)):
        raise StatsInputError("row_means holds NaN or infinite values; each instance needs a finite mean similarity.")
    n = r.shape[0]
    est = r.mean(axis=0)
    if n < 3:
        nan = np.full_like(est, np.nan)
        return est, nan, nan.copy(), nan.copy()
    loo = (n * (n - 1) * est - 2.0 * (n - 1) * r) / ((n - 1) * (n - 2))
    se = np.sqrt((n - 1) / n * ((loo - loo.mean(axis=0)) ** 2).sum(axis=0))
    half = float(stats.t.ppf(0.5 + level / 2.0, df=n - 1)) * se
    return est, est - half, est + half, se


def pair_bootstrap_u_interval(
    pairs: Float[np.ndarray, "*m n n"], *, level: float = 0.95, n_boot: int = 1000, seed: int | None = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Instance-level percentile bootstrap of a mean over pairs, never pairing an instance with its copy.

    A resample draws ``n`` instances with replacement; with ``c_i`` copies of instance ``i`` the
    resampled statistic is ``sum_{i != j} c_i c_j s_ij / sum_{i != j} c_i c_j`` (pairs of copies of
    one instance are left out). All resamples come from :func:`latentprobe.stats.resample_indices`.

    Parameters
    ----------
    pairs : array, shape (n, n) or (m, n, n)
        Symmetric pair values; the diagonal is ignored.
    level : float, default 0.95
        Nominal coverage.
    n_boot : int, default 1000
        Resamples.
    seed : int or None, default 0
        Seed of the resamples.

    Returns
    -------
    estimate, low, high : numpy.ndarray, shape (m,) (or 0-d for 2-D input)

    Raises
    ------
    StatsInputError
        When ``pairs`` is not square, has fewer than 2 instances, or holds non-finite values.

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe.stats import pair_bootstrap_u_interval
    >>> x = np.random.default_rng(0).normal(size=(30, 5)) + 1.0
    >>> u = x / np.linalg.norm(x, axis=1, keepdims=True)
    >>> est, low, high = pair_bootstrap_u_interval(u @ u.T, n_boot=200)
    >>> bool(low < est < high)
    True
    """
    probability(level, "level", hint="e.g. 0.95", error=StatsInputError)
    positive_int(n_boot, "n_boot", error=StatsInputError)
    s = np.asarray(pairs, dtype=np.float64)
    squeeze = s.ndim == 2
    s = s[None] if squeeze else s
    if s.ndim != 3 or s.shape[1] != s.shape[2] or s.shape[1] < 2:
        raise StatsInputError(f"pairs must be an (n, n) or (m, n, n) array with n >= 2, got shape {np.shape(pairs)}.")
    if not np.all(np.isfinite(s)):
        raise StatsInputError("pairs holds NaN or infinite values.")
    n = s.shape[1]
    off = s.copy()
    idx = np.arange(n)
    off[:, idx, idx] = 0.0
    est = off.sum(axis=(1, 2)) / (n * (n - 1))
    boots = []
    for block in resample_indices(n, n_boot, seed):
        counts = np.zeros((block.shape[0], n))
        np.add.at(counts, (np.arange(block.shape[0])[:, None], block), 1.0)
        num = np.stack([((counts @ off_m) * counts).sum(axis=1) for off_m in off], axis=1)
        den = n * n - (counts ** 2).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            boots.append(num / den[:, None])
    boot = np.concatenate(boots)
    boot = boot[np.isfinite(boot).all(axis=1)]  # a resample of one instance repeated has no pair
    alpha = 1.0 - level
    low, high = np.quantile(boot, [alpha / 2.0, 1.0 - alpha / 2.0], axis=0)
    if squeeze:
        return est[0], low[0], high[0]
    return est, low, high
