"""Reference implementations and shared data of the geometry tests (direct, small n)."""

from __future__ import annotations

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=30, deadline=None)


def _ref_cosine(x, y):
    nx = np.linalg.norm(x, axis=1, keepdims=True)
    ny = np.linalg.norm(y, axis=1, keepdims=True)
    ux = np.divide(x, nx, out=np.zeros_like(x), where=nx > 0)
    uy = np.divide(y, ny, out=np.zeros_like(y), where=ny > 0)
    return ux @ uy.T


def _ref_hsic_unbiased(k, l):
    n = k.shape[0]
    k = k.copy()
    l = l.copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l, 0.0)
    one = np.ones(n)
    term1 = np.trace(k @ l)
    term2 = (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2))
    term3 = 2.0 / (n - 2) * (one @ k @ l @ one)
    return (term1 + term2 - term3) / (n * (n - 3))


def _ref_cka(x, y, debiased):
    if debiased:
        k, l = x @ x.T, y @ y.T
        return _ref_hsic_unbiased(k, l) / np.sqrt(
            _ref_hsic_unbiased(k, k) * _ref_hsic_unbiased(l, l)
        )
    n = x.shape[0]
    h = np.eye(n) - 1.0 / n
    k, l = h @ x @ x.T @ h, h @ y @ y.T @ h
    return np.sum(k * l) / np.sqrt(np.sum(k * k) * np.sum(l * l))


def _random_orthogonal(d, rng):
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


values = st.integers(-1000, 1000).map(lambda v: v / 100.0)


def _latents(seed, n=40, k=4, d=8, offset=2.0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, k, d)) + offset
