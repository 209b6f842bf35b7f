"""Pairwise cosine similarity of vectors, and the random matched-norm baseline."""

from __future__ import annotations

import numpy as np
from jaxtyping import Float

from latentprobe.errors import ShapeError, TooFewSamplesError
from latentprobe.geometry._arrays import (
    _Array,
    _as_array,
    _as_matrix,
    _check_chunk_size,
    _instances_per_chunk,
    _row_ranges,
    _rows,
    _unit,
    _vector_mean,
)
from latentprobe.seeding import numpy_rng

__all__ = ["cosine_matrix", "random_matched_norm"]


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
        Number of rows processed at a time.  Only the output
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

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe.geometry import cosine_matrix
    >>> x = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    >>> cosine_matrix(x).round(3)
    array([[1.   , 0.   , 0.707],
           [0.   , 1.   , 0.707],
           [0.707, 0.707, 1.   ]])
    >>> shifted = x + 10.0  # a shared offset makes every raw cosine large
    >>> bool(cosine_matrix(shifted).min() > 0.99)
    True
    >>> bool(np.allclose(cosine_matrix(shifted, center=True), cosine_matrix(x, center=True)))
    True
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

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe.geometry import random_matched_norm
    >>> z = np.random.default_rng(0).normal(size=(5, 3, 8))
    >>> r = random_matched_norm(z, seed=0)
    >>> r.shape, bool(np.allclose(np.linalg.norm(r, axis=-1), np.linalg.norm(z, axis=-1)))
    ((5, 3, 8), True)
    """
    chunk_size = _check_chunk_size(chunk_size)
    arr = _as_array(latents, "latents")
    if arr.ndim < 2:
        raise ShapeError(
            f"latents must have at least 2 dimensions (..., d), got shape {tuple(arr.shape)}."
        )
    out_dtype = np.float64 if arr.dtype == np.float64 or arr.dtype.kind != "f" else np.float32
    out = np.empty(arr.shape, dtype=out_dtype)
    rng = numpy_rng(seed)
    step = _instances_per_chunk(arr, chunk_size)
    for start, stop in _row_ranges(arr.shape[0], step):
        block = _rows(arr, start, stop, "latents")
        norms = np.linalg.norm(block, axis=-1, keepdims=True)
        noise = rng.standard_normal(block.shape)
        noise /= np.linalg.norm(noise, axis=-1, keepdims=True)
        out[start:stop] = noise * norms
    return out
