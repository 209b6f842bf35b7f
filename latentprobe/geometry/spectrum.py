"""Spectrum of a set of vectors: effective rank and participation ratio."""

from __future__ import annotations

import numpy as np
from jaxtyping import Float

from latentprobe.errors import TooFewSamplesError
from latentprobe.geometry._arrays import _Array, _as_matrix, _check_chunk_size, _iter_vectors, _vector_mean

__all__ = ["effective_rank", "participation_ratio"]


def _singular_values(arr: np.ndarray, center: bool, chunk_size: int, name: str) -> np.ndarray:
    """Singular values (descending) of the matrix of all vectors in ``arr``.

    Uses the ``d x d`` second-moment matrix (accumulated in chunks, then
    ``eigvalsh``) when there are more vectors than dimensions, else an SVD of
    the (at most d x d) data matrix.

    Unlike the other analyses this one multiplies in float64 even for float32
    input (one ``chunk_size x d`` block converted at a time): the effective rank
    is decided by the small eigenvalues, and float32 products leave a rounding
    floor near ``1e-7`` of the largest eigenvalue (singular values near ``3e-4``
    of the largest) that would count as spread.
    """
    d = arr.shape[-1]
    n_vectors = int(np.prod(arr.shape[:-1]))
    if n_vectors == 0:
        raise TooFewSamplesError(f"{name} has no rows.")
    mean = _vector_mean(arr, chunk_size, name) if center else None
    if n_vectors > d:
        moment = np.zeros((d, d), dtype=np.float64)
        for block in _iter_vectors(arr, chunk_size, name):
            # one float64 block per chunk: centred while converting, or converted (float64 input: a view)
            block = np.subtract(block, mean, dtype=np.float64) if mean is not None else block.astype(np.float64, copy=False)
            moment += block.T @ block
        eig = np.linalg.eigvalsh((moment + moment.T) / 2.0)[::-1]
        top = max(float(eig[0]), 0.0)
        eig = np.where(eig <= top * d * np.finfo(np.float64).eps * 10, 0.0, eig)
        return np.sqrt(eig)
    data = np.concatenate([b.astype(np.float64, copy=False) for b in _iter_vectors(arr, chunk_size, name)], axis=0)
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
        Rows processed at a time (float64 blocks of this many rows bound the temporaries).

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

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe.geometry import effective_rank
    >>> round(effective_rank(np.eye(4), center=False), 6)  # 4 orthogonal vectors of equal norm
    4.0
    >>> round(effective_rank(np.outer(np.arange(1.0, 6.0), [1.0, 2.0, 0.0])), 6)  # all on one line
    1.0
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
        Rows processed at a time (float64 blocks of this many rows bound the temporaries).

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

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe.geometry import participation_ratio
    >>> round(participation_ratio(np.eye(4), center=False), 6)
    4.0
    >>> x = np.random.default_rng(0).normal(size=(2000, 4))
    >>> 3.5 < participation_ratio(x) <= 4.0  # isotropic data with n >> d: close to d
    True
    """
    chunk_size = _check_chunk_size(chunk_size)
    arr = _as_matrix(x, "x")
    return _participation_ratio_from(_singular_values(arr, center, chunk_size, "x"))
