"""Tests for latentprobe.probing: the probe controls (small synthetic data, CPU only)."""

from __future__ import annotations

import numpy as np

from latentprobe.probing import LinearProbe, control_task_labels, majority_baseline, shuffle_control

from ._data import grouped_data


def test_shuffle_control_moves_labels_group_wise():
    X, y, groups = grouped_data(n_groups=20, per_group=3, d=4)
    fitted_labels: list[tuple[np.ndarray, np.ndarray]] = []

    class SpyProbe(LinearProbe):
        def fit(self, X, y, groups=None):
            fitted_labels.append((np.asarray(y), np.asarray(groups)))
            return super().fit(X, y, groups=groups)

    res = shuffle_control(X, y, groups, n_splits=4, seed=1, probe=SpyProbe(Cs=(1.0,)))
    assert len(fitted_labels) == 4
    changed = False
    for y_fit, g_fit in fitted_labels:
        for gid in np.unique(g_fit):
            assert len(np.unique(y_fit[g_fit == gid])) == 1
        # permutation keeps the label multiset of the training fold
        np.testing.assert_array_equal(np.sort(y_fit), np.sort(y[np.isin(groups, g_fit)]))
        changed |= not np.array_equal(y_fit, y[np.isin(groups, g_fit)])
    assert changed
    assert res == shuffle_control(X, y, groups, n_splits=4, seed=1, probe=SpyProbe(Cs=(1.0,)))


def test_control_task_labels():
    rng = np.random.default_rng(0)
    types = rng.integers(0, 3000, size=9000)
    y = rng.choice(["a", "b", "c"], p=[0.6, 0.3, 0.1], size=9000)
    ctrl = control_task_labels(y, types, seed=4)
    assert ctrl.shape == y.shape
    for t in np.unique(types)[:200]:
        assert len(np.unique(ctrl[types == t])) == 1
    for label, p in (("a", 0.6), ("b", 0.3), ("c", 0.1)):
        assert abs(np.mean(ctrl == label) - p) < 0.05
    np.testing.assert_array_equal(ctrl, control_task_labels(y, types, seed=4))
    assert not np.array_equal(ctrl, control_task_labels(y, types, seed=5))
    # 2-D regression targets: one target vector per type
    Y = rng.normal(size=(9000, 3))
    ctrl_y = control_task_labels(Y, types, seed=0)
    assert ctrl_y.shape == Y.shape
    first = np.flatnonzero(types == types[0])
    assert np.all(ctrl_y[first] == ctrl_y[first[0]])


def test_majority_baseline():
    assert majority_baseline(np.array([1, 1, 0]), np.array([1, 0, 1, 1])) == 0.75
    assert majority_baseline(np.array(["x", "y", "y"]), np.array(["x", "x"])) == 0.0
    rng = np.random.default_rng(0)
    assert majority_baseline(rng.normal(size=50), rng.normal(size=20)) <= 0.0
    assert majority_baseline(rng.normal(size=(50, 3)), rng.normal(size=(20, 3))) <= 0.0
    assert majority_baseline(np.array([0.0, 1.0, 1.0]), np.array([1.0, 0.0]), task="classification") == 0.5
