"""Numeric targets: a ridge probe recovers a planted continuous target and its shuffled-target control does not;
binned values give a logistic probe; gold chains parse into intermediate results."""

import numpy as np
import pytest

from latentprobe.errors import ProbeError
from latentprobe.probing import (LinearProbe, bin_values, intermediate_values, numeric_values, parse_intermediates,
                                 probe_sweep)


def _planted(seed=0, n_groups=60, per=3, d=12, noise=0.1):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), per)
    X = rng.normal(size=(n_groups * per, d))
    w = rng.normal(size=d)
    y = X @ w / np.sqrt(d) + noise * rng.normal(size=len(X))
    features = np.stack([rng.normal(size=X.shape), X], axis=1)[:, :, None, :]  # layer 0 noise, layer 1 carries y
    return features, y, groups


def test_regression_probe_recovers_a_planted_continuous_target_and_its_shuffled_control_does_not():
    features, y, groups = _planted()
    res = probe_sweep(features, y, groups, task="regression", control_types="shuffled", n_splits=4, seed=0,
                      probe=LinearProbe(task="regression"), progress=False, n_perm=0)
    s = res.scores.set_index("layer")
    assert (s["task"] == "regression").all() and (s["chance"] == 0.0).all()
    assert s.loc[1, "score"] >= 0.9  # R^2 of the planted target
    assert abs(s.loc[1, "control"]) < 0.1 and abs(s.loc[1, "shuffle"]) < 0.15  # shuffled targets: R^2 near 0
    assert s.loc[1, "selectivity"] == pytest.approx(s.loc[1, "score"] - s.loc[1, "control"])
    assert s.loc[1, "selectivity_ci_low"] > 0.8
    assert s.loc[1, "control_recur"] == 1.0  # one type: the control task is learnable in principle
    assert s.loc[0, "score"] < 0.1 and s.loc[0, "selectivity_ci_low"] < 0.1  # the noise layer


def test_binned_values_give_a_logistic_probe_scored_by_accuracy():
    features, y, groups = _planted(seed=1)
    labels = bin_values(y, n_bins=4)
    assert sorted(np.bincount(labels).tolist()) == [45, 45, 45, 45]
    res = probe_sweep(features, labels, groups, control_types="shuffled", n_splits=4, seed=0,
                      probe=LinearProbe(Cs=(1.0,)), progress=False, n_perm=0)
    s = res.scores.set_index("layer")
    assert s.loc[1, "chance"] == 0.25 and s.loc[1, "score"] > 0.6
    assert abs(s.loc[1, "control"] - 0.25) < 0.12 and abs(s.loc[0, "score"] - 0.25) < 0.12


def test_control_types_other_strings_are_refused():
    features, y, groups = _planted()
    with pytest.raises(ProbeError, match="control_types='question'"):
        probe_sweep(features, y, groups, task="regression", control_types="question", progress=False)


def test_numeric_values_from_a_column_and_a_callable():
    assert numeric_values([1, "2.5", None, "none", "1,000"]).tolist()[:2] == [1.0, 2.5]
    assert np.isnan(numeric_values([1, None])[1])
    assert numeric_values(lambda e: e["count"], [{"count": 3}, {"count": 0}]).tolist() == [3.0, 0.0]
    with pytest.raises(ProbeError, match="'red' is not a number"):
        numeric_values(["red"], name="colour")
    with pytest.raises(ProbeError, match="needs the examples"):
        numeric_values(len)
    with pytest.raises(ProbeError, match="no example has a value"):
        numeric_values([None, "none"])


def test_bins_refuse_constant_values():
    with pytest.raises(ProbeError, match="1 bin"):
        bin_values([2.0, 2.0, 2.0])
    assert bin_values([1.0, np.nan, 3.0], n_bins=2).tolist() == [0, -1, 1]


def test_gold_chains_parse_into_intermediate_results():
    chain = "<<48/2=24>> <<48+24=72>>"
    assert parse_intermediates(chain) == (24.0, 72.0)
    assert parse_intermediates("no steps here") == ()
    assert parse_intermediates(["<<2.5*2=5.0>>", "<<5-7=-2>>"]) == (5.0, -2.0)
    got = intermediate_values([chain, "<<3*3=9>>", None], 1)
    assert got[0] == 72.0 and np.isnan(got[1:]).all()
    assert intermediate_values([chain, "<<3*3=9>>"], -1).tolist() == [72.0, 9.0]
    with pytest.raises(ProbeError, match="no chain has step 5"):
        intermediate_values([chain], 5)
