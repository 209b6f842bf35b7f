"""Tests for latentprobe.geometry: linear CKA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from latentprobe import geometry as sim

from ._reference import SETTINGS, _latents, _random_orthogonal, _ref_cka


# --------------------------------------------------------------------------- #
# Linear CKA
# --------------------------------------------------------------------------- #
@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(4, 40), d=st.integers(1, 30), debiased=st.booleans())
def test_cka_self_is_one(seed, n, d, debiased):
    x = np.random.default_rng(seed).normal(size=(n, d)) * 3.0 + 7.0
    assert sim.linear_cka(x, x, debiased=debiased) == pytest.approx(1.0, abs=1e-12)


@SETTINGS
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(6, 40),
    d1=st.integers(1, 12),
    d2=st.integers(1, 12),
    scale=st.floats(1e-3, 1e3),
    debiased=st.booleans(),
)
def test_cka_invariances(seed, n, d1, d2, scale, debiased):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d1))
    y = x[:, :1] @ rng.normal(size=(1, d2)) + rng.normal(size=(n, d2))
    base = sim.linear_cka(x, y, debiased=debiased)
    q = _random_orthogonal(d2, rng)
    assert sim.linear_cka(x, y @ q, debiased=debiased) == pytest.approx(base, abs=1e-9)
    assert sim.linear_cka(x * scale, y, debiased=debiased) == pytest.approx(base, abs=1e-9)
    assert sim.linear_cka(y, x, debiased=debiased) == pytest.approx(base, abs=1e-12)


@SETTINGS
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(4, 30),
    d1=st.integers(1, 10),
    d2=st.integers(1, 10),
    debiased=st.booleans(),
    chunk=st.integers(1, 50),
)
def test_cka_matches_gram_reference(seed, n, d1, d2, debiased, chunk):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d1)) + rng.normal(size=d1) * 3
    y = x[:, np.arange(d2) % d1] * 0.5 + rng.normal(size=(n, d2)) + 1.0
    ref = _ref_cka(x, y, debiased)
    got = sim.linear_cka(x, y, debiased=debiased, chunk_size=chunk)
    if np.isfinite(ref):
        assert got == pytest.approx(ref, abs=1e-8)


@pytest.mark.parametrize("seed", range(5))
def test_debiased_cka_of_independent_data_is_near_zero(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(50, 200))
    y = rng.normal(size=(50, 200))
    assert abs(sim.linear_cka(x, y, debiased=True)) < 0.1
    assert sim.linear_cka(x, y, debiased=False) > 0.3


def test_cka_chunked_equals_unchunked():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(3000, 20)).astype(np.float32)
    y = (x[:, :5] @ rng.normal(size=(5, 7)) + rng.normal(size=(3000, 7))).astype(np.float32)
    for debiased in (True, False):
        # float32 input is multiplied in float32 (chunk sums differ by rounding); float64 stays exact
        a = sim.linear_cka(x, y, debiased=debiased, chunk_size=256)
        b = sim.linear_cka(x, y, debiased=debiased, chunk_size=10_000)
        assert a == pytest.approx(b, rel=1e-5)
        a = sim.linear_cka(x.astype(float), y.astype(float), debiased=debiased, chunk_size=256)
        b = sim.linear_cka(x.astype(float), y.astype(float), debiased=debiased, chunk_size=10_000)
        assert a == pytest.approx(b, abs=1e-12)
    sub = slice(0, 300)
    assert sim.linear_cka(x[sub], y[sub], chunk_size=64) == pytest.approx(
        _ref_cka(x[sub].astype(float), y[sub].astype(float), True), rel=1e-5  # float32 input
    )


def test_cka_matrix_and_against():
    lat = _latents(9, n=30, k=3, d=6)
    lat[:, 2] = lat[:, 0] @ _random_orthogonal(6, np.random.default_rng(0)) * 2.0
    mat = sim.cka_matrix(lat, chunk_size=7)
    assert mat.shape == (3, 3)
    np.testing.assert_array_equal(mat, mat.T)
    np.testing.assert_array_equal(np.diag(mat), 1.0)
    assert mat[0, 2] == pytest.approx(1.0, abs=1e-9)
    assert mat[0, 1] == pytest.approx(sim.linear_cka(lat[:, 0], lat[:, 1]), abs=1e-12)
    feats = np.random.default_rng(1).normal(size=(30, 4))
    table = sim.cka_against(torch.tensor(lat), feats, debiased=False)
    assert table.columns.tolist() == ["step", "cka"] and table["step"].tolist() == [0, 1, 2]
    for k in range(3):
        assert table["cka"][k] == pytest.approx(
            sim.linear_cka(lat[:, k], feats, debiased=False), abs=1e-12
        )


def test_cka_errors():
    with pytest.raises(sim.ShapeError, match="same examples"):
        sim.linear_cka(np.ones((10, 3)), np.ones((11, 3)))
    with pytest.raises(sim.TooFewSamplesError, match="at least 4"):
        sim.linear_cka(np.eye(3), np.eye(3))
    assert sim.linear_cka(np.eye(3), np.eye(3), debiased=False) == pytest.approx(1.0)
    with pytest.raises(sim.ShapeError, match="3-D"):
        sim.cka_matrix(np.ones((10, 3)))
    with pytest.raises(sim.ShapeError, match="features"):
        sim.cka_against(_latents(0, n=10), np.ones((9, 3)))
    assert np.isnan(sim.linear_cka(np.ones((10, 3)), np.random.default_rng(0).normal(size=(10, 2))))
