"""Array plumbing shared by the geometry analyses: validation, chunked row iteration, unit rows.

Rows are computed in the input's precision: float32 (and float16/bfloat16, widened one chunk at a
time) in float32, float64 and integer input in float64.  float32 blocks are views of the input, never
copies; sums over many rows (means, second-moment and Gram matrices, pair sums) are accumulated in
float64 across chunks, so the largest temporary buffers are ``chunk_size x d`` blocks whatever the
number of rows.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from latentprobe.errors import DTypeError, NonFiniteError, ShapeError, SimilarityError, TooFewSamplesError
from latentprobe.validate import non_negative_int, positive_int, probability

_Array = np.ndarray | torch.Tensor

#: Rows whose norm is at most this fraction of their scale count as zero (float64 computation).
_ZERO_RTOL = 1e-12
#: The same for float32 computation: a row equal to the mean leaves a rounding residue of about
#: ``sqrt(d) * 6e-8`` of its scale after centring.
_ZERO_RTOL32 = 1e-5
#: Largest magnitude accepted: sums of fourth powers of such values (participation ratio) and of
#: products (Gram matrices, squared norms) over up to 1e8 terms stay finite in float64.
_MAX_ABS = 1e70
#: The same bound for float32 computation: squared norms of width-1e5 rows of such values and their
#: chunk products stay below float32's 3.4e38.
_MAX_ABS32 = 1e15


def _compute_dtype(arr: np.ndarray) -> type:
    """float32 for float32/float16 input, float64 otherwise (float64, integers, bool)."""
    return np.float32 if arr.dtype in (np.float32, np.float16) else np.float64


def _zero_rtol(dtype: object) -> float:
    return _ZERO_RTOL32 if np.dtype(dtype) == np.float32 else _ZERO_RTOL


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
    return positive_int(chunk_size, "chunk_size", hint="rows per block", error=SimilarityError)


def _rows(arr: np.ndarray, start: int, stop: int, name: str) -> np.ndarray:
    """Rows ``start:stop`` of ``arr`` in the compute dtype, checked to be finite.

    A view for float32 and float64 input (callers never write into it); other dtypes are
    converted one chunk at a time.  The check reads the block twice (min, max) and allocates nothing.
    """
    block = arr[start:stop]
    dtype = _compute_dtype(arr)
    if block.dtype != dtype:
        block = block.astype(dtype)
    if not block.size:
        return block
    lo, hi = block.min(), block.max()
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise NonFiniteError(
            f"{name} contains NaN or infinite values (rows {start}..{stop - 1}); "
            "drop or repair those rows first."
        )
    limit = _MAX_ABS32 if dtype == np.float32 else _MAX_ABS
    big = max(abs(float(lo)), abs(float(hi)))
    if big > limit:
        kind = "float32 (pass float64 data for a larger range)" if dtype == np.float32 else "float64"
        raise NonFiniteError(
            f"{name} holds values of magnitude {big:.3g} (rows {start}..{stop - 1}), above "
            f"{limit:.0e}: their squares and products overflow {kind}; rescale the data first."
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
    """Yield blocks of shape (b, d), in the compute dtype, of all vectors in ``arr`` (any ndim >= 2)."""
    d = arr.shape[-1]
    step = _instances_per_chunk(arr, chunk_size)
    for start, stop in _row_ranges(arr.shape[0], step):
        yield _rows(arr, start, stop, name).reshape(-1, d)


def _vector_mean(arr: np.ndarray, chunk_size: int, name: str) -> np.ndarray:
    """Mean over all vectors of ``arr`` (all axes but the last), in float64."""
    total = np.zeros(arr.shape[-1], dtype=np.float64)
    count = 0
    for block in _iter_vectors(arr, chunk_size, name):
        total += block.sum(axis=0, dtype=np.float64)
        count += block.shape[0]
    if count == 0:
        raise TooFewSamplesError(f"{name} has no rows; cannot compute its mean.")
    return total / count


def _unit(block: np.ndarray, mean: np.ndarray | None) -> np.ndarray:
    """Centre (optionally) and scale the last axis of ``block`` to unit norm, in ``block``'s dtype.

    Rows whose (centred) norm is at most ``_ZERO_RTOL`` (float32: ``_ZERO_RTOL32``) times their
    scale (``||row|| + ||mean||``) become exactly zero.
    """
    norms = np.sqrt(np.einsum("...d,...d->...", block, block))
    if mean is None:
        scale = norms
    else:
        scale = norms + float(np.linalg.norm(mean))
        block = block - mean.astype(block.dtype, copy=False)
        norms = np.sqrt(np.einsum("...d,...d->...", block, block))
    zero = norms <= _zero_rtol(block.dtype) * scale
    inv = np.where(zero, 0.0, 1.0 / np.where(zero, 1.0, norms)).astype(block.dtype, copy=False)
    return block * inv[..., None]


def _check_boot(n_boot: int, ci: float) -> None:
    non_negative_int(n_boot, "n_boot", hint="0 disables the CI", error=SimilarityError)
    probability(ci, "ci", hint="e.g. 0.95", error=SimilarityError)
