"""The interval engines: Tango's score interval, Wilson's interval, the studentised bootstrap, BCa.

Every interval of latentprobe comes from one of four engines, chosen by the kind of outcome
(:func:`latentprobe.stats.paired_difference_ci` picks them; :mod:`latentprobe.stats.coverage`
measures them):

* **paired 0/1 outcomes** (accuracy change): Tango's asymptotic score interval for the
  difference of paired proportions (Tango 1998, *Statistics in Medicine* 17:891-908), the
  set of differences ``delta`` whose score statistic ``|T(delta)| <= z``. It is never of zero
  width (with no discordant pair it is ``+-z**2 / (n + z**2)``), and its p-value is that of the
  score test it inverts, ``T(0) = (gain - loss) / sqrt(gain + loss)`` (McNemar's asymptotic test
  without continuity correction), so "the interval excludes 0" and "p < 1 - level" are the same
  event by construction. Fagerland, Lydersen and Laake (2014, *Statistics in Medicine*
  33:2850-2875) recommend both. The closed form of the constrained maximum-likelihood estimate
  follows Tango (1998), as implemented in ``Tango_asymptotic_score_CI_paired_2x2.R`` of the R
  package contingencytables (github.com/ocbe-uio/contingencytables, commit 1f25f3a).
* **one-sample 0/1 outcomes** (accuracy, flip rate): Wilson's score interval (the same as
  ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``), never of zero width.
* **means of continuous outcomes** (one sample, or the differences of a paired sample): the
  studentised bootstrap (bootstrap-t; Efron and Tibshirani 1993, ch. 12): ``t* = (mean* - mean)
  / se*`` over resamples, the interval ``[mean - t*_(1-a/2) se, mean - t*_(a/2) se]``. It reached
  the nominal 0.95 on skewed outcomes at n = 30 where BCa and the percentile interval did not
  (``benchmarks/stats_coverage.py``; :func:`latentprobe.stats.coverage.coverage_continuous`).
* **other statistics** (a median, a trimmed mean): BCa (Efron 1987), computed exactly as
  :func:`scipy.stats.bootstrap` with ``method="BCa"`` computes it, from the documented resamples
  of :func:`latentprobe.stats.bootstrap.resample_indices` (for ``n_boot * n <= 2**24`` they are
  the very resamples scipy draws with ``rng=default_rng(seed)``).

The functions here work on arrays of many samples at once (one row per sample), so that the
simulation of :mod:`latentprobe.stats.coverage` runs the same code as a single call.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
from scipy import stats as _sps
from scipy.special import ndtr, ndtri

__all__: list[str] = []

_BISECTIONS = 64  # halves the width-2 bracket to 1e-19: below float64 resolution at every bound


def z_of(level: float) -> float:
    """The two-sided normal quantile ``z_(1 - (1 - level)/2)``."""
    return float(ndtri(0.5 + float(level) / 2.0))


# --------------------------------------------------------------------------- paired 0/1: Tango
def tango_statistic(delta: np.ndarray, gain: np.ndarray, loss: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Tango's score statistic ``T(delta)`` for the paired difference ``(gain - loss) / n``.

    ``gain`` counts the pairs with outcome 0 before and 1 after, ``loss`` the pairs 1 before and
    0 after; ``T`` decreases in ``delta`` and is 0 at the estimate. ``T`` is 0 where its
    numerator is 0 (so that ``T(0) = 0`` with no discordant pair).
    """
    d, g, l, nn = (np.asarray(v, dtype=np.float64) for v in (delta, gain, loss, n))
    a = 2.0 * nn
    b = -g - l + (2.0 * nn - g + l) * d
    c = -l * d * (1.0 - d)
    p21 = (np.sqrt(np.maximum(b * b - 4.0 * a * c, 0.0)) - b) / (2.0 * a)
    num = g - l - nn * d
    den = np.sqrt(np.maximum(nn * (2.0 * p21 + d * (1.0 - d)), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = num / den
    t = np.where(num == 0.0, 0.0, t)
    return np.where(np.isnan(t), np.where(num > 0, np.inf, -np.inf), t)


def tango_limits(gain: np.ndarray, loss: np.ndarray, n: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Tango's interval ``{delta : |T(delta)| <= z}`` by bisection, element-wise over arrays of counts."""
    z = z_of(level)
    g, l, nn = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (gain, loss, n)))
    est = (g - l) / nn
    lo, hi = np.full(est.shape, -1.0), est.copy()  # lower limit: T(delta) > z below it
    for _ in range(_BISECTIONS):
        mid = (lo + hi) / 2.0
        above = tango_statistic(mid, g, l, nn) > z
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    low = hi
    lo, hi = est.copy(), np.ones(est.shape)  # upper limit: T(delta) < -z above it
    for _ in range(_BISECTIONS):
        mid = (lo + hi) / 2.0
        below = tango_statistic(mid, g, l, nn) < -z
        lo, hi = np.where(below, lo, mid), np.where(below, mid, hi)
    return low, lo


def score_p_value(gain: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Two-sided p-value of the score test of ``delta = 0`` that Tango's interval inverts.

    ``T(0) = (gain - loss) / sqrt(gain + loss)`` (McNemar's asymptotic statistic without
    continuity correction); ``p = 2 * Phi(-|T(0)|)``, 1 with no discordant pair.
    """
    g, l = np.asarray(gain, dtype=np.float64), np.asarray(loss, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t0 = np.where(g + l > 0, np.abs(g - l) / np.sqrt(g + l), 0.0)
    return np.minimum(1.0, 2.0 * ndtr(-t0))


def mcnemar_exact_p(gain: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """McNemar's exact two-sided p-value ``min(1, 2 * Binom(b + c, 1/2).cdf(min(b, c)))``; 1 with no discordant pair."""
    g, l = np.asarray(gain, dtype=np.int64), np.asarray(loss, dtype=np.int64)
    p = np.minimum(1.0, 2.0 * _sps.binom.cdf(np.minimum(g, l), g + l, 0.5))
    return np.where(g + l == 0, 1.0, p)


# --------------------------------------------------------------------------- one-sample 0/1: Wilson
def wilson_limits(k: np.ndarray, n: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson's score interval of a proportion ``k / n``, element-wise."""
    z = z_of(level)
    kk, nn = np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64)
    p = kk / nn
    centre = (kk + z * z / 2.0) / (nn + z * z)
    half = z * np.sqrt(nn * p * (1.0 - p) + z * z / 4.0) / (nn + z * z)
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


# --------------------------------------------------------------------------- resampled means
def resampled_means(x: np.ndarray, index_blocks: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Means and population variances of every row of ``x [m, n]`` over every resample.

    ``index_blocks`` yields ``[k, n]`` index matrices (:func:`~latentprobe.stats.bootstrap.resample_indices`);
    each is turned into counts, so a block costs one matrix product. The rows are centred first
    (variance is shift-invariant), which keeps ``E*[x**2] - E*[x]**2`` accurate.

    Returns
    -------
    (means, variances) : two arrays ``[m, n_boot]``
    """
    n = x.shape[1]
    centre = x.mean(axis=1, keepdims=True)
    xc = x - centre
    means, variances = [], []
    for idx in index_blocks:
        k = idx.shape[0]
        flat = (idx + n * np.arange(k)[:, None]).ravel()
        w = np.bincount(flat, minlength=k * n).reshape(k, n).astype(np.float64) / n
        m1 = xc @ w.T
        m2 = (xc * xc) @ w.T
        means.append(m1 + centre)
        variances.append(np.maximum(m2 - m1 * m1, 0.0))
    return np.concatenate(means, axis=1), np.concatenate(variances, axis=1)


def _quantiles_sorted(s: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row-wise ``numpy.quantile(..., method="linear")`` of pre-sorted rows ``s`` at per-row levels ``q``,
    with infinite order statistics kept (a quantile next to an infinite one is that infinity)."""
    b = s.shape[1]
    pos = np.clip(q, 0.0, 1.0) * (b - 1)
    i = np.floor(pos).astype(np.int64)
    j = np.minimum(i + 1, b - 1)
    f = pos - i
    rows = np.arange(s.shape[0])
    lo, hi = s[rows, i], s[rows, j]
    with np.errstate(invalid="ignore"):
        out = lo + (hi - lo) * f
    return np.where(np.isfinite(lo) & np.isfinite(hi), out, np.where(f > 0, hi, lo))


def _inverse_quantile(s: np.ndarray, t0: float) -> float:
    """``F(t0)``: the level at which the quantile function of :func:`_quantiles_sorted` on the sorted
    row ``s`` reaches ``t0`` (the largest such level where it is flat or jumps)."""
    b = s.size
    k = int(np.searchsorted(s, t0, side="right")) - 1
    if k < 0:
        return 0.0
    if k >= b - 1:
        return 1.0
    lo, hi = s[k], s[k + 1]
    pos = float(k)
    if np.isfinite(lo) and np.isfinite(hi) and hi > lo:
        pos += (t0 - lo) / (hi - lo)
    return pos / (b - 1)


def studentized_rows(x: np.ndarray, index_blocks: Iterable[np.ndarray], level: float, *, fallback: bool = True
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Studentised bootstrap interval of the mean of every row of ``x [m, n]``, and its p-value.

    ``se = sd(x, ddof=1) / sqrt(n)`` and likewise ``se*`` on each resample; ``t* = (mean* -
    mean) / se*`` (a resample without spread has ``t* = +-inf`` by the sign of ``mean* - mean``,
    0 when that is 0). The interval is ``[mean - q(1 - a/2) se, mean - q(a/2) se]`` with ``q`` the
    linear-interpolation quantile of ``t*``. The p-value of ``mean = 0`` is ``2 min(F, 1 - F)``
    with ``F`` the inverse of the same quantile function at ``t0 = mean / se``, so the interval
    excludes 0 exactly when ``p < 1 - level`` (up to ties among the ``t*``). A constant row gets
    ``[v, v]`` and ``p = 1`` if ``v == 0`` else 0.

    With few distinct values (a point mass and a handful of other values) many resamples have
    almost no spread, their ``t*`` explode and a limit can be infinite or absurdly far out. With
    ``fallback`` a row whose interval leaves ``[min - span, max + span]`` of its own values
    (``span = max - min``) gets the BCa interval of the same resamples instead, with ``p = NaN``
    (BCa inverts no test here).

    Returns
    -------
    (mean, low, high, p) : four arrays ``[m]``; ``p`` is NaN on the rows that fell back to BCa
    """
    m, n = x.shape
    est = x.mean(axis=1)
    const = np.all(x == x[:, :1], axis=1)
    est = np.where(const, x[:, 0], est)
    low, high = est.copy(), est.copy()
    p = np.where(est == 0.0, 1.0, 0.0)
    var = ~const
    if not var.any():
        return est, low, high, p
    xv = x[var]
    mu = est[var]
    se = xv.std(axis=1, ddof=1) / np.sqrt(n)
    means, pvar = resampled_means(xv, index_blocks)
    # a resample of one repeated value has variance 0, computed as rounding noise: read it as 0
    pvar = np.where(pvar <= 1e-20 * (xv.var(axis=1) + np.abs(mu) ** 2)[:, None], 0.0, pvar)
    se_b = np.sqrt(pvar * n / (n - 1.0)) / np.sqrt(n)
    num = means - mu[:, None]
    num = np.where(np.abs(num) <= 1e-13 * (np.abs(xv).max(axis=1))[:, None], 0.0, num)  # rounding noise
    with np.errstate(divide="ignore", invalid="ignore"):
        t = num / se_b
    t = np.where(se_b > 0, t, np.where(num == 0, 0.0, np.where(num > 0, np.inf, -np.inf)))
    t.sort(axis=1)
    alpha = 1.0 - float(level)
    q_lo = _quantiles_sorted(t, np.full(len(mu), alpha / 2.0))
    q_hi = _quantiles_sorted(t, np.full(len(mu), 1.0 - alpha / 2.0))
    with np.errstate(invalid="ignore"):
        low[var] = mu - q_hi * se
        high[var] = mu - q_lo * se
    t0 = mu / se
    cdf = np.array([_inverse_quantile(t[r], t0[r]) for r in range(len(mu))])
    p[var] = np.minimum(1.0, 2.0 * np.minimum(cdf, 1.0 - cdf))
    span = xv.max(axis=1) - xv.min(axis=1)
    with np.errstate(invalid="ignore"):
        bad = ~((low[var] >= xv.min(axis=1) - span) & (high[var] <= xv.max(axis=1) + span))
    if fallback and bad.any():
        rows = np.flatnonzero(var)[bad]
        for r, k in zip(rows, np.flatnonzero(bad)):
            jack = (x[r].sum() - x[r]) / (n - 1)
            low[r], high[r] = bca_interval(float(est[r]), means[k], jack, level)
            p[r] = np.nan
    return est, low, high, p


def percentile_rows(x: np.ndarray, index_blocks: Iterable[np.ndarray], level: float
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The percentile bootstrap interval of the mean of every row (the method used before; for comparison).

    Returns
    -------
    (mean, low, high) : three arrays ``[m]``
    """
    means, _ = resampled_means(x, index_blocks)
    alpha = 1.0 - float(level)
    lo, hi = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0], axis=1)
    const = np.all(x == x[:, :1], axis=1)
    est = np.where(const, x[:, 0], x.mean(axis=1))
    return est, np.where(const, est, lo), np.where(const, est, hi)


# --------------------------------------------------------------------------- BCa, any statistic
def bca_interval(theta_hat: float, theta_boot: np.ndarray, theta_jack: np.ndarray, level: float) -> tuple[float, float]:
    """BCa limits from the statistic, its resampled values and its leave-one-out values.

    Follows :func:`scipy.stats.bootstrap` (``method="BCa"``) step for step: ``z0`` from the
    mid-rank share of resamples below the estimate (values within rounding of it count as ties),
    the acceleration from the jackknife, and the linear-interpolation quantiles of ``theta_boot``
    at the adjusted levels.
    """
    b = theta_boot.size
    # a resample that permutes the sample gives theta_hat up to rounding: a tie, whichever way it rounded
    tol = 1e-12 * max(1.0, abs(theta_hat), float(np.max(np.abs(theta_boot))))
    below, at_most = np.count_nonzero(theta_boot < theta_hat - tol), np.count_nonzero(theta_boot <= theta_hat + tol)
    share = (below + at_most) / (2.0 * b)
    z0 = ndtri(share)
    nj = float(theta_jack.size)
    u = (nj - 1.0) * (theta_jack.mean() - theta_jack)
    den = np.sum(u ** 2) / nj ** 2
    a_hat = (np.sum(u ** 3) / nj ** 3) / 6.0 / den ** 1.5 if den > 0 else 0.0
    alpha = (1.0 - float(level)) / 2.0
    z_a = float(ndtri(alpha))
    levels = []
    for zz in (z_a, -z_a):
        num = z0 + zz
        levels.append(ndtr(z0 + num / (1.0 - a_hat * num)))
    if not np.all(np.isfinite(levels)):
        levels = [alpha, 1.0 - alpha]  # z0 infinite: every resample on one side (a near-constant sample)
    lo, hi = np.quantile(theta_boot, levels)
    return float(lo), float(hi)


def jackknife(statistic: Callable[[np.ndarray], float], *samples: np.ndarray) -> np.ndarray:
    """Leave-one-out values ``statistic(*[s without example i])`` for every example ``i``."""
    n = samples[0].size
    keep = ~np.eye(n, dtype=bool)
    return np.array([statistic(*[s[keep[i]] for s in samples]) for i in range(n)], dtype=np.float64)
