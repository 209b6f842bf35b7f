"""Tests for latentprobe.probing (small synthetic data, CPU only)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from latentprobe.probing import (
    SCORE_COLUMNS,
    LinearProbe,
    ProbeError,
    ProbeScore,
    ProbeSweepResult,
    compare_representations,
    control_task_labels,
    cross_validate_probe,
    group_kfold_splits,
    majority_baseline,
    probe_sweep,
    shuffle_control,
)

# A small grid keeps the nested CV cheap.
FAST = dict(Cs=(0.1, 1.0), inner_cv=2)


def grouped_data(n_groups=40, per_group=3, d=8, n_classes=3, signal=2.0, seed=0):
    """Labels constant within a group, linearly encoded in X along fixed directions."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), per_group)
    group_labels = rng.integers(0, n_classes, size=n_groups)
    y = group_labels[groups]
    directions = rng.normal(size=(n_classes, d))
    X = signal * directions[y] + rng.normal(size=(len(y), d))
    return X, y, groups


# ---------------------------------------------------------------------------
# LinearProbe
# ---------------------------------------------------------------------------


def test_linear_probe_classification_attributes():
    X, y, groups = grouped_data()
    probe = LinearProbe(**FAST).fit(X, y, groups=groups)
    assert probe.best_C_ in FAST["Cs"]
    np.testing.assert_array_equal(probe.classes_, [0, 1, 2])
    proba = probe.predict_proba(X)
    assert proba.shape == (len(y), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert probe.score(X, y) > 0.9
    assert probe.pipeline_.steps[0][0] == "scaler"
    assert probe.n_features_in_ == X.shape[1]


def test_linear_probe_regression_multioutput():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 6))
    Y = X @ rng.normal(size=(6, 4))
    probe = LinearProbe(task="regression", alphas=(0.01, 1.0)).fit(X, Y)
    assert probe.best_alpha_ in (0.01, 1.0)
    assert probe.predict(X).shape == (80, 4)
    assert probe.score(X, Y) > 0.99
    with pytest.raises(ProbeError, match="classification"):
        probe.predict_proba(X)


def test_linear_probe_sklearn_compat():
    X, y, groups = grouped_data(seed=2)
    probe = LinearProbe(Cs=(0.5,), max_iter=200, random_state=3)
    cloned = clone(probe)
    assert cloned.get_params() == probe.get_params()
    assert not hasattr(cloned, "pipeline_")
    scores = cross_val_score(probe, X, y, cv=GroupKFold(n_splits=3), groups=groups)
    assert scores.shape == (3,) and scores.mean() > 0.8
    pipe = make_pipeline(FunctionTransformer(), LinearProbe(**FAST))
    assert cross_val_score(pipe, X, y, cv=3).mean() > 0.8
    # Regression probes are seen as regressors by scikit-learn.
    from sklearn.base import is_classifier, is_regressor

    assert is_classifier(LinearProbe()) and is_regressor(LinearProbe(task="regression"))


def test_linear_probe_feature_mismatch():
    X, y, _ = grouped_data()
    probe = LinearProbe(Cs=(1.0,)).fit(X, y)
    with pytest.raises(ProbeError, match="features"):
        probe.predict(X[:, :3])


# ---------------------------------------------------------------------------
# Cross-validation and controls
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Sweeps
# ---------------------------------------------------------------------------


def test_probe_sweep_array_input():
    rng = np.random.default_rng(0)
    X, y, groups = grouped_data(n_groups=60, per_group=2, d=5, n_classes=2, signal=2.5)
    n, L, K, d = len(y), 2, 3, 5
    feats = rng.normal(size=(n, L, K, d))
    feats[:, 1, 2] = X  # only (layer 1, step 2) carries the label
    res = probe_sweep(feats, y, groups, n_splits=3, progress=False, probe=LinearProbe(**FAST), target_name="answer")
    assert isinstance(res, ProbeSweepResult)
    df = res.scores
    assert list(df.columns) == list(SCORE_COLUMNS)
    assert len(df) == L * K
    assert set(zip(df.layer, df.step)) == {(layer, step) for layer in range(L) for step in range(K)}
    assert (df.target == "answer").all() and (df.task == "classification").all()
    assert (df.chance == 0.5).all() and (df.n == n).all() and (df.n_groups == 60).all()
    assert df[["shuffle", "control", "selectivity", "majority"]].notna().all().all()
    np.testing.assert_allclose(df.selectivity, df.score - df.control)
    best = res.best()
    assert (best.layer, best.step) == (1, 2)
    assert best.score > 0.9 and best.selectivity > 0.3
    table = res.pivot()
    assert table.shape == (L, K)
    assert table.loc[1, 2] == best.score


def test_probe_sweep_dict_input_and_filters():
    X, y, groups = grouped_data(n_groups=20, per_group=3, d=4, n_classes=2)
    rng = np.random.default_rng(3)
    feats = {(layer, step): X + rng.normal(size=X.shape) for layer in (4, 8) for step in ("z0", "z1")}
    res = probe_sweep(
        feats, y, groups, n_splits=3, controls=False, progress=False, layers=[8], probe=LinearProbe(Cs=(1.0,))
    )
    df = res.scores
    assert list(df.columns) == list(SCORE_COLUMNS)
    assert sorted(zip(df.layer, df.step)) == [(8, "z0"), (8, "z1")]
    assert df[["shuffle", "control", "selectivity"]].isna().all().all()
    assert df.majority.notna().all()
    assert res.pivot().shape == (1, 2)


def test_probe_sweep_regression_and_determinism():
    rng = np.random.default_rng(4)
    n, d = 60, 5
    groups = np.arange(n) // 2
    feats = rng.normal(size=(n, 1, 2, d))
    Y = feats[:, 0, 0] @ rng.normal(size=(d, 3))  # step 0 maps linearly to the target
    kwargs = dict(task="regression", n_splits=3, progress=False, probe=LinearProbe(task="regression", alphas=(0.01, 1.0)))
    df = probe_sweep(feats, Y, groups, **kwargs).scores
    assert df.loc[df.step == 0, "score"].item() > 0.99
    assert df.loc[df.step == 1, "score"].item() <= 0.05
    assert (df.chance == 0.0).all() and (df.majority <= 0.0).all()
    again = probe_sweep(feats, Y, groups, **kwargs).scores
    pd.testing.assert_frame_equal(df, again)


def test_same_seed_same_scores():
    X, y, groups = grouped_data(n_groups=24, per_group=2, d=4, signal=0.7)
    a = cross_validate_probe(X, y, groups, n_splits=4, seed=7, probe=LinearProbe(**FAST))
    b = cross_validate_probe(X, y, groups, n_splits=4, seed=7, probe=LinearProbe(**FAST))
    assert a == b
    c = cross_validate_probe(X, y, groups, n_splits=4, seed=8, probe=LinearProbe(**FAST))
    assert a.fold_scores != c.fold_scores


def test_compare_representations():
    X, y, groups = grouped_data(n_groups=30, per_group=2, d=6, n_classes=2, signal=2.5)
    rng = np.random.default_rng(9)
    reps = {"latent": X, "random_weights_model": rng.normal(size=(len(y), 10))}
    df = compare_representations(reps, y, groups, n_splits=3, probe=LinearProbe(**FAST))
    assert list(df.representation) == ["latent", "random_weights_model"]
    expected = ["representation", "target"] + [c for c in SCORE_COLUMNS if c not in ("target", "layer", "step")]
    assert list(df.columns) == expected
    latent, rand = df.set_index("representation").loc[["latent", "random_weights_model"], "score"]
    assert latent > 0.9 and latent > rand + 0.25
    with pytest.raises(ProbeError, match="different numbers of examples"):
        compare_representations({"a": X, "b": X[:-2]}, y, groups)


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def test_errors():
    X, y, groups = grouped_data(n_groups=10, per_group=2, d=3)
    with pytest.raises(ProbeError, match="same length"):
        cross_validate_probe(X, y[:-1], groups)
    with pytest.raises(ProbeError, match="groups"):
        cross_validate_probe(X, y, groups[:-1])
    with pytest.raises(ProbeError, match="single class"):
        cross_validate_probe(X, np.zeros(len(y), dtype=int), groups)
    with pytest.raises(ProbeError, match="single class"):
        LinearProbe().fit(X, np.ones(len(y)))
    with pytest.raises(ProbeError, match="distinct groups"):
        cross_validate_probe(X, y, groups % 3, n_splits=5)
    with pytest.raises(ProbeError, match="4-D"):
        probe_sweep(X, y, groups, progress=False)
    with pytest.raises(ProbeError, match="task"):
        cross_validate_probe(X, y, groups, task="ranking")
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ProbeError, match="NaN"):
        LinearProbe().fit(bad, y)
    assert issubclass(ProbeError, ValueError)
