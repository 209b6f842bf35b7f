"""Tests for latentprobe.probing: probe sweeps and representation comparisons (small synthetic data, CPU only)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latentprobe.probing import (
    SCORE_COLUMNS,
    LinearProbe,
    ProbeError,
    ProbeSweepResult,
    compare_representations,
    cross_validate_probe,
    probe_sweep,
)

from ._data import FAST, grouped_data


def test_probe_sweep_array_input():
    rng = np.random.default_rng(0)
    X, y, groups = grouped_data(n_groups=60, per_group=2, d=5, n_classes=2, signal=2.5)
    n, L, K, d = len(y), 2, 3, 5
    feats = rng.normal(size=(n, L, K, d))
    feats[:, 1, 2] = X  # only (layer 1, step 2) carries the label
    types = np.arange(n) % 5  # a per-example key that recurs across groups (e.g. the question)
    res = probe_sweep(feats, y, groups, n_splits=3, progress=False, probe=LinearProbe(**FAST), target_name="answer",
                      control_types=types)
    assert isinstance(res, ProbeSweepResult)
    df = res.scores
    assert list(df.columns) == list(SCORE_COLUMNS)
    assert len(df) == L * K
    assert set(zip(df.layer, df.step)) == {(layer, step) for layer in range(L) for step in range(K)}
    assert (df.target == "answer").all() and (df.task == "classification").all()
    assert (df.chance == 0.5).all() and (df.n == n).all() and (df.n_groups == 60).all()
    assert df[["shuffle", "control", "selectivity", "majority"]].notna().all().all()
    np.testing.assert_allclose(df.selectivity, df.score - df.control)
    assert (df.selectivity_ci_low <= df.selectivity).all() and (df.selectivity <= df.selectivity_ci_high).all()
    assert (df.control_recur == 1.0).all()
    best = res.best()
    assert (best.layer, best.step) == (1, 2)
    assert best.score > 0.9 and best.selectivity > 0.3 and best.selectivity_ci_low > 0.2
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
    assert df[["shuffle", "control", "selectivity", "selectivity_ci_low", "control_recur"]].isna().all().all()
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
    df = compare_representations(reps, y, groups, n_splits=3, probe=LinearProbe(**FAST), control_types=np.arange(len(y)) % 4)
    assert list(df.representation) == ["latent", "random_weights_model"]
    expected = ["representation", "target"] + [c for c in SCORE_COLUMNS if c not in ("target", "layer", "step")]
    assert list(df.columns) == expected
    latent, rand = df.set_index("representation").loc[["latent", "random_weights_model"], "score"]
    assert latent > 0.9 and latent > rand + 0.25
    assert df.set_index("representation").loc["latent", "selectivity"] > 0.3
    with pytest.raises(ProbeError, match="different numbers of examples"):
        compare_representations({"a": X, "b": X[:-2]}, y, groups)
