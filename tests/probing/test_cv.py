"""Tests for latentprobe.probing: grouped cross-validation (small synthetic data, CPU only)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from latentprobe.probing import (
    LinearProbe,
    ProbeScore,
    control_task_labels,
    cross_validate_probe,
    group_kfold_splits,
    majority_baseline,
    shuffle_control,
)

from ._data import FAST, grouped_data


def test_signal_beats_chance_and_controls():
    X, y, groups = grouped_data(n_groups=45, per_group=3, n_classes=3, signal=2.0)
    probe = LinearProbe(**FAST)
    res = cross_validate_probe(X, y, groups, n_splits=5, probe=probe)
    assert isinstance(res, ProbeScore)
    assert res.n == len(y) and res.n_groups == 45 and res.n_splits == 5
    assert len(res.fold_scores) == 5
    assert res.ci_low <= res.score <= res.ci_high
    assert res.score > 0.9

    shuffled = shuffle_control(X, y, groups, n_splits=5, probe=probe)
    control = cross_validate_probe(X, control_task_labels(y, groups, seed=0), groups, n_splits=5, probe=probe)
    majority = np.mean([majority_baseline(y[tr], y[te]) for tr, te in group_kfold_splits(groups, 5, 0)])
    assert res.score > 1 / 3 + 0.3
    assert res.score > majority + 0.3
    assert res.score > shuffled.score + 0.3
    selectivity = res.score - control.score
    assert selectivity > 0.3


def test_noise_sits_at_chance():
    rng = np.random.default_rng(0)
    n = 1000
    X = rng.normal(size=(n, 5))
    y = np.tile([0, 1], n // 2)
    groups = np.arange(n) // 2  # pairs of examples share a group
    res = cross_validate_probe(X, y, groups, n_splits=5, probe=LinearProbe(Cs=(0.01, 1.0), inner_cv=2))
    assert res.ci_low <= 0.5 <= res.ci_high
    assert abs(res.score - 0.5) < 0.05


def test_outer_folds_never_split_a_group():
    X, y, groups = grouped_data(n_groups=20, per_group=4, d=4)
    X = np.column_stack([groups, X])  # first column carries the group id for the spy

    seen: list[tuple[str, set]] = []

    class SpyProbe(LinearProbe):
        def fit(self, X, y, groups=None):
            seen.append(("fit", set(np.asarray(X)[:, 0].astype(int))))
            return super().fit(X, y, groups=groups)

        def score(self, X, y):
            seen.append(("score", set(np.asarray(X)[:, 0].astype(int))))
            return super().score(X, y)

    cross_validate_probe(X, y, groups, n_splits=4, probe=SpyProbe(Cs=(1.0,)))
    assert [kind for kind, _ in seen] == ["fit", "score"] * 4
    for (_, train_ids), (_, test_ids) in zip(seen[::2], seen[1::2]):
        assert train_ids.isdisjoint(test_ids)
        assert train_ids | test_ids == set(range(20))


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 5), min_size=3, max_size=15),
    n_splits=st.integers(2, 3),
    seed=st.integers(0, 10),
)
def test_group_kfold_splits_properties(sizes, n_splits, seed):
    groups = np.repeat(np.arange(len(sizes)), sizes)
    splits = group_kfold_splits(groups, n_splits, seed)
    assert len(splits) == n_splits
    all_test = np.concatenate([te for _, te in splits])
    np.testing.assert_array_equal(np.sort(all_test), np.arange(len(groups)))
    for train, test in splits:
        assert len(test) > 0
        assert set(groups[train]).isdisjoint(groups[test])
        assert len(train) + len(test) == len(groups)


def test_regression_r2():
    rng = np.random.default_rng(2)
    n, d = 90, 6
    X = rng.normal(size=(n, d))
    groups = np.arange(n) // 3
    Y = X @ rng.normal(size=(d, 4))
    probe = LinearProbe(task="regression", alphas=(0.01, 1.0), inner_cv=2)
    res = cross_validate_probe(X, Y, groups, task="regression", n_splits=3, probe=probe)
    assert res.score > 0.99
    noise = cross_validate_probe(X, rng.normal(size=(n, 4)), groups, task="regression", n_splits=3, probe=probe)
    assert noise.score <= 0.05
