"""Cosine similarity between the latent steps of an instance and across instances at each step.

Within an instance, intervals are percentile bootstraps over instances from
:func:`latentprobe.stats.bootstrap_ci`; across instances, the mean over pairs is a U-statistic and
its interval is the instance jackknife (:func:`latentprobe.stats.jackknife_u_interval`).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from jaxtyping import Float

from latentprobe.display import SummarizedResult
from latentprobe.errors import ShapeError, SimilarityError, TooFewSamplesError
from latentprobe.geometry._arrays import (
    _Array,
    _as_latents,
    _check_boot,
    _check_chunk_size,
    _compute_dtype,
    _instances_per_chunk,
    _row_ranges,
    _rows,
    _unit,
    _vector_mean,
    _zero_rtol,
)
from latentprobe.geometry.cosine import _cosine
from latentprobe.schema import ACROSS_BY_GROUP, ACROSS_SUMMARY, CONSECUTIVE, STEP_MATRIX
from latentprobe.stats import bootstrap_ci, jackknife_u_interval, pair_bootstrap_u_interval

__all__ = ["WithinInstanceResult", "AcrossInstancesResult", "within_instance", "across_instances"]


def _column_ci(
    values: Float[np.ndarray, "n m"], n_boot: int, seed: int | None, level: float
) -> tuple[Float[np.ndarray, " m"], Float[np.ndarray, " m"]]:
    """Percentile bootstrap CI of each column's mean over the rows of ``values``.

    Every column goes through :func:`latentprobe.stats.bootstrap_ci` with the same ``seed``, so
    all columns are resampled with the same row indices (a joint resampling of instances).
    ``n_boot=0`` or no rows give NaN bounds.
    """
    n, m = values.shape
    if n_boot == 0 or n == 0:
        return np.full(m, np.nan), np.full(m, np.nan)
    low, high = np.empty(m, dtype=np.float64), np.empty(m, dtype=np.float64)
    for j in range(m):
        effect = bootstrap_ci(values[:, j], statistic=np.mean, n_boot=n_boot, confidence=level, seed=seed,
                              method="studentized")
        low[j], high[j] = effect.ci_low, effect.ci_high
    return low, high


#: Intervals :func:`across_instances` offers for ``mean_offdiag``.
_INTERVALS = ("jackknife", "bootstrap", "per_instance")


def _across_ci(per_instance: np.ndarray, matrices: np.ndarray | None, interval: str, n_boot: int,
               seed: int | None, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of each step's mean off-diagonal cosine (NaN with ``n_boot=0``)."""
    m = per_instance.shape[1]
    if n_boot == 0:
        return np.full(m, np.nan), np.full(m, np.nan)
    if interval == "per_instance":
        return _column_ci(per_instance, n_boot, seed, level)
    if interval == "bootstrap":
        _, low, high = pair_bootstrap_u_interval(matrices, level=level, n_boot=n_boot, seed=seed)
    else:
        _, low, high, _ = jackknife_u_interval(per_instance, level=level)
    return np.clip(low, -1.0, 1.0), np.clip(high, -1.0, 1.0)


@dataclass(frozen=True, eq=False, repr=False)
class WithinInstanceResult(SummarizedResult):
    """Similarity between the latent steps of each instance.

    Attributes
    ----------
    step_matrix : numpy.ndarray, shape (K, K)
        Mean over instances of each instance's step x step cosine matrix.
    consecutive : pandas.DataFrame
        One row per step ``k`` in ``1..K-1`` with the cosine between steps
        ``k-1`` and ``k``: columns ``step``, ``mean``, ``ci_low``,
        ``ci_high``, ``n`` (number of instances).
    consecutive_values : numpy.ndarray, shape (n, K-1)
        Per-instance consecutive cosines (the data behind ``consecutive``).
    center : bool
        Whether the grand mean latent was subtracted first.

    Notes
    -----
    High step-to-step similarity says the latent steps point in similar
    directions; it does not show that they carry no information (small
    differences can be decodable), nor that the model ignores them.
    """

    step_matrix: Float[np.ndarray, "k k"]
    consecutive: pd.DataFrame
    consecutive_values: Float[np.ndarray, "n k_minus_1"]
    center: bool

    @property
    def mean_offdiag(self) -> float:
        """Mean off-diagonal entry of ``step_matrix`` (NaN when K = 1)."""
        return _mean_offdiag(self.step_matrix)

    def step_table(self) -> pd.DataFrame:
        """``step_matrix`` in long format (:class:`~latentprobe.schema.STEP_MATRIX`): one row per
        ``(step_a, step_b)``, row-major, with their mean cosine.

        Returns
        -------
        pandas.DataFrame
        """
        k = self.step_matrix.shape[0]
        steps = np.arange(k, dtype=np.int64)
        return STEP_MATRIX.frame({STEP_MATRIX.STEP_A: np.repeat(steps, k), STEP_MATRIX.STEP_B: np.tile(steps, k),
                                  STEP_MATRIX.COSINE: np.asarray(self.step_matrix, dtype=np.float64).ravel()})


def _mean_offdiag(mat: np.ndarray) -> float:
    k = mat.shape[0]
    if k < 2:
        return float("nan")
    return float((mat.sum() - np.trace(mat)) / (k * (k - 1)))


def _within(
    arr: np.ndarray, mean: np.ndarray | None, chunk_size: int
) -> tuple[np.ndarray, np.ndarray]:
    n, k, _ = arr.shape
    step_sum = np.zeros((k, k), dtype=np.float64)
    consecutive = np.empty((n, k - 1), dtype=np.float64)
    per_chunk = _instances_per_chunk(arr, chunk_size)
    for start, stop in _row_ranges(n, per_chunk):
        u = _unit(_rows(arr, start, stop, "latents"), mean)
        gram = np.einsum("ikd,ild->ikl", u, u)
        gram = np.clip((gram + gram.transpose(0, 2, 1)) / 2.0, -1.0, 1.0)
        diag = np.any(u != 0.0, axis=2).astype(np.float64)
        idx = np.arange(k)
        gram[:, idx, idx] = diag
        step_sum += gram.sum(axis=0, dtype=np.float64)
        if k > 1:
            consecutive[start:stop] = gram[:, idx[1:], idx[:-1]]
    return step_sum / n, consecutive


def within_instance(
    latents: Float[_Array, "n k d"],
    *,
    center: bool = False,
    n_boot: int = 1000,
    seed: int | None = 0,
    ci: float = 0.95,
    chunk_size: int = 4096,
) -> WithinInstanceResult:
    """Cosine similarity between the latent steps of each instance.

    Parameters
    ----------
    latents : array or tensor, shape (n, K, d)
        Latents of ``n`` instances with ``K`` steps of width ``d``.
    center : bool, default False
        Subtract the grand mean latent (mean over all instances and steps)
        before comparing.  This removes the direction shared by all latents;
        per-instance centring is not used because with few steps it forces
        the cosines negative (with K = 2 they would all be -1).
    n_boot : int, default 1000
        Bootstrap resamples (over instances) for the confidence intervals;
        0 skips the bootstrap and reports NaN bounds.
    seed : int or None, default 0
        Seed of the bootstrap generator.
    ci : float, default 0.95
        Coverage of the bootstrap interval.
    chunk_size : int, default 4096
        Approximate number of vectors processed at a time (it bounds the temporary buffers).

    Returns
    -------
    WithinInstanceResult
        ``step_matrix`` (K x K mean cosine) and the ``consecutive`` table.

    Notes
    -----
    The bootstrap treats instances as independent draws; it does not account
    for dependence between instances (e.g. several questions from one
    source).  A high cosine after centring is not by itself collapse: steps
    can be nearly parallel and still differ along directions that matter for
    the answer.

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe.geometry import within_instance
    >>> z = np.random.default_rng(0).normal(size=(20, 3, 16)) + 3.0  # 20 instances, 3 steps, a shared offset
    >>> w = within_instance(z, n_boot=200, seed=0)
    >>> w.step_matrix.shape
    (3, 3)
    >>> w.consecutive.columns.tolist()
    ['step', 'mean', 'ci_low', 'ci_high', 'n']
    >>> bool(w.mean_offdiag > within_instance(z, center=True, n_boot=0).mean_offdiag)  # the offset inflates raw cosines
    True
    """
    chunk_size = _check_chunk_size(chunk_size)
    _check_boot(n_boot, ci)
    arr = _as_latents(latents)
    mean = _vector_mean(arr, chunk_size, "latents") if center else None
    step_matrix, values = _within(arr, mean, chunk_size)
    low, high = _column_ci(values, n_boot, seed, ci)
    n, k = arr.shape[:2]
    consecutive = CONSECUTIVE.frame(
        {
            CONSECUTIVE.STEP: np.arange(1, k, dtype=np.int64),
            CONSECUTIVE.MEAN: values.mean(axis=0) if k > 1 else np.empty(0),
            CONSECUTIVE.CI_LOW: low,
            CONSECUTIVE.CI_HIGH: high,
            CONSECUTIVE.N: np.full(k - 1, n, dtype=np.int64),
        }
    )
    return WithinInstanceResult(
        step_matrix=step_matrix,
        consecutive=consecutive,
        consecutive_values=values,
        center=bool(center),
    )


# --------------------------------------------------------------------------- #
# Across-instance similarity
# --------------------------------------------------------------------------- #
@dataclass(frozen=True, eq=False, repr=False)
class AcrossInstancesResult(SummarizedResult):
    """Similarity between different instances at the same latent step.

    Attributes
    ----------
    matrices : numpy.ndarray of shape (K, n, n), or None
        Instance x instance cosine matrix at each step; ``None`` when ``n``
        exceeded ``max_matrix`` (the summaries are then computed exactly
        without forming the matrices).
    summary : pandas.DataFrame
        One row per step: ``step``, ``mean_offdiag`` (mean cosine over pairs
        of distinct instances), ``ci_low``, ``ci_high``, ``n``.
    by_group : pandas.DataFrame or None
        With ``groups``: one row per step with ``within_group_mean``,
        ``between_group_mean`` (mean cosine over pairs in the same / in
        different groups) and ``n_within_pairs``, ``n_between_pairs``
        (unordered pair counts).  NaN where a kind of pair does not exist.
    per_instance : numpy.ndarray, shape (n, K)
        Each instance's mean cosine to all other instances at each step;
        ``summary.mean_offdiag`` is its column mean.
    center : bool
        Whether the grand mean latent was subtracted first.

    Notes
    -----
    High across-instance similarity means latents of different inputs point
    the same way; it is not by itself collapse (a shared direction can sit on
    top of input-specific, decodable differences), and low similarity does
    not show the latents encode the task.
    """

    matrices: Float[np.ndarray, "k n n"] | None
    summary: pd.DataFrame
    by_group: pd.DataFrame | None
    per_instance: Float[np.ndarray, "n k"]
    center: bool


def _group_codes(groups: object, n: int) -> tuple[np.ndarray, int]:
    if isinstance(groups, torch.Tensor):
        groups = groups.detach().cpu().numpy()
    labels = np.asarray(groups)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ShapeError(
            f"groups must be 1-D with one label per instance (length {n}), got shape "
            f"{tuple(labels.shape)}."
        )
    codes, uniques = pd.factorize(pd.Series(labels), use_na_sentinel=False)
    return np.asarray(codes, dtype=np.int64), len(uniques)


def _pair_counts(codes: np.ndarray, n_groups: int, n: int) -> tuple[int, int]:
    sizes = np.bincount(codes, minlength=n_groups).astype(np.int64)
    within = int((sizes * (sizes - 1)).sum())
    return within, n * (n - 1) - within


def _across_by_sums(
    arr: np.ndarray,
    mean: np.ndarray | None,
    codes: np.ndarray | None,
    n_groups: int,
    chunk_size: int,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Exact per-instance means and within-group sums in O(n K d) time, as chunked matrix products.

    Pass 1 stores each vector's inverse (centred) norm and accumulates, per step, the sum of unit
    vectors ``t_k = sum_i u_ik`` as one matrix-vector product per chunk (and, with groups, the
    per-group sums as one sparse product).  Pass 2 gives ``u_ik . t_k`` as another matrix-vector
    product on the raw (centred) rows, scaled by the stored inverse norm, so unit vectors are never
    formed without groups.  Blocks are computed in the input's precision (float32 stays float32);
    the sums are accumulated in float64.  Within-group sums follow from the group sums alone:
    ``sum_{i != j, same group} u_i . u_j = sum_g ||S_g||^2 - sum_i ||u_i||^2``.
    """
    n, k, d = arr.shape
    dtype = _compute_dtype(arr)
    per_chunk = _instances_per_chunk(arr, chunk_size)
    mean_c = None if mean is None else mean.astype(dtype)
    mean_norm = 0.0 if mean is None else float(np.linalg.norm(mean))
    rtol = _zero_rtol(dtype)
    total = np.zeros((k, d), dtype=np.float64)
    inv = np.empty((n, k), dtype=dtype)
    group_sums = np.zeros((n_groups, k * d), dtype=np.float64) if codes is not None else None

    def centred(start: int, stop: int) -> np.ndarray:
        block = _rows(arr, start, stop, "latents")
        return block if mean_c is None else block - mean_c

    for start, stop in _row_ranges(n, per_chunk):
        raw = _rows(arr, start, stop, "latents")
        c = raw if mean_c is None else raw - mean_c
        norms = np.sqrt(np.einsum("ikd,ikd->ik", c, c))
        scale = norms if mean_c is None else np.sqrt(np.einsum("ikd,ikd->ik", raw, raw)) + mean_norm
        zero = norms <= rtol * scale
        w = np.where(zero, 0.0, 1.0 / np.where(zero, 1.0, norms)).astype(dtype)
        inv[start:stop] = w
        for step in range(k):
            total[step] += w[:, step] @ c[:, step, :]
        if group_sums is not None:
            b = stop - start
            onehot = sp.csr_matrix(
                (np.ones(b, dtype=dtype), (codes[start:stop], np.arange(b))), shape=(n_groups, b)
            )
            group_sums += onehot @ (c * w[..., None]).reshape(b, k * d)
    nonzero = inv != 0
    per_instance = np.empty((n, k), dtype=np.float64)
    total_c = total.astype(dtype)
    for start, stop in _row_ranges(n, per_chunk):
        c = centred(start, stop)
        for step in range(k):
            dots = (c[:, step, :] @ total_c[step]).astype(np.float64) * inv[start:stop, step]
            per_instance[start:stop, step] = (dots - nonzero[start:stop, step]) / (n - 1)
    within = None
    if group_sums is not None:
        gs = group_sums.reshape(n_groups, k, d)
        within = np.einsum("gkd,gkd->k", gs, gs) - nonzero.sum(axis=0)
    return per_instance, within


def across_instances(
    latents: Float[_Array, "n k d"],
    *,
    groups: Sequence[Hashable] | np.ndarray | None = None,
    center: bool = False,
    max_matrix: int = 2000,
    n_boot: int = 1000,
    seed: int | None = 0,
    ci: float = 0.95,
    chunk_size: int = 4096,
    interval: str = "jackknife",
) -> AcrossInstancesResult:
    """Cosine similarity between instances at each latent step.

    Parameters
    ----------
    latents : array or tensor, shape (n, K, d)
        Latents of ``n`` instances with ``K`` steps of width ``d``.
    groups : sequence of labels, length n, optional
        Task (or any) label per instance.  When given, ``by_group`` compares
        the mean cosine of same-group pairs with that of different-group pairs.
    center : bool, default False
        Subtract the grand mean latent (over all instances and steps).  The
        per-step mean is not used: it would force the mean off-diagonal
        cosine towards ``-1/(n-1)`` whatever the data.
    max_matrix : int, default 2000
        Largest ``n`` for which the (K, n, n) matrices are formed.  Above it,
        ``matrices`` is None and the summaries are computed exactly through
        ``sum_{i != j} u_i . u_j = ||sum_i u_i||^2 - sum_i ||u_i||^2`` on unit
        vectors ``u_i``, in O(n K d) time and O(K d) extra memory.
    n_boot : int, default 1000
        Resamples of the bootstrap intervals (``interval="bootstrap"`` or
        ``"per_instance"``); 0 skips the CI of ``mean_offdiag`` (NaN bounds)
        whatever ``interval``.
    seed : int or None, default 0
        Seed of the bootstrap generator.
    ci : float, default 0.95
        Nominal coverage of the interval.
    chunk_size : int, default 4096
        Approximate number of vectors processed at a time (it bounds the temporary buffers).
    interval : {"jackknife", "bootstrap", "per_instance"}, default "jackknife"
        The instance jackknife of the U-statistic (O(n), any ``n``); an instance
        bootstrap never pairing an instance with its copy (needs
        ``n <= max_matrix``); or the former bootstrap of per-instance means
        (under-covers; kept to reproduce old results).

    Returns
    -------
    AcrossInstancesResult

    Notes
    -----
    ``mean_offdiag`` is a degree-2 U-statistic (each instance is in ``n - 1``
    pairs); its interval is the instance jackknife with a t quantile
    (:func:`latentprobe.stats.jackknife_u_interval`; simulated coverage in
    :func:`latentprobe.geometry.similarity_coverage`).  ``"per_instance"`` is
    half as wide and covered 0.66-0.72.  With ``center=True`` the grand mean
    is held fixed in the jackknife.  Instances must be independent units.  A
    high cosine after centring is not by itself collapse; compare with
    baselines (:func:`collapse_table`).

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe.geometry import across_instances
    >>> z = np.random.default_rng(0).normal(size=(20, 3, 16)) + 3.0
    >>> a = across_instances(z, groups=np.arange(20) % 2, n_boot=200, seed=0)
    >>> a.matrices.shape, a.summary["step"].tolist()
    ((3, 20, 20), [0, 1, 2])
    >>> a.by_group[["n_within_pairs", "n_between_pairs"]].iloc[0].tolist()
    [90, 100]
    >>> bool(across_instances(z, center=True, n_boot=0).summary["mean_offdiag"].abs().max() < 0.2)
    True
    """
    chunk_size = _check_chunk_size(chunk_size)
    _check_boot(n_boot, ci)
    if interval not in _INTERVALS:
        raise SimilarityError(f"across_instances: interval={interval!r} is not one of {_INTERVALS}.")
    arr = _as_latents(latents)
    n, k, _ = arr.shape
    if interval == "bootstrap" and n > max_matrix:
        raise SimilarityError(
            f"across_instances: interval='bootstrap' needs the pair matrices but n={n} > max_matrix={max_matrix}; "
            "raise max_matrix or use interval='jackknife' (no matrix needed).")
    if n < 2:
        raise TooFewSamplesError(
            f"across_instances needs at least 2 instances to form pairs, got n={n}."
        )
    codes, n_groups = (None, 0) if groups is None else _group_codes(groups, n)
    mean = _vector_mean(arr, chunk_size, "latents") if center else None

    matrices = None
    within_sum = between_sum = None
    if n <= max_matrix:
        matrices = np.empty((k, n, n), dtype=np.float64)
        for step in range(k):
            matrices[step] = _cosine(arr[:, step, :], None, mean, mean, chunk_size, "latents")
        diag = np.einsum("kii->ki", matrices)
        per_instance = ((matrices.sum(axis=2) - diag) / (n - 1)).T.copy()
        if codes is not None:
            same = codes[:, None] == codes[None, :]
            np.fill_diagonal(same, False)
            different = codes[:, None] != codes[None, :]
            within_sum = np.array([m[same].sum() for m in matrices])
            between_sum = np.array([m[different].sum() for m in matrices])
    else:
        per_instance, within_sum = _across_by_sums(arr, mean, codes, n_groups, chunk_size)
        if codes is not None:
            between_sum = per_instance.sum(axis=0) * (n - 1) - within_sum

    low, high = _across_ci(per_instance, matrices, interval, n_boot, seed, ci)
    summary = ACROSS_SUMMARY.frame(
        {
            ACROSS_SUMMARY.STEP: np.arange(k, dtype=np.int64),
            ACROSS_SUMMARY.MEAN_OFFDIAG: per_instance.mean(axis=0),
            ACROSS_SUMMARY.CI_LOW: low,
            ACROSS_SUMMARY.CI_HIGH: high,
            ACROSS_SUMMARY.N: np.full(k, n, dtype=np.int64),
        }
    )
    by_group = None
    if codes is not None:
        n_within, n_between = _pair_counts(codes, n_groups, n)
        with np.errstate(invalid="ignore", divide="ignore"):
            G = ACROSS_BY_GROUP
            by_group = G.frame(
                {
                    G.STEP: np.arange(k, dtype=np.int64),
                    G.WITHIN_GROUP_MEAN: within_sum / n_within if n_within else np.full(k, np.nan),
                    G.BETWEEN_GROUP_MEAN: between_sum / n_between if n_between else np.full(k, np.nan),
                    G.N_WITHIN_PAIRS: np.full(k, n_within // 2, dtype=np.int64),
                    G.N_BETWEEN_PAIRS: np.full(k, n_between // 2, dtype=np.int64),
                }
            )
    return AcrossInstancesResult(
        matrices=matrices,
        summary=summary,
        by_group=by_group,
        per_instance=per_instance,
        center=bool(center),
    )
