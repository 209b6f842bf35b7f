"""The probe p-value (probing.significance) and the multiple-comparison columns of the probe sweeps.

Simulations with known truths: null features (correlated within a group, labels independent of them)
give valid per-cell p-values; on 20-cell null grids Holm keeps the family-wise error and BH the false
discovery rate at or below 0.05, while reading raw per-cell intervals finds a cell "above chance" in
most runs.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats
from threadpoolctl import threadpool_limits

from latentprobe.probing import LinearProbe, compare_representations, cross_validate_probe, group_kfold_splits, probe_sweep
from latentprobe.probing.controls import majority_baseline
from latentprobe.probing.significance import oof_permutation_pvalue, permutations_for
from latentprobe.schema import PROBE_COMPARISON, PROBE_SCORES
from latentprobe.stats import simultaneous_level

PROBE = LinearProbe(Cs=(1.0,))


def _null_data(rng: np.random.Generator, n_groups: int = 24, per: int = 3, classes: int = 4, d: int = 4):
    """Labels constant within a group; features correlated within a group and independent of the labels."""
    groups = np.repeat(np.arange(n_groups), per)
    y = rng.integers(0, classes, n_groups)[groups]
    X = rng.normal(size=(n_groups, d))[groups] + 0.5 * rng.normal(size=(groups.size, d))
    return X, y, groups


def test_permutations_reach_holms_smallest_threshold():
    for m in (1, 7, 20, 224):
        n_perm = permutations_for(m)
        assert 2 / (n_perm + 1) <= 0.05 / m / 5 + 1e-12
    assert permutations_for(1) == 999


def test_perfect_predictions_get_the_smallest_p_value():
    groups = np.repeat(np.arange(60), 2)
    y = groups % 3
    splits = group_kfold_splits(groups, 5)
    assert oof_permutation_pvalue(y.copy(), y, groups, splits, n_perm=499) == pytest.approx(2 / 500)


def test_label_blind_predictions_get_a_large_p_value():
    groups = np.repeat(np.arange(60), 2)
    y = groups % 3
    splits = group_kfold_splits(groups, 5)
    p = oof_permutation_pvalue(np.zeros_like(y), y, groups, splits, n_perm=499)  # one class for all: no information
    assert p == 1.0


def test_groups_move_together_in_the_permutations():
    # two examples per group with different labels: a group-wise permutation keeps each pair's labels together,
    # so predictions that get exactly one of each pair right stay at half right under every permutation
    groups = np.repeat(np.arange(40), 2)
    y = np.tile([0, 1], 40)
    pred = np.zeros_like(y)
    splits = group_kfold_splits(groups, 4)
    assert oof_permutation_pvalue(pred, y, groups, splits, n_perm=99) == 1.0


def test_regression_p_value_is_small_for_a_good_predictor_and_large_for_noise():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(50), 2)
    y = rng.normal(size=100)
    splits = group_kfold_splits(groups, 5)
    good = oof_permutation_pvalue(y + 0.1 * rng.normal(size=100), y, groups, splits, task="regression", n_perm=499)
    noise = oof_permutation_pvalue(rng.normal(size=100), y, groups, splits, task="regression", n_perm=499)
    assert good == pytest.approx(2 / 500) and noise > 0.2


def test_cross_validate_probe_carries_the_p_value_and_other_levels():
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(60), 2)
    y = groups % 3
    X = rng.normal(size=(120, 4)) + 2.0 * np.eye(4)[y]
    s = cross_validate_probe(X, y, groups, n_splits=4, probe=PROBE, n_perm=199)
    assert s.p_value == pytest.approx(2 / 200)
    wide = s.interval(simultaneous_level(0.95, 20))
    assert wide[0] <= s.ci_low and wide[1] >= s.ci_high
    assert np.isnan(cross_validate_probe(X, y, groups, n_splits=4, probe=PROBE, n_perm=0).p_value)


def test_sweep_adds_the_family_columns_and_only_the_planted_cell_survives():
    rng = np.random.default_rng(2)
    groups = np.repeat(np.arange(60), 2)
    y = groups % 3
    feats = rng.normal(size=(120, 2, 3, 4))
    feats[:, 0, 1, :3] += 2.0 * np.eye(3)[y]
    s = probe_sweep(feats, y, groups, n_splits=4, controls=False, probe=PROBE, progress=False).scores
    PROBE_SCORES.check(s)
    assert s.loc[s["p_holm"] <= 0.05, ["layer", "step"]].values.tolist() == [[0, 1]]
    assert (s["p_holm"] >= s["p_value"]).all() and (s["p_bh"] >= s["p_value"]).all() and (s["p_holm"] >= s["p_bh"] - 1e-12).all()
    assert (s["ci_low_simultaneous"] <= s["ci_low"]).all() and (s["ci_high_simultaneous"] >= s["ci_high"]).all()
    none = probe_sweep(feats, y, groups, n_splits=4, controls=False, probe=PROBE, progress=False, n_perm=0).scores
    assert none[["p_value", "p_holm", "p_bh"]].isna().all().all()


def test_compare_representations_adjusts_over_the_representations():
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(60), 2)
    y = groups % 3
    reps = {"latent": rng.normal(size=(120, 4)) + 2.0 * np.eye(4)[y], "noise": rng.normal(size=(120, 4))}
    t = compare_representations(reps, y, groups, n_splits=4, probe=PROBE, controls=False)
    PROBE_COMPARISON.check(t)
    assert t["p_holm"].tolist()[0] <= 0.05 < t["p_holm"].tolist()[1]


def _null_p_values(reps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    perm, binom = [], []
    for r in range(reps):
        X, y, groups = _null_data(rng)
        s = cross_validate_probe(X, y, groups, n_splits=4, seed=r, probe=PROBE, n_perm=199)
        splits = group_kfold_splits(groups, 4, r)
        correct = round(sum(sc * len(te) for sc, (_, te) in zip(s.fold_scores, splits)))
        majority = np.mean([majority_baseline(y[tr], y[te]) for tr, te in splits])
        perm.append(s.p_value)
        binom.append(stats.binomtest(correct, len(y), majority, alternative="greater").pvalue)
    return np.array(perm), np.array(binom)


@pytest.mark.slow
def test_probe_p_value_is_valid_under_null_features_where_a_binomial_test_is_not():
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        perm, binom = _null_p_values(400, seed=1)
    # at most the level (a binomial upper bound on 400 draws at 0.05), and the binomial test far above it
    assert (perm <= 0.05).mean() <= stats.binom.ppf(0.99, 400, 0.05) / 400
    assert (perm <= 0.2).mean() <= stats.binom.ppf(0.99, 400, 0.2) / 400
    assert (binom <= 0.05).mean() > 0.15


def null_grid_error_rates(reps: int, seed: int = 0, cells: int = 20) -> dict[str, float]:
    """Run ``reps`` probe sweeps of ``cells`` null cells and return the error rates of each reading."""
    rng = np.random.default_rng(seed)
    any_raw_ci = any_sim_ci = any_raw_p = any_holm = any_bh = 0
    best = []
    for r in range(reps):
        n_groups, classes = 30, 4
        groups = np.repeat(np.arange(n_groups), 2)
        y = rng.integers(0, classes, n_groups)[groups]
        base = rng.normal(size=(n_groups, 1, cells, 3))[groups]
        feats = base + 0.5 * rng.normal(size=(groups.size, 1, cells, 3))
        s = probe_sweep(feats, y, groups, n_splits=3, seed=r, controls=False, probe=PROBE, progress=False).scores
        above = s["majority"]
        any_raw_ci += bool((s["ci_low"] > above).any())
        any_sim_ci += bool((s["ci_low_simultaneous"] > above).any())
        any_raw_p += bool((s["p_value"] <= 0.05).any())
        any_holm += bool((s["p_holm"] <= 0.05).any())
        any_bh += bool((s["p_bh"] <= 0.05).any())  # every cell is null: any discovery is a false one (FDR = FWER)
        best.append(float(s["score"].max()))
    return {"raw_ci_fwer": any_raw_ci / reps, "simultaneous_ci_fwer": any_sim_ci / reps, "raw_p_fwer": any_raw_p / reps,
            "holm_fwer": any_holm / reps, "bh_fdr": any_bh / reps, "best_cell_mean": float(np.mean(best))}


@pytest.mark.slow
def test_on_null_probe_grids_holm_and_bh_hold_their_levels_and_raw_intervals_do_not():
    reps = 60
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        rates = null_grid_error_rates(reps)
    bound = stats.binom.ppf(0.99, reps, 0.05) / reps
    assert rates["holm_fwer"] <= bound and rates["bh_fdr"] <= bound
    assert rates["raw_ci_fwer"] >= 0.3  # reading each cell's own interval finds "signal" in many null grids
    # the simultaneous intervals help but inherit the fold interval's optimism (folds share training data):
    # the stars (p_holm) are the reading with a guaranteed error rate
    assert rates["simultaneous_ci_fwer"] < rates["raw_ci_fwer"] / 2
    assert rates["best_cell_mean"] > 0.25 + 0.03  # the best null cell sits above chance
