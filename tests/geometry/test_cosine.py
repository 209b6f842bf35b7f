"""Tests for latentprobe.geometry: cosine_matrix and random_matched_norm."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from latentprobe import geometry as sim

from ._reference import SETTINGS, _latents, _ref_cosine, values


# --------------------------------------------------------------------------- #
# cosine_matrix
# --------------------------------------------------------------------------- #
@SETTINGS
@given(
    x=st.tuples(st.integers(1, 12), st.integers(1, 6)).flatmap(
        lambda s: arrays(np.float64, s, elements=values)
    ),
    chunk=st.integers(1, 8),
)
def test_cosine_symmetric_unit_diagonal(x, chunk):
    out = sim.cosine_matrix(x, chunk_size=chunk)
    assert out.shape == (x.shape[0],) * 2
    np.testing.assert_array_equal(out, out.T)
    nonzero = np.linalg.norm(x, axis=1) > 0
    np.testing.assert_array_equal(np.diag(out), nonzero.astype(float))
    np.testing.assert_allclose(out, np.clip(_ref_cosine(x, x), -1, 1), atol=1e-12)
    assert np.all(np.abs(out) <= 1.0)


@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(2, 15), m=st.integers(2, 15))
def test_cosine_centered_equals_mean_subtracted(seed, n, m):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)) + 3.0
    y = rng.normal(size=(m, 5)) - 1.0
    xc = x - x.mean(0)
    np.testing.assert_allclose(
        sim.cosine_matrix(x, center=True, chunk_size=3), _ref_cosine(xc, xc), atol=1e-12
    )
    np.testing.assert_allclose(
        sim.cosine_matrix(x, y, center=True, chunk_size=4),
        _ref_cosine(xc, y - y.mean(0)),
        atol=1e-12,
    )


def test_cosine_zero_rows_and_torch_input():
    x = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    out = sim.cosine_matrix(torch.tensor(x, dtype=torch.float32))
    assert out.dtype == np.float64
    assert out[1, 1] == 0.0 and np.all(out[1] == 0.0)
    np.testing.assert_allclose(out[0, 2], 1 / np.sqrt(2))
    # A row equal to the mean has no direction after centring.
    y = np.array([[1.0, 2.0], [3.0, 4.0], [2.0, 3.0]])
    assert np.all(sim.cosine_matrix(y, center=True)[2] == 0.0)


@pytest.mark.slow
def test_cosine_chunked_equals_direct():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 12)).astype(np.float32)
    y = rng.normal(size=(700, 12))
    x64 = x.astype(np.float64)
    # float32 input is computed in float32 (cosines carry about 1e-7 rounding); float64 stays exact
    np.testing.assert_allclose(sim.cosine_matrix(x, chunk_size=256), _ref_cosine(x64, x64), atol=1e-6)
    np.testing.assert_allclose(sim.cosine_matrix(x64, chunk_size=256), _ref_cosine(x64, x64), atol=1e-12)
    np.testing.assert_allclose(
        sim.cosine_matrix(x, y, center=True, chunk_size=256),
        _ref_cosine(x64 - x64.mean(0), y - y.mean(0)),
        atol=1e-6,
    )


def test_cosine_errors():
    with pytest.raises(sim.ShapeError, match="2-D"):
        sim.cosine_matrix(np.zeros((2, 3, 4)))
    with pytest.raises(sim.ShapeError, match="width"):
        sim.cosine_matrix(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(sim.NonFiniteError):
        sim.cosine_matrix(np.array([[1.0, np.nan]]))
    with pytest.raises(sim.DTypeError):
        sim.cosine_matrix(np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="chunk_size"):
        sim.cosine_matrix(np.ones((2, 3)), chunk_size=0)


def test_random_matched_norm():
    lat = _latents(3).astype(np.float32)
    lat[0, 0] = 0.0
    rnd = sim.random_matched_norm(lat, seed=4, chunk_size=5)
    assert rnd.shape == lat.shape and rnd.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(rnd, axis=-1), np.linalg.norm(lat, axis=-1), rtol=1e-5)
    assert np.all(rnd[0, 0] == 0.0)
    np.testing.assert_array_equal(rnd, sim.random_matched_norm(lat, seed=4, chunk_size=5))
    assert not np.array_equal(rnd, sim.random_matched_norm(lat, seed=5))
    # Directions are unrelated to the latents' shared offset.
    assert abs(sim.within_instance(rnd, n_boot=0).mean_offdiag) < 0.2
