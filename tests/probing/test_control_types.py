"""Probe controls that can fail: recurring control types, within-type labels, the selectivity interval, the warning."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from latentprobe.errors import ControlTaskWarning
from latentprobe.probing import (
    LinearProbe,
    compare_representations,
    control_recurrence,
    group_kfold_splits,
    probe_sweep,
    recurring_types,
    shuffle_within_types,
)

from ._data import FAST

N_TYPES = 12


def _questions(n_groups=60, per_group=2, seed=0):
    """Image groups, each asked ``per_group`` questions drawn from ``N_TYPES`` recurring question texts."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), per_group)
    qid = rng.integers(0, N_TYPES, size=len(groups))
    questions = np.array([f"what is the thing number {q} ?" for q in qid])
    return groups, qid, questions


def _memorising():
    """Features that identify each question uniquely; the label is a function of the question."""
    groups, qid, questions = _questions()
    rng = np.random.default_rng(1)
    X = 3.0 * np.eye(N_TYPES)[qid] + 0.3 * rng.normal(size=(len(qid), N_TYPES))
    return X, qid % 3, groups, questions


def _planted():
    """Features that carry an image-level attribute (independent of the question) and the question."""
    groups, qid, questions = _questions()
    rng = np.random.default_rng(2)
    attr = rng.integers(0, 3, size=groups.max() + 1)[groups]
    X = np.concatenate([2.5 * np.eye(3)[attr], 3.0 * np.eye(N_TYPES)[qid]], axis=1) + 0.5 * rng.normal(size=(len(qid), 3 + N_TYPES))
    return X, attr, groups, questions


def _row(X, y, groups, types, **kw):
    return compare_representations({"x": X}, y, groups, n_splits=4, seed=0, control_types=types,
                                   probe=LinearProbe(**FAST), **kw).iloc[0]


def test_default_types_recur_in_every_fold():
    groups, _, questions = _questions(n_groups=40, per_group=3)
    rng = np.random.default_rng(5)
    # free-form questions: a recurring prefix and a unique tail, so whole questions never recur
    keys = [f"{q} {rng.integers(1_000_000)}" for q in questions]
    types = recurring_types(keys, groups, n_splits=4, seed=0)
    assert len(np.unique(types)) == N_TYPES  # backed off to the question without its unique tail
    assert set(types) == set(questions)
    splits = group_kfold_splits(groups, 4, 0)
    assert control_recurrence(types, splits) == 1.0
    for train, test in splits:
        assert np.isin(types[test], types[train]).all()
    # keys that already recur are kept whole
    np.testing.assert_array_equal(recurring_types(questions, groups, n_splits=4, seed=0), questions)


def test_recurring_types_falls_back_to_the_empty_type():
    groups = np.arange(8)
    keys = ["alpha one", "beta two", "gamma three", "delta four", "eps five", "zeta six", "eta seven", "theta eight"]
    assert recurring_types(keys, groups, n_splits=2, seed=0).tolist() == [""] * 8


def test_shuffle_within_types_keeps_each_types_labels():
    rng = np.random.default_rng(0)
    types = rng.integers(0, 20, size=500)
    y = rng.integers(0, 4, size=500)
    c = shuffle_within_types(y, types, seed=3)
    for t in np.unique(types):
        np.testing.assert_array_equal(np.sort(c[types == t]), np.sort(y[types == t]))
    assert np.mean(c != y) > 0.5
    np.testing.assert_array_equal(c, shuffle_within_types(y, types, seed=3))
    Y = rng.normal(size=(500, 2))
    C = shuffle_within_types(Y, types, seed=3)
    np.testing.assert_array_equal(np.sort(C[types == 0], axis=0), np.sort(Y[types == 0], axis=0))


def test_memorising_probe_is_not_selective_with_the_default_types():
    X, y, groups, questions = _memorising()
    types = recurring_types(questions, groups, n_splits=4, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ControlTaskWarning)
        s = _row(X, y, groups, types)
    assert s.score > 0.95
    assert s.selectivity <= 0.05
    assert s.selectivity_ci_low <= 0.0 <= s.selectivity_ci_high
    assert s.control_recur == 1.0
    # Hewitt & Liang's random label per type is as learnable here
    assert _row(X, y, groups, types, control_labels="per_type").selectivity <= 0.05


def test_group_keyed_types_cannot_fail_and_warn():
    X, y, groups, _ = _memorising()
    with pytest.warns(ControlTaskWarning, match="cannot be learned by construction.*question"):
        s = _row(X, y, groups, groups, control_labels="per_type")  # the former default: a random label per image
    assert s.control_recur == 0.0
    assert s.selectivity >= 0.5  # the memorising probe looks selective: the flaw the default fixes
    with pytest.warns(ControlTaskWarning, match="cannot be learned by construction"):
        assert _row(X, y, groups, groups).control_recur == 0.0
    with pytest.warns(ControlTaskWarning, match="every example has its own type"):
        _row(X, y, groups, np.arange(len(y)))


def test_planted_attribute_stays_selective():
    X, y, groups, questions = _planted()
    types = recurring_types(questions, groups, n_splits=4, seed=0)
    s = _row(X, y, groups, types)
    assert s.score > 0.9
    assert s.selectivity >= 0.5 and s.selectivity_ci_low > 0.3
    assert s.selectivity_ci_low <= s.selectivity <= s.selectivity_ci_high
    # a random label per question is learnable from the question part of the features
    assert _row(X, y, groups, types, control_labels="per_type").control > 0.9


def test_no_control_types_no_control_task():
    X, y, groups, _ = _planted()
    s = compare_representations({"x": X}, y, groups, n_splits=4, seed=0, probe=LinearProbe(**FAST)).iloc[0]
    assert np.isnan(s.control) and np.isnan(s.selectivity) and np.isnan(s.selectivity_ci_low)
    assert np.isnan(s.control_recur) and not np.isnan(s.shuffle)


def test_selectivity_interval_regression_and_sweep_columns():
    rng = np.random.default_rng(3)
    groups, qid, questions = _questions(n_groups=40)
    img = rng.normal(size=(groups.max() + 1, 2))[groups]
    feats = np.stack([img + 0.1 * rng.normal(size=img.shape), rng.normal(size=img.shape)], axis=1)[:, None]
    types = recurring_types(questions, groups, n_splits=4, seed=0)
    df = probe_sweep(feats, img, groups, task="regression", n_splits=4, control_types=types, progress=False,
                     probe=LinearProbe(task="regression", alphas=(0.1, 1.0))).scores
    carried, noise = df.iloc[0], df.iloc[1]
    assert carried.selectivity > 0.8 and carried.selectivity_ci_low > 0.5
    assert carried.selectivity_ci_low <= carried.selectivity <= carried.selectivity_ci_high
    assert noise.selectivity_ci_low < 0.1
    assert (df.control_recur == 1.0).all()


def test_unknown_control_labels_refused():
    X, y, groups, questions = _planted()
    from latentprobe.probing import ProbeError

    with pytest.raises(ProbeError, match="control_labels must be one of"):
        _row(X, y, groups, questions, control_labels="random")
