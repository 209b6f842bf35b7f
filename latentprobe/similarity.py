"""Similarity and collapse analysis of latent reasoning tokens.

This module works on arrays only: numpy arrays or torch tensors of captured
latents, baselines (text or image token embeddings) and features.  It never
runs a model.  Every computation is done in float64, and every pass over the
data is chunked over rows so that large captures (for example 100,000 vectors
of width 3,584) can be analysed with bounded extra memory: the largest
temporary buffers are ``chunk_size x d`` blocks and ``d x d`` second-moment
matrices.

Shape conventions
-----------------
``x: "n d"``
    ``n`` vectors of width ``d`` (one row per vector).
``latents: "n k d"``
    latents of ``n`` instances, ``K`` latent steps each, width ``d``.

Centring
--------
Several functions take ``center``.  Raw cosine similarities of hidden states
are dominated by a few large shared directions (a common offset), so most
vectors look alike whatever they encode.  Centring removes that shared offset
before comparing.  Neither view alone establishes "collapse": compare both,
and compare against baselines such as :func:`random_matched_norm` and real
token embeddings (see :func:`collapse_table`).

Zero vectors
------------
A row whose norm is zero (after centring: a row equal to the mean, up to a
relative tolerance of ``1e-12``) has no direction; its cosine with anything,
itself included, is reported as ``0``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from jaxtyping import Float
from latentprobe.errors import DTypeError, NonFiniteError, ShapeError, SimilarityError, TooFewSamplesError

__all__ = [
    "SimilarityError",
    "ShapeError",
    "TooFewSamplesError",
    "NonFiniteError",
    "DTypeError",
    "WithinInstanceResult",
    "AcrossInstancesResult",
    "cosine_matrix",
    "within_instance",
    "across_instances",
    "random_matched_norm",
    "collapse_table",
    "linear_cka",
    "cka_matrix",
    "cka_against",
    "effective_rank",
    "participation_ratio",
    "norm_table",
]

_Array = np.ndarray | torch.Tensor

#: Rows whose norm is at most this fraction of their scale count as zero.
_ZERO_RTOL = 1e-12
#: Largest number of elements a bootstrap gather may hold at once.
_BOOT_BUDGET = 1 << 22


# --------------------------------------------------------------------------- #
# Errors
# --------------------------------------------------------------------------- #










# --------------------------------------------------------------------------- #
# Array helpers
# --------------------------------------------------------------------------- #
def _as_array(x: object, name: str) -> np.ndarray:
    """Return ``x`` as a numpy array without copying when possible.

    Torch tensors are detached and moved to the CPU; ``bfloat16`` is widened to
    ``float32`` because numpy has no such type.  The dtype is otherwise kept:
    conversion to float64 happens chunk by chunk in :func:`_rows`.
    """
    if isinstance(x, torch.Tensor):
        t = x.detach()
        if t.is_complex():
            raise DTypeError(f"{name} is a complex tensor; pass real-valued data.")
        if t.dtype == torch.bfloat16:
            t = t.to(torch.float32)
        arr = t.cpu().numpy()
    else:
        arr = np.asarray(x)
    if arr.dtype.kind not in "fiub":
        raise DTypeError(
            f"{name} has dtype {arr.dtype}; pass a real numeric array or tensor "
            "(float, int or bool)."
        )
    return arr


def _check_ndim(arr: np.ndarray, ndim: int, name: str, dims: str, hint: str = "") -> None:
    if arr.ndim != ndim:
        msg = (
            f"{name} must be {ndim}-D with shape ({dims}), got shape {tuple(arr.shape)}."
        )
        if hint:
            msg += " " + hint
        raise ShapeError(msg)


def _as_latents(latents: object, name: str = "latents") -> np.ndarray:
    arr = _as_array(latents, name)
    hint = ""
    if arr.ndim == 2:
        hint = (
            "For a single step use latents[:, None, :]; for plain vectors use the "
            "functions that take 2-D input (cosine_matrix, linear_cka, effective_rank)."
        )
    _check_ndim(arr, 3, name, "n instances, k steps, d width", hint)
    if arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ShapeError(f"{name} has an empty axis: shape {tuple(arr.shape)}.")
    return arr


def _as_matrix(x: object, name: str) -> np.ndarray:
    arr = _as_array(x, name)
    hint = ""
    if arr.ndim == 3:
        hint = "For latents of shape (n, k, d) pick one step (x[:, k]) or reshape to (-1, d)."
    elif arr.ndim == 1:
        hint = "For a single vector use x[None, :]."
    _check_ndim(arr, 2, name, "n rows, d width", hint)
    if arr.shape[1] == 0:
        raise ShapeError(f"{name} has width 0: shape {tuple(arr.shape)}.")
    return arr


def _check_chunk_size(chunk_size: int) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)):
        raise SimilarityError(f"chunk_size must be a positive integer, got {chunk_size!r}.")
    if chunk_size < 1:
        raise SimilarityError(f"chunk_size must be a positive integer, got {chunk_size}.")
    return int(chunk_size)


def _rows(arr: np.ndarray, start: int, stop: int, name: str) -> np.ndarray:
    """Rows ``start:stop`` of ``arr`` as a float64 copy, checked to be finite."""
    block = np.asarray(arr[start:stop], dtype=np.float64)
    if not np.isfinite(block).all():
        raise NonFiniteError(
            f"{name} contains NaN or infinite values (rows {start}..{stop - 1}); "
            "drop or repair those rows first."
        )
    return block


def _row_ranges(n: int, step: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, step):
        yield start, min(start + step, n)


def _instances_per_chunk(arr: np.ndarray, chunk_size: int) -> int:
    """Instances per chunk so that a chunk holds about ``chunk_size`` vectors."""
    per_row = int(np.prod(arr.shape[1:-1])) if arr.ndim > 2 else 1
    return max(1, chunk_size // max(per_row, 1))


def _iter_vectors(arr: np.ndarray, chunk_size: int, name: str) -> Iterator[np.ndarray]:
    """Yield float64 blocks of shape (b, d) of all vectors in ``arr`` (any ndim >= 2)."""
    d = arr.shape[-1]
    step = _instances_per_chunk(arr, chunk_size)
    for start, stop in _row_ranges(arr.shape[0], step):
        yield _rows(arr, start, stop, name).reshape(-1, d)


def _vector_mean(arr: np.ndarray, chunk_size: int, name: str) -> np.ndarray:
    """Mean over all vectors of ``arr`` (all axes but the last), in float64."""
    total = np.zeros(arr.shape[-1], dtype=np.float64)
    count = 0
    for block in _iter_vectors(arr, chunk_size, name):
        total += block.sum(axis=0)
        count += block.shape[0]
    if count == 0:
        raise TooFewSamplesError(f"{name} has no rows; cannot compute its mean.")
    return total / count


def _unit(block: np.ndarray, mean: np.ndarray | None) -> np.ndarray:
    """Centre (optionally) and scale the last axis of ``block`` to unit norm.

    Rows whose (centred) norm is at most ``_ZERO_RTOL`` times their scale
    (``||row|| + ||mean||``) become exactly zero.
    """
    if mean is None:
        norms = np.linalg.norm(block, axis=-1)
        scale = norms
    else:
        scale = np.linalg.norm(block, axis=-1) + float(np.linalg.norm(mean))
        block = block - mean
        norms = np.linalg.norm(block, axis=-1)
    zero = norms <= _ZERO_RTOL * scale
    inv = np.where(zero, 0.0, 1.0 / np.where(zero, 1.0, norms))
    return block * inv[..., None]


def _bootstrap_ci(
    values: np.ndarray, n_boot: int, seed: int | None, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap CI of column means of ``values`` [n, m] over rows."""
    n, m = values.shape
    if m == 0:
        return np.empty(0), np.empty(0)
    if n_boot == 0 or n == 0:
        nan = np.full(m, np.nan)
        return nan, nan.copy()
    if n == 1:
        return values[0].copy(), values[0].copy()
    rng = np.random.default_rng(seed)
    per_batch = max(1, _BOOT_BUDGET // max(n * max(m, 1), 1))
    means = np.empty((n_boot, m), dtype=np.float64)
    for start, stop in _row_ranges(n_boot, per_batch):
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.percentile(means, [100 * alpha, 100 * (1 - alpha)], axis=0)
    return low, high


def _check_boot(n_boot: int, ci_level: float) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise SimilarityError(
            f"n_boot must be a non-negative integer (0 disables the CI), got {n_boot!r}."
        )
    if not 0.0 < ci_level < 1.0:
        raise SimilarityError(f"ci_level must lie strictly between 0 and 1, got {ci_level!r}.")


# --------------------------------------------------------------------------- #
# Cosine similarity
# --------------------------------------------------------------------------- #
def _cosine(
    x: np.ndarray,
    y: np.ndarray | None,
    mean_x: np.ndarray | None,
    mean_y: np.ndarray | None,
    chunk_size: int,
    name_x: str = "x",
    name_y: str = "y",
) -> np.ndarray:
    n = x.shape[0]
    if y is None:
        out = np.empty((n, n), dtype=np.float64)
        ranges = list(_row_ranges(n, chunk_size))
        for bi, (i0, i1) in enumerate(ranges):
            ui = _unit(_rows(x, i0, i1, name_x), mean_x)
            for j0, j1 in ranges[bi:]:
                uj = ui if j0 == i0 else _unit(_rows(x, j0, j1, name_x), mean_x)
                block = np.clip(ui @ uj.T, -1.0, 1.0)
                if j0 == i0:
                    block = (block + block.T) / 2.0
                    nonzero = np.any(ui != 0.0, axis=1)
                    np.fill_diagonal(block, nonzero.astype(np.float64))
                out[i0:i1, j0:j1] = block
                if j0 != i0:
                    out[j0:j1, i0:i1] = block.T
        return out

    m = y.shape[0]
    out = np.empty((n, m), dtype=np.float64)
    y_ranges = list(_row_ranges(m, chunk_size))
    cached = None
    if len(y_ranges) == 1 and m > 0:
        cached = _unit(_rows(y, 0, m, name_y), mean_y)
    for i0, i1 in _row_ranges(n, chunk_size):
        ui = _unit(_rows(x, i0, i1, name_x), mean_x)
        for j0, j1 in y_ranges:
            uj = cached if cached is not None else _unit(_rows(y, j0, j1, name_y), mean_y)
            out[i0:i1, j0:j1] = np.clip(ui @ uj.T, -1.0, 1.0)
    return out


def cosine_matrix(
    x: Float[_Array, "n d"],
    y: Float[_Array, "m d"] | None = None,
    *,
    center: bool = False,
    chunk_size: int = 4096,
) -> Float[np.ndarray, "n m"]:
    """Pairwise cosine similarity between the rows of ``x`` and of ``y``.

    Parameters
    ----------
    x : array or tensor, shape (n, d)
        First set of vectors, one per row.
    y : array or tensor, shape (m, d), optional
        Second set of vectors.  Defaults to ``x`` (the result is then exactly
        symmetric with a unit diagonal for nonzero rows).
    center : bool, default False
        Subtract a mean row before comparing.  ``x`` is centred by the mean
        row of ``x`` and ``y`` by the mean row of ``y`` (each set by its own
        mean, as in column-centred CKA); with ``y=None`` both sides use the
        mean of ``x``.
    chunk_size : int, default 4096
        Number of rows converted to float64 at a time.  Only the output
        (n x m) and ``chunk_size x d`` blocks are held in memory.

    Returns
    -------
    numpy.ndarray of float64, shape (n, m)
        ``out[i, j] = <x_i, y_j> / (||x_i|| ||y_j||)``, clipped to [-1, 1].
        Rows of zero norm (after centring, if requested) give cosine 0,
        including on the diagonal.

    Notes
    -----
    A high raw cosine mostly reflects a shared offset (anisotropy) of the
    representation space and does not show that the vectors encode the same
    content; a high cosine after centring is not by itself collapse either,
    since centring is relative to the particular set of rows passed in.
    """
    chunk_size = _check_chunk_size(chunk_size)
    xa = _as_matrix(x, "x")
    ya = None
    if y is not None:
        ya = _as_matrix(y, "y")
        if ya.shape[1] != xa.shape[1]:
            raise ShapeError(
                f"x has width {xa.shape[1]} but y has width {ya.shape[1]}; cosine "
                "similarity needs vectors of the same width."
            )
    mean_x = mean_y = None
    if center:
        if xa.shape[0] == 0 or (ya is not None and ya.shape[0] == 0):
            raise TooFewSamplesError("center=True needs at least one row in x and in y.")
        mean_x = _vector_mean(xa, chunk_size, "x")
        mean_y = mean_x if ya is None else _vector_mean(ya, chunk_size, "y")
    return _cosine(xa, ya, mean_x, mean_y, chunk_size)


# --------------------------------------------------------------------------- #
# Within-instance similarity
# --------------------------------------------------------------------------- #
@dataclass(frozen=True, eq=False)
class WithinInstanceResult:
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
        step_sum += gram.sum(axis=0)
        if k > 1:
            consecutive[start:stop] = gram[:, idx[1:], idx[:-1]]
    return step_sum / n, consecutive


def within_instance(
    latents: Float[_Array, "n k d"],
    *,
    center: bool = False,
    n_boot: int = 1000,
    seed: int | None = 0,
    ci_level: float = 0.95,
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
    ci_level : float, default 0.95
        Coverage of the percentile bootstrap interval.
    chunk_size : int, default 4096
        Approximate number of vectors converted to float64 at a time.

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
    """
    chunk_size = _check_chunk_size(chunk_size)
    _check_boot(n_boot, ci_level)
    arr = _as_latents(latents)
    mean = _vector_mean(arr, chunk_size, "latents") if center else None
    step_matrix, values = _within(arr, mean, chunk_size)
    low, high = _bootstrap_ci(values, n_boot, seed, ci_level)
    n, k = arr.shape[:2]
    consecutive = pd.DataFrame(
        {
            "step": np.arange(1, k, dtype=np.int64),
            "mean": values.mean(axis=0) if k > 1 else np.empty(0),
            "ci_low": low,
            "ci_high": high,
            "n": np.full(k - 1, n, dtype=np.int64),
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
@dataclass(frozen=True, eq=False)
class AcrossInstancesResult:
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
    """Exact per-instance means and within-group sums in O(n K d) time."""
    n, k, d = arr.shape
    per_chunk = _instances_per_chunk(arr, chunk_size)
    total = np.zeros((k, d), dtype=np.float64)
    group_sums = np.zeros((n_groups, k * d), dtype=np.float64) if codes is not None else None
    for start, stop in _row_ranges(n, per_chunk):
        u = _unit(_rows(arr, start, stop, "latents"), mean)
        total += u.sum(axis=0)
        if group_sums is not None:
            b = stop - start
            onehot = sp.csr_matrix(
                (np.ones(b), (codes[start:stop], np.arange(b))), shape=(n_groups, b)
            )
            group_sums += onehot @ u.reshape(b, k * d)
    per_instance = np.empty((n, k), dtype=np.float64)
    within = np.zeros(k, dtype=np.float64) if codes is not None else None
    gs = group_sums.reshape(n_groups, k, d) if group_sums is not None else None
    for start, stop in _row_ranges(n, per_chunk):
        u = _unit(_rows(arr, start, stop, "latents"), mean)
        self_dot = np.einsum("ikd,ikd->ik", u, u)
        per_instance[start:stop] = (np.einsum("ikd,kd->ik", u, total) - self_dot) / (n - 1)
        if gs is not None:
            within += (np.einsum("ikd,ikd->ik", u, gs[codes[start:stop]]) - self_dot).sum(0)
    return per_instance, within


def across_instances(
    latents: Float[_Array, "n k d"],
    *,
    groups: Sequence[Hashable] | np.ndarray | None = None,
    center: bool = False,
    max_matrix: int = 2000,
    n_boot: int = 1000,
    seed: int | None = 0,
    ci_level: float = 0.95,
    chunk_size: int = 4096,
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
        Bootstrap resamples for the CI of ``mean_offdiag``; 0 skips it.
    seed : int or None, default 0
        Seed of the bootstrap generator.
    ci_level : float, default 0.95
        Coverage of the percentile bootstrap interval.
    chunk_size : int, default 4096
        Approximate number of vectors converted to float64 at a time.

    Returns
    -------
    AcrossInstancesResult

    Notes
    -----
    The CI resamples each instance's mean similarity to all others.  It holds
    the comparison set fixed and treats instances as independent, so it is
    narrower than the uncertainty about a new set of inputs.  A high cosine
    after centring is not by itself collapse; compare with baselines
    (:func:`collapse_table`).
    """
    chunk_size = _check_chunk_size(chunk_size)
    _check_boot(n_boot, ci_level)
    arr = _as_latents(latents)
    n, k, _ = arr.shape
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

    low, high = _bootstrap_ci(per_instance, n_boot, seed, ci_level)
    summary = pd.DataFrame(
        {
            "step": np.arange(k, dtype=np.int64),
            "mean_offdiag": per_instance.mean(axis=0),
            "ci_low": low,
            "ci_high": high,
            "n": np.full(k, n, dtype=np.int64),
        }
    )
    by_group = None
    if codes is not None:
        n_within, n_between = _pair_counts(codes, n_groups, n)
        with np.errstate(invalid="ignore", divide="ignore"):
            by_group = pd.DataFrame(
                {
                    "step": np.arange(k, dtype=np.int64),
                    "within_group_mean": within_sum / n_within if n_within else np.nan,
                    "between_group_mean": between_sum / n_between if n_between else np.nan,
                    "n_within_pairs": np.full(k, n_within // 2, dtype=np.int64),
                    "n_between_pairs": np.full(k, n_between // 2, dtype=np.int64),
                }
            )
    return AcrossInstancesResult(
        matrices=matrices,
        summary=summary,
        by_group=by_group,
        per_instance=per_instance,
        center=bool(center),
    )


# --------------------------------------------------------------------------- #
# Baselines
# --------------------------------------------------------------------------- #
def random_matched_norm(
    latents: Float[_Array, "*batch d"],
    *,
    seed: int | None = 0,
    chunk_size: int = 4096,
) -> Float[np.ndarray, "*batch d"]:
    """Random Gaussian vectors with the norms of ``latents``.

    Each output vector points in an isotropic random direction and has the
    same L2 norm as the corresponding input vector, which makes a baseline
    for collapse statistics: what cosine, rank and norm numbers look like
    when directions carry no structure at all.

    Parameters
    ----------
    latents : array or tensor, shape (..., d)
        Vectors along the last axis, typically (n, K, d).
    seed : int or None, default 0
        Seed of the random generator.
    chunk_size : int, default 4096
        Approximate number of vectors drawn at a time.

    Returns
    -------
    numpy.ndarray, same shape as ``latents``
        float32 when the input is float32 (or float16/bfloat16), else float64.
        Zero vectors stay zero.

    Notes
    -----
    Matching norms does not match anything else: real embeddings share a mean
    offset and low-rank structure, so random vectors are a floor, not a
    realistic reference.  Compare with real token embeddings as well.
    """
    chunk_size = _check_chunk_size(chunk_size)
    arr = _as_array(latents, "latents")
    if arr.ndim < 2:
        raise ShapeError(
            f"latents must have at least 2 dimensions (..., d), got shape {tuple(arr.shape)}."
        )
    out_dtype = np.float64 if arr.dtype == np.float64 or arr.dtype.kind != "f" else np.float32
    out = np.empty(arr.shape, dtype=out_dtype)
    rng = np.random.default_rng(seed)
    step = _instances_per_chunk(arr, chunk_size)
    for start, stop in _row_ranges(arr.shape[0], step):
        block = _rows(arr, start, stop, "latents")
        norms = np.linalg.norm(block, axis=-1, keepdims=True)
        noise = rng.standard_normal(block.shape)
        noise /= np.linalg.norm(noise, axis=-1, keepdims=True)
        out[start:stop] = noise * norms
    return out


# --------------------------------------------------------------------------- #
# Spectrum: effective rank and participation ratio
# --------------------------------------------------------------------------- #
def _singular_values(arr: np.ndarray, center: bool, chunk_size: int, name: str) -> np.ndarray:
    """Singular values (descending) of the matrix of all vectors in ``arr``.

    Uses the ``d x d`` second-moment matrix (accumulated in chunks, then
    ``eigvalsh``) when there are more vectors than dimensions, else an SVD of
    the (at most d x d) data matrix.
    """
    d = arr.shape[-1]
    n_vectors = int(np.prod(arr.shape[:-1]))
    if n_vectors == 0:
        raise TooFewSamplesError(f"{name} has no rows.")
    mean = _vector_mean(arr, chunk_size, name) if center else None
    if n_vectors > d:
        moment = np.zeros((d, d), dtype=np.float64)
        for block in _iter_vectors(arr, chunk_size, name):
            if mean is not None:
                block = block - mean
            moment += block.T @ block
        eig = np.linalg.eigvalsh((moment + moment.T) / 2.0)[::-1]
        top = max(float(eig[0]), 0.0)
        eig = np.where(eig <= top * d * np.finfo(np.float64).eps * 10, 0.0, eig)
        return np.sqrt(eig)
    data = np.concatenate(list(_iter_vectors(arr, chunk_size, name)), axis=0)
    if mean is not None:
        data -= mean
    s = np.linalg.svd(data, compute_uv=False)
    top = float(s[0]) if s.size else 0.0
    return np.where(s <= top * max(data.shape) * np.finfo(np.float64).eps, 0.0, s)


def _effective_rank_from(s: np.ndarray) -> float:
    total = float(s.sum())
    if total <= 0.0:
        return 0.0
    p = s[s > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def _participation_ratio_from(s: np.ndarray) -> float:
    lam = s**2
    denom = float((lam**2).sum())
    if denom <= 0.0:
        return 0.0
    return float(lam.sum() ** 2 / denom)


def effective_rank(
    x: Float[_Array, "n d"], *, center: bool = True, chunk_size: int = 4096
) -> float:
    """Effective rank of a set of vectors (Roy & Vetterli, 2007).

    ``exp(H(p))`` with ``p_i = s_i / sum_j s_j`` over the singular values
    ``s_i`` of the (optionally column-centred) data matrix.

    Parameters
    ----------
    x : array or tensor, shape (n, d)
        Vectors, one per row.  Flatten latents first, e.g.
        ``latents.reshape(-1, d)``.
    center : bool, default True
        Subtract the mean row first (spread around the mean rather than
        around the origin).
    chunk_size : int, default 4096
        Rows converted to float64 at a time.

    Returns
    -------
    float
        Between 1 and ``min(n, d)``; 0.0 for all-zero data.  ``k`` orthogonal
        vectors of equal norm (uncentred) give exactly ``k``.

    Notes
    -----
    When ``n > d`` the singular values come from eigenvalues of the
    ``d x d`` second-moment matrix, whose smallest values are only accurate
    to about ``sqrt(eps)`` relative to the largest.  A low effective rank is
    not by itself collapse: a few directions can still separate inputs, and
    the number depends on how many vectors are pooled.
    """
    chunk_size = _check_chunk_size(chunk_size)
    arr = _as_matrix(x, "x")
    return _effective_rank_from(_singular_values(arr, center, chunk_size, "x"))


def participation_ratio(
    x: Float[_Array, "n d"], *, center: bool = True, chunk_size: int = 4096
) -> float:
    """Participation ratio ``(sum lambda)^2 / sum lambda^2`` of the covariance.

    Parameters
    ----------
    x : array or tensor, shape (n, d)
        Vectors, one per row.
    center : bool, default True
        Use the covariance (centred).  With ``False`` the eigenvalues are
        those of the uncentred second-moment matrix.
    chunk_size : int, default 4096
        Rows converted to float64 at a time.

    Returns
    -------
    float
        Between 1 and ``min(n, d)``; close to ``d`` for isotropic data with
        ``n >> d``; 0.0 for all-zero data.

    Notes
    -----
    Dominated by the largest eigenvalues, so one outlier direction (e.g. a
    massive-activation dimension) can make it small even when many other
    directions vary; it is not by itself evidence of collapse.
    """
    chunk_size = _check_chunk_size(chunk_size)
    arr = _as_matrix(x, "x")
    return _participation_ratio_from(_singular_values(arr, center, chunk_size, "x"))


# --------------------------------------------------------------------------- #
# Linear CKA
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class _Moments:
    """Column-centred statistics of one representation, for CKA."""

    n: int
    mean: np.ndarray
    gram_frob2: float  # ||Xc^T Xc||_F^2
    sq_sum: float  # sum_i ||xc_i||^2
    sq_sq_sum: float  # sum_i ||xc_i||^4


def _moments(arr: np.ndarray, chunk_size: int, name: str) -> _Moments:
    n, d = arr.shape
    mean = _vector_mean(arr, chunk_size, name)
    gram = np.zeros((d, d), dtype=np.float64)
    sq_sum = sq_sq_sum = 0.0
    for start, stop in _row_ranges(n, chunk_size):
        block = _rows(arr, start, stop, name) - mean
        gram += block.T @ block
        sq = np.einsum("ij,ij->i", block, block)
        sq_sum += float(sq.sum())
        sq_sq_sum += float((sq * sq).sum())
    return _Moments(n, mean, float((gram * gram).sum()), sq_sum, sq_sq_sum)


def _cross(
    x: np.ndarray, y: np.ndarray, mx: _Moments, my: _Moments, chunk_size: int
) -> tuple[float, float]:
    """``||Xc^T Yc||_F^2`` and ``sum_i ||xc_i||^2 ||yc_i||^2``."""
    cross = np.zeros((x.shape[1], y.shape[1]), dtype=np.float64)
    sq_prod = 0.0
    for start, stop in _row_ranges(x.shape[0], chunk_size):
        bx = _rows(x, start, stop, "x") - mx.mean
        by = _rows(y, start, stop, "y") - my.mean
        cross += bx.T @ by
        sq_prod += float((np.einsum("ij,ij->i", bx, bx) * np.einsum("ij,ij->i", by, by)).sum())
    return float((cross * cross).sum()), sq_prod


def _hsic(frob2: float, sq_prod: float, sq_x: float, sq_y: float, n: int, debiased: bool) -> float:
    """HSIC up to a factor common to all pairs (it cancels in CKA).

    The unbiased estimator is invariant to adding a constant to the features,
    so column-centred data give the same value as the uncentred kernels
    ``K = X X^T`` while avoiding cancellation; with centred data
    ``1^T K~ 1 = -sum_i ||x_i||^2`` and ``1^T K~ L~ 1 = sum_i ||x_i||^2 ||y_i||^2``.
    """
    if not debiased:
        return frob2
    return frob2 - n / (n - 2) * sq_prod + sq_x * sq_y / ((n - 1) * (n - 2))


def _cka_from(
    mx: _Moments, my: _Moments, frob2_xy: float, sq_prod: float, debiased: bool
) -> float:
    n = mx.n
    hxy = _hsic(frob2_xy, sq_prod, mx.sq_sum, my.sq_sum, n, debiased)
    hxx = _hsic(mx.gram_frob2, mx.sq_sq_sum, mx.sq_sum, mx.sq_sum, n, debiased)
    hyy = _hsic(my.gram_frob2, my.sq_sq_sum, my.sq_sum, my.sq_sum, n, debiased)
    denom = hxx * hyy
    if not denom > 0.0:
        return float("nan")
    return float(hxy / math.sqrt(denom))


def _check_cka_n(n: int, debiased: bool) -> None:
    need = 4 if debiased else 2
    if n < need:
        kind = "debiased" if debiased else "biased"
        raise TooFewSamplesError(
            f"{kind} linear CKA needs at least {need} examples, got n={n}"
            + ("; use debiased=False or more examples." if debiased else ".")
        )


def linear_cka(
    x: Float[_Array, "n d1"],
    y: Float[_Array, "n d2"],
    *,
    debiased: bool = True,
    chunk_size: int = 4096,
) -> float:
    """Linear centred kernel alignment between two representations.

    Computed in feature space with cross products accumulated over chunks of
    rows, so no ``n x n`` Gram matrix is ever formed: memory is
    ``O(d1^2 + d2^2 + d1 d2 + chunk_size (d1 + d2))`` whatever ``n``.

    Parameters
    ----------
    x : array or tensor, shape (n, d1)
        First representation of ``n`` examples.
    y : array or tensor, shape (n, d2)
        Second representation of the same ``n`` examples, in the same order.
    debiased : bool, default True
        Use the unbiased HSIC estimator (Song et al., 2012) on the linear
        kernels ``K = X X^T``, ``L = Y Y^T`` (Kornblith et al., 2019;
        Nguyen et al., 2021).  The biased version is
        ``||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)`` and is inflated
        towards 1 when ``d`` is large relative to ``n``.
    chunk_size : int, default 4096
        Rows converted to float64 at a time.

    Returns
    -------
    float
        CKA in [0, 1] for the biased estimator; the debiased one is near 0
        for independent data and can be slightly negative.  NaN when a
        representation is constant (no variance) or the debiased
        self-similarity estimate is not positive.

    Raises
    ------
    ShapeError
        If ``x`` and ``y`` are not 2-D or have different numbers of rows.
    TooFewSamplesError
        If ``n < 4`` (debiased) or ``n < 2`` (biased).

    Notes
    -----
    CKA is invariant to orthogonal transforms and isotropic scaling, not to
    general invertible linear maps.  A high CKA says the two representations
    have similar example-by-example geometry; it does not show that one is
    computed from the other or that either is used downstream.
    """
    chunk_size = _check_chunk_size(chunk_size)
    xa = _as_matrix(x, "x")
    ya = _as_matrix(y, "y")
    if xa.shape[0] != ya.shape[0]:
        raise ShapeError(
            f"x has {xa.shape[0]} rows but y has {ya.shape[0]}; CKA compares two "
            "representations of the same examples, so row i of x and of y must be "
            "the same example."
        )
    _check_cka_n(xa.shape[0], debiased)
    mx = _moments(xa, chunk_size, "x")
    my = _moments(ya, chunk_size, "y")
    frob2, sq_prod = _cross(xa, ya, mx, my, chunk_size)
    return _cka_from(mx, my, frob2, sq_prod, debiased)


def cka_matrix(
    latents: Float[_Array, "n k d"],
    *,
    debiased: bool = True,
    chunk_size: int = 4096,
) -> Float[np.ndarray, "k k"]:
    """Linear CKA between every pair of latent steps.

    Parameters
    ----------
    latents : array or tensor, shape (n, K, d)
        Latents of ``n`` instances with ``K`` steps.
    debiased : bool, default True
        Use the unbiased HSIC estimator (see :func:`linear_cka`).
    chunk_size : int, default 4096
        Rows converted to float64 at a time.

    Returns
    -------
    numpy.ndarray, shape (K, K)
        Symmetric; ``out[k, l]`` is the CKA between step ``k`` and step ``l``
        across the ``n`` instances; the diagonal is 1 (NaN for a constant step).

    Notes
    -----
    High CKA between steps says they arrange instances alike; it does not say
    the steps are equal vectors (CKA ignores rotations and scale) nor that the
    later steps add nothing.
    """
    chunk_size = _check_chunk_size(chunk_size)
    arr = _as_latents(latents)
    n, k, _ = arr.shape
    _check_cka_n(n, debiased)
    steps = [arr[:, i, :] for i in range(k)]
    moments = [_moments(s, chunk_size, "latents") for s in steps]
    out = np.empty((k, k), dtype=np.float64)
    for i in range(k):
        self_cka = _cka_from(
            moments[i], moments[i], moments[i].gram_frob2, moments[i].sq_sq_sum, debiased
        )
        out[i, i] = 1.0 if np.isfinite(self_cka) else np.nan
        for j in range(i + 1, k):
            frob2, sq_prod = _cross(steps[i], steps[j], moments[i], moments[j], chunk_size)
            out[i, j] = out[j, i] = _cka_from(moments[i], moments[j], frob2, sq_prod, debiased)
    return out


def cka_against(
    latents: Float[_Array, "n k d"],
    features: Float[_Array, "n f"],
    *,
    debiased: bool = True,
    chunk_size: int = 4096,
) -> pd.DataFrame:
    """Linear CKA of each latent step against a fixed feature matrix.

    Parameters
    ----------
    latents : array or tensor, shape (n, K, d)
        Latents of ``n`` instances with ``K`` steps.
    features : array or tensor, shape (n, f)
        One feature vector per instance, e.g. mean-pooled image features or
        the hidden state of the question's last token.
    debiased : bool, default True
        Use the unbiased HSIC estimator (see :func:`linear_cka`).
    chunk_size : int, default 4096
        Rows converted to float64 at a time.

    Returns
    -------
    pandas.DataFrame
        One row per step with columns ``step`` and ``cka``.

    Notes
    -----
    Similar geometry to the features does not show the latents were computed
    from them: both may follow a third factor (e.g. task type).  Compare with
    the same analysis on a baseline.
    """
    chunk_size = _check_chunk_size(chunk_size)
    arr = _as_latents(latents)
    feats = _as_matrix(features, "features")
    n, k, _ = arr.shape
    if feats.shape[0] != n:
        raise ShapeError(
            f"latents has {n} instances but features has {feats.shape[0]} rows; pass "
            "one feature row per instance, in the same order."
        )
    _check_cka_n(n, debiased)
    mf = _moments(feats, chunk_size, "features")
    values = np.empty(k, dtype=np.float64)
    for step in range(k):
        xs = arr[:, step, :]
        mx = _moments(xs, chunk_size, "latents")
        frob2, sq_prod = _cross(xs, feats, mx, mf, chunk_size)
        values[step] = _cka_from(mx, mf, frob2, sq_prod, debiased)
    return pd.DataFrame({"step": np.arange(k, dtype=np.int64), "cka": values})


# --------------------------------------------------------------------------- #
# Norms
# --------------------------------------------------------------------------- #
def _norms(arr: np.ndarray, chunk_size: int, name: str) -> np.ndarray:
    """L2 norms along the last axis, shape ``arr.shape[:-1]``."""
    out = np.empty(arr.shape[:-1], dtype=np.float64)
    step = _instances_per_chunk(arr, chunk_size)
    for start, stop in _row_ranges(arr.shape[0], step):
        out[start:stop] = np.linalg.norm(_rows(arr, start, stop, name), axis=-1)
    return out


def norm_table(
    latents: Float[_Array, "n k d"],
    token_embeddings: Float[_Array, "v d"],
    *,
    chunk_size: int = 4096,
) -> pd.DataFrame:
    """L2 norms of latents per step, next to the norms of token embeddings.

    Parameters
    ----------
    latents : array or tensor, shape (n, K, d)
        Latents of ``n`` instances with ``K`` steps.
    token_embeddings : array or tensor, shape (V, d)
        The vocabulary's input-embedding rows (the scale of what the model
        normally receives at an input position).
    chunk_size : int, default 4096
        Approximate number of vectors converted to float64 at a time.

    Returns
    -------
    pandas.DataFrame
        One row per step (``source="latent"``, ``step`` = k) and one row for
        the embeddings (``source="token_embedding"``, ``step`` missing, shown
        as ``<NA>``: the column has the nullable ``Int64`` dtype).  Columns:
        ``source``, ``step``, ``mean_norm``, ``std_norm`` (population standard
        deviation), ``ratio_to_embedding`` (``mean_norm`` divided by the
        embeddings' mean norm).

    Notes
    -----
    Latents much larger than token embeddings are out of the input
    distribution, which may matter for how they are read; a large ratio is
    not by itself evidence that they are ignored or harmful.
    """
    chunk_size = _check_chunk_size(chunk_size)
    arr = _as_latents(latents)
    emb = _as_matrix(token_embeddings, "token_embeddings")
    if emb.shape[1] != arr.shape[2]:
        raise ShapeError(
            f"latents have width {arr.shape[2]} but token_embeddings have width "
            f"{emb.shape[1]}; pass the embedding matrix of the same model (V, d)."
        )
    if emb.shape[0] == 0:
        raise TooFewSamplesError("token_embeddings has no rows.")
    latent_norms = _norms(arr, chunk_size, "latents")
    emb_norms = _norms(emb, chunk_size, "token_embeddings")
    emb_mean = float(emb_norms.mean())
    k = arr.shape[1]
    means = latent_norms.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = means / emb_mean if emb_mean > 0 else np.full(k, np.nan)
    table = pd.DataFrame(
        {
            "source": ["latent"] * k + ["token_embedding"],
            "step": pd.array(list(range(k)) + [None], dtype="Int64"),
            "mean_norm": np.append(means, emb_mean),
            "std_norm": np.append(latent_norms.std(axis=0), float(emb_norms.std())),
            "ratio_to_embedding": np.append(ratios, 1.0 if emb_mean > 0 else np.nan),
        }
    )
    return table


# --------------------------------------------------------------------------- #
# Collapse table
# --------------------------------------------------------------------------- #
_RESERVED_SOURCES = ("latent", "random_matched_norm")


def _mean_norm(arr: np.ndarray, mean: np.ndarray | None, chunk_size: int) -> float:
    total = 0.0
    count = 0
    for block in _iter_vectors(arr, chunk_size, "latents"):
        if mean is not None:
            block = block - mean
        total += float(np.linalg.norm(block, axis=1).sum())
        count += block.shape[0]
    return total / count


def collapse_table(
    latents: Float[_Array, "n k d"],
    *,
    baselines: Mapping[str, Float[_Array, "n k d"]] | None = None,
    groups: Sequence[Hashable] | np.ndarray | None = None,
    seed: int | None = 0,
    chunk_size: int = 4096,
) -> pd.DataFrame:
    """Side-by-side collapse statistics for latents and baselines.

    Parameters
    ----------
    latents : array or tensor, shape (n, K, d)
        Latents of ``n`` instances with ``K`` steps.
    baselines : mapping of name to array, optional
        Reference vectors with the same ``n`` and ``K`` (e.g.
        ``"text_tokens"``: embeddings of the first ``K`` reasoning-text tokens
        per instance; ``"image_tokens"``: ``K`` image-token states).
        ``"random_matched_norm"`` (:func:`random_matched_norm` of the latents)
        is always added.
    groups : sequence of labels, length n, optional
        Task label per instance; adds ``within_group_mean`` and
        ``between_group_mean`` (averaged over steps) columns.
    seed : int or None, default 0
        Seed of the random baseline.
    chunk_size : int, default 4096
        Approximate number of vectors converted to float64 at a time.

    Returns
    -------
    pandas.DataFrame
        One row per (source, centering) with source ``"latent"``, each
        baseline name and ``"random_matched_norm"``, centering ``"raw"`` or
        ``"centered"`` (grand mean of that source subtracted).  Columns:

        - ``within_instance_mean``: mean off-diagonal of the step x step
          cosine matrix (NaN when K = 1);
        - ``consecutive_mean``: mean cosine of consecutive steps;
        - ``across_instance_mean``: mean over steps of the mean cosine
          between distinct instances;
        - ``effective_rank``, ``participation_ratio``: of all ``n * K``
          vectors pooled (centred for ``"centered"``);
        - ``mean_norm``: mean L2 norm of the vectors as analysed (after
          centring for ``"centered"``).

    Notes
    -----
    "Collapse" is a comparison, not a threshold: latents look collapsed only
    relative to baselines of the same shape.  Even then, a high cosine after
    centring or a low effective rank is not by itself collapse — small,
    decodable differences can survive — so pair this table with probes and
    interventions.
    """
    chunk_size = _check_chunk_size(chunk_size)
    arr = _as_latents(latents)
    n, k, _ = arr.shape
    sources: dict[str, np.ndarray] = {"latent": arr}
    for name, value in (baselines or {}).items():
        if name in _RESERVED_SOURCES:
            raise SimilarityError(
                f"baseline name {name!r} is reserved; choose another name."
            )
        base = _as_latents(value, f"baselines[{name!r}]")
        if base.shape[:2] != (n, k):
            raise ShapeError(
                f"baselines[{name!r}] has shape {tuple(base.shape)} but latents have "
                f"(n={n}, k={k}, d); baselines need the same instances and steps."
            )
        sources[name] = base
    sources["random_matched_norm"] = random_matched_norm(arr, seed=seed, chunk_size=chunk_size)

    rows = []
    for name, src in sources.items():
        for centering in ("raw", "centered"):
            center = centering == "centered"
            mean = _vector_mean(src, chunk_size, name) if center else None
            step_matrix, consecutive = _within(src, mean, chunk_size)
            across = across_instances(
                src, groups=groups, center=center, max_matrix=0, n_boot=0,
                chunk_size=chunk_size,
            )
            s = _singular_values(src, center, chunk_size, name)
            row = {
                "source": name,
                "centering": centering,
                "within_instance_mean": _mean_offdiag(step_matrix),
                "consecutive_mean": float(consecutive.mean()) if k > 1 else float("nan"),
                "across_instance_mean": float(across.summary["mean_offdiag"].mean()),
                "effective_rank": _effective_rank_from(s),
                "participation_ratio": _participation_ratio_from(s),
                "mean_norm": _mean_norm(src, mean, chunk_size),
            }
            if across.by_group is not None:
                row["within_group_mean"] = float(across.by_group["within_group_mean"].mean())
                row["between_group_mean"] = float(across.by_group["between_group_mean"].mean())
            rows.append(row)
    return pd.DataFrame(rows)
