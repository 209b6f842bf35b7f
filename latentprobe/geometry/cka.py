"""Linear centred kernel alignment (CKA), computed in feature space over chunks of rows."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from jaxtyping import Float

from latentprobe.errors import ShapeError, TooFewSamplesError
from latentprobe.schema import CKA_AGAINST
from latentprobe.geometry._arrays import (
    _Array,
    _as_latents,
    _as_matrix,
    _check_chunk_size,
    _row_ranges,
    _rows,
    _vector_mean,
)

__all__ = ["linear_cka", "cka_matrix", "cka_against"]


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
        block = _rows(arr, start, stop, name)
        block = block - mean.astype(block.dtype)
        gram += block.T @ block
        sq = np.einsum("ij,ij->i", block, block).astype(np.float64)
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
        bx = _rows(x, start, stop, "x")
        by = _rows(y, start, stop, "y")
        bx = bx - mx.mean.astype(bx.dtype)
        by = by - my.mean.astype(by.dtype)
        cross += bx.T @ by
        sq_x = np.einsum("ij,ij->i", bx, bx).astype(np.float64)
        sq_prod += float((sq_x * np.einsum("ij,ij->i", by, by).astype(np.float64)).sum())
    return float((cross * cross).sum()), sq_prod


def _joint(x: np.ndarray, y: np.ndarray, chunk_size: int) -> tuple[_Moments, _Moments, float, float]:
    """Both representations' moments and their cross terms in one pass after the means.

    Each chunk is centred once and feeds the three Gram products (``Xc^T Xc``, ``Yc^T Yc``,
    ``Xc^T Yc``), as in :func:`_moments` and :func:`_cross` but reading the data once.
    """
    n = x.shape[0]
    mean_x, mean_y = _vector_mean(x, chunk_size, "x"), _vector_mean(y, chunk_size, "y")
    gx = np.zeros((x.shape[1], x.shape[1]), dtype=np.float64)
    gy = np.zeros((y.shape[1], y.shape[1]), dtype=np.float64)
    cross = np.zeros((x.shape[1], y.shape[1]), dtype=np.float64)
    sx_sum = sy_sum = sxx = syy = sxy = 0.0
    for start, stop in _row_ranges(n, chunk_size):
        bx = _rows(x, start, stop, "x")
        by = _rows(y, start, stop, "y")
        bx = bx - mean_x.astype(bx.dtype)
        by = by - mean_y.astype(by.dtype)
        gx += bx.T @ bx
        gy += by.T @ by
        cross += bx.T @ by
        sx = np.einsum("ij,ij->i", bx, bx).astype(np.float64)
        sy = np.einsum("ij,ij->i", by, by).astype(np.float64)
        sx_sum += float(sx.sum())
        sy_sum += float(sy.sum())
        sxx += float((sx * sx).sum())
        syy += float((sy * sy).sum())
        sxy += float((sx * sy).sum())
    mx = _Moments(n, mean_x, float((gx * gx).sum()), sx_sum, sxx)
    my = _Moments(n, mean_y, float((gy * gy).sum()), sy_sum, syy)
    return mx, my, float((cross * cross).sum()), sxy


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
    if not (hxx > 0.0 and hyy > 0.0):
        return float("nan")
    # square roots first: the product of two tiny HSICs underflows to 0 where each is representable
    return float(hxy / (math.sqrt(hxx) * math.sqrt(hyy)))


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
        Rows processed at a time (it bounds the temporary buffers).

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

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe.geometry import linear_cka
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(50, 6))
    >>> q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    >>> round(linear_cka(x, 3.0 * x @ q), 6)  # invariant to rotation and isotropic scale
    1.0
    >>> abs(linear_cka(x, rng.normal(size=(50, 4)))) < 0.2  # independent data: near 0 (debiased)
    True
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
    mx, my, frob2, sq_prod = _joint(xa, ya, chunk_size)
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
        Rows processed at a time (it bounds the temporary buffers).

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

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe.geometry import cka_matrix
    >>> z = np.random.default_rng(0).normal(size=(30, 3, 8))
    >>> z[:, 1] = 2.0 * z[:, 0]  # step 1 is a rescaled step 0
    >>> m = cka_matrix(z)
    >>> m.shape, round(float(m[0, 1]), 6), bool(abs(m[0, 2]) < 0.2)
    ((3, 3), 1.0, True)
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
        Rows processed at a time (it bounds the temporary buffers).

    Returns
    -------
    pandas.DataFrame
        One row per step with columns ``step`` and ``cka``.

    Notes
    -----
    Similar geometry to the features does not show the latents were computed
    from them: both may follow a third factor (e.g. task type).  Compare with
    the same analysis on a baseline.

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe.geometry import cka_against
    >>> rng = np.random.default_rng(0)
    >>> features = rng.normal(size=(30, 5))
    >>> z = rng.normal(size=(30, 2, 8))
    >>> z[:, 1, :5] = features  # step 1 contains the features
    >>> table = cka_against(z, features)
    >>> table.columns.tolist(), bool(table.loc[1, "cka"] > table.loc[0, "cka"] + 0.3)
    (['step', 'cka'], True)
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
    return CKA_AGAINST.frame({CKA_AGAINST.STEP: np.arange(k, dtype=np.int64), CKA_AGAINST.CKA: values})
