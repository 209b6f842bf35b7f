"""float32 input is computed in float32 (float64 sums) and matches the float64 computation to 1e-5."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import latentprobe.geometry as sim

from ._reference import _latents


def _close(a, b, rel=1e-5, abs_=1e-6):
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=rel, atol=abs_)


@pytest.mark.parametrize("center", [False, True])
def test_float32_matches_float64(center):
    lat32 = _latents(3, n=60, k=3, d=24).astype(np.float32)
    lat64 = lat32.astype(np.float64)
    groups = np.arange(60) % 4
    for max_matrix in (0, 1000):
        a = sim.across_instances(lat32, groups=groups, center=center, max_matrix=max_matrix, n_boot=0, chunk_size=16)
        b = sim.across_instances(lat64, groups=groups, center=center, max_matrix=max_matrix, n_boot=0, chunk_size=16)
        _close(a.per_instance, b.per_instance)
        _close(a.by_group[["within_group_mean", "between_group_mean"]], b.by_group[["within_group_mean", "between_group_mean"]])
    w32, w64 = sim.within_instance(lat32, center=center, n_boot=0), sim.within_instance(lat64, center=center, n_boot=0)
    _close(w32.step_matrix, w64.step_matrix)
    _close(sim.cosine_matrix(lat32[:, 0], center=center), sim.cosine_matrix(lat64[:, 0], center=center))
    for debiased in (True, False):
        _close(sim.cka_matrix(lat32, debiased=debiased, chunk_size=16), sim.cka_matrix(lat64, debiased=debiased, chunk_size=16))
    flat32, flat64 = lat32.reshape(-1, 24), lat64.reshape(-1, 24)
    _close(sim.effective_rank(flat32, center=center), sim.effective_rank(flat64, center=center))
    _close(sim.participation_ratio(flat32, center=center), sim.participation_ratio(flat64, center=center))


def test_float32_row_equal_to_mean_has_no_direction():
    y = np.array([[1.0, 2.0], [3.0, 4.0], [2.0, 3.0]], dtype=np.float32)
    assert np.all(sim.cosine_matrix(y, center=True)[2] == 0.0)


def test_float32_magnitude_limit():
    x = np.ones((4, 3), dtype=np.float32)
    x[1, 1] = 1e20
    with pytest.raises(sim.NonFiniteError, match="float64"):
        sim.cosine_matrix(x)


def test_across_instances_memory_is_bounded_by_the_chunk():
    lat = np.random.default_rng(0).standard_normal((4000, 2, 128), dtype=np.float32)  # 4 MiB
    sim.across_instances(lat[:10], n_boot=0, max_matrix=0)  # first-call allocations
    tracemalloc.start()
    sim.across_instances(lat, center=True, n_boot=0, max_matrix=0, chunk_size=256)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 0.25 * lat.nbytes
