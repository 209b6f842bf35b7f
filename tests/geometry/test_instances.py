"""Tests for latentprobe.geometry: within_instance and across_instances."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from latentprobe import geometry as sim

from ._reference import SETTINGS, _latents, _ref_cosine


# --------------------------------------------------------------------------- #
# within_instance / across_instances
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("center", [False, True])
def test_within_instance_matches_direct(center):
    lat = _latents(0)
    res = sim.within_instance(lat, center=center, chunk_size=7)
    data = lat - lat.reshape(-1, 8).mean(0) if center else lat
    mats = np.stack([_ref_cosine(v, v) for v in data])
    np.testing.assert_allclose(res.step_matrix, mats.mean(0), atol=1e-12)
    np.testing.assert_array_equal(res.step_matrix, res.step_matrix.T)
    assert res.consecutive.columns.tolist() == ["step", "mean", "ci_low", "ci_high", "n"]
    assert res.consecutive["step"].tolist() == [1, 2, 3]
    assert (res.consecutive["n"] == 40).all()
    cons = np.stack([mats[:, k - 1, k] for k in range(1, 4)], axis=1)
    np.testing.assert_allclose(res.consecutive_values, cons, atol=1e-12)
    np.testing.assert_allclose(res.consecutive["mean"], cons.mean(0), atol=1e-12)
    assert (res.consecutive["ci_low"] <= res.consecutive["mean"]).all()
    assert (res.consecutive["mean"] <= res.consecutive["ci_high"]).all()
    np.testing.assert_allclose(res.mean_offdiag, mats.mean(0)[~np.eye(4, dtype=bool)].mean())
    again = sim.within_instance(lat, center=center)
    pd.testing.assert_frame_equal(res.consecutive, again.consecutive)


def test_within_instance_single_step_and_errors():
    res = sim.within_instance(_latents(1, k=1))
    assert res.step_matrix.shape == (1, 1)
    assert len(res.consecutive) == 0 and np.isnan(res.mean_offdiag)
    with pytest.raises(sim.ShapeError, match="3-D"):
        sim.within_instance(np.ones((5, 8)))
    with pytest.raises(ValueError, match="n_boot"):
        sim.within_instance(_latents(1), n_boot=-1)


@pytest.mark.parametrize("center", [False, True])
def test_across_instances_matrix_path(center):
    lat = _latents(2, n=25)
    groups = np.array(list("abcab") * 5)
    res = sim.across_instances(lat, groups=groups, center=center, n_boot=200)
    assert res.matrices.shape == (4, 25, 25)
    data = lat - lat.reshape(-1, 8).mean(0) if center else lat
    off = ~np.eye(25, dtype=bool)
    same = (groups[:, None] == groups[None, :]) & off
    diff = groups[:, None] != groups[None, :]
    for k in range(4):
        ref = _ref_cosine(data[:, k], data[:, k])
        np.testing.assert_allclose(res.matrices[k], ref, atol=1e-12)
        np.testing.assert_allclose(res.summary["mean_offdiag"][k], ref[off].mean(), atol=1e-12)
        np.testing.assert_allclose(res.by_group["within_group_mean"][k], ref[same].mean(), atol=1e-12)
        np.testing.assert_allclose(res.by_group["between_group_mean"][k], ref[diff].mean(), atol=1e-12)
    assert res.summary.columns.tolist() == ["step", "mean_offdiag", "ci_low", "ci_high", "n"]
    assert res.by_group["n_within_pairs"].iloc[0] == same.sum() // 2
    assert res.by_group["n_between_pairs"].iloc[0] == diff.sum() // 2
    assert (res.summary["ci_low"] <= res.summary["ci_high"]).all()


@SETTINGS
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(2, 30),
    k=st.integers(1, 3),
    n_groups=st.integers(1, 4),
    center=st.booleans(),
    chunk=st.integers(1, 20),
)
def test_across_large_path_equals_matrix_path(seed, n, k, n_groups, center, chunk):
    rng = np.random.default_rng(seed)
    lat = rng.normal(size=(n, k, 5)) + rng.normal(size=5)
    lat[rng.random(n) < 0.1] = 0.0  # some zero vectors
    groups = rng.integers(0, n_groups, size=n)
    kw = dict(groups=groups, center=center, n_boot=50, seed=3, chunk_size=chunk)
    full = sim.across_instances(lat, max_matrix=10_000, **kw)
    fast = sim.across_instances(lat, max_matrix=1, **kw)
    assert fast.matrices is None and full.matrices is not None
    np.testing.assert_allclose(fast.per_instance, full.per_instance, atol=1e-12)
    pd.testing.assert_frame_equal(fast.summary, full.summary, atol=1e-10)
    pd.testing.assert_frame_equal(fast.by_group, full.by_group, atol=1e-10)


def test_across_chunked_large_n_equals_direct():
    rng = np.random.default_rng(5)
    n, d = 3000, 10
    lat = (rng.normal(size=(n, 2, d)) + 1.0).astype(np.float32)
    groups = rng.integers(0, 4, size=n)
    res = sim.across_instances(lat, groups=groups, max_matrix=100, chunk_size=256, n_boot=20)
    assert res.matrices is None
    off = ~np.eye(n, dtype=bool)
    same = (groups[:, None] == groups[None, :]) & off
    for k in range(2):
        x = lat[:, k].astype(np.float64)
        ref = _ref_cosine(x, x)
        np.testing.assert_allclose(res.summary["mean_offdiag"][k], ref[off].mean(), atol=1e-12)
        np.testing.assert_allclose(res.by_group["within_group_mean"][k], ref[same].mean(), atol=1e-12)
        del ref


def test_across_errors():
    with pytest.raises(sim.TooFewSamplesError):
        sim.across_instances(_latents(0, n=1))
    with pytest.raises(sim.ShapeError, match="groups"):
        sim.across_instances(_latents(0, n=5), groups=[0, 1])
    with pytest.raises(sim.ShapeError, match="3-D"):
        sim.across_instances(np.ones((5, 8)))
