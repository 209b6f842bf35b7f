"""Tests for latentprobe.geometry: effective rank and participation ratio."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from latentprobe import geometry as sim

from ._reference import SETTINGS, _random_orthogonal


# --------------------------------------------------------------------------- #
# Effective rank and participation ratio
# --------------------------------------------------------------------------- #
@SETTINGS
@given(seed=st.integers(0, 10_000), k=st.integers(1, 8), extra=st.integers(0, 6), repeat=st.integers(1, 4))
def test_effective_rank_of_orthogonal_vectors(seed, k, extra, repeat):
    rng = np.random.default_rng(seed)
    d = k + extra
    q = _random_orthogonal(d, rng)[:k] * rng.uniform(0.1, 10.0)
    x = np.repeat(q, repeat, axis=0)  # repeat > 1 with n > d exercises the eigvalsh path
    assert sim.effective_rank(x, center=False, chunk_size=3) == pytest.approx(k, abs=1e-9)
    assert sim.participation_ratio(x, center=False) == pytest.approx(k, abs=1e-9)


def test_participation_ratio_isotropic_and_rank_paths():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(20_000, 10))
    assert sim.participation_ratio(x) > 9.5
    assert sim.effective_rank(x) > 9.8
    y = (rng.normal(size=(3000, 16)) * np.linspace(0.1, 3, 16)).astype(np.float32)
    s = np.linalg.svd(y.astype(np.float64) - y.astype(np.float64).mean(0), compute_uv=False)
    p = s / s.sum()
    assert sim.effective_rank(y, chunk_size=256) == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-9)
    lam = s**2
    assert sim.participation_ratio(y, chunk_size=256) == pytest.approx(lam.sum() ** 2 / (lam**2).sum(), rel=1e-9)
    assert sim.effective_rank(np.zeros((5, 3)), center=False) == 0.0
    with pytest.raises(sim.ShapeError, match="reshape"):
        sim.effective_rank(np.ones((4, 2, 3)))
