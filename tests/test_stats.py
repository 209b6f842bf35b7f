"""Tests for latentprobe.stats."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from latentprobe.stats import (
    Effect,
    McNemarResult,
    StatsInputError,
    accuracy_difference,
    binary_outcome_effect,
    bootstrap_ci,
    bootstrap_mean_columns,
    effects_frame,
    mcnemar_exact,
    mediation_effects,
    paired_bootstrap_diff,
)


def _reference_studentized_ci(values, n_boot, seed, confidence=0.95):
    """Loop-based studentised bootstrap (bootstrap-t) with the documented index draws."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    m, se = values.mean(), values.std(ddof=1) / np.sqrt(n)
    t = np.array([(values[i].mean() - m) / (values[i].std(ddof=1) / np.sqrt(n)) for i in idx])
    alpha = 1 - confidence
    q_lo, q_hi = np.quantile(t, [alpha / 2, 1 - alpha / 2])
    return np.array([m - q_hi * se, m - q_lo * se])


# ---------------------------------------------------------------------------
# bootstrap_ci
# ---------------------------------------------------------------------------


def test_bootstrap_ci_matches_loop_reference_exactly():
    x = np.random.default_rng(1).normal(size=57)
    eff = bootstrap_ci(x, n_boot=700, seed=3)
    lo, hi = _reference_studentized_ci(x, 700, 3)
    assert eff.ci_low == pytest.approx(lo, abs=1e-9)
    assert eff.ci_high == pytest.approx(hi, abs=1e-9)
    assert eff.estimate == pytest.approx(x.mean())
    assert eff.n == 57
    assert 0.0 <= eff.p_value <= 1.0 and (eff.p_value < 0.05) == eff.excludes_zero
    assert eff.note == "" and "studentised" in eff.method


def test_bootstrap_ci_of_a_proportion_is_wilson():
    x = np.r_[np.ones(13), np.zeros(35)]
    eff = bootstrap_ci(x, name="accuracy")
    ref = sps.binomtest(13, 48).proportion_ci(method="wilson")
    assert (eff.ci_low, eff.ci_high) == pytest.approx((ref.low, ref.high), abs=1e-12)
    assert eff.p_value is None and "Wilson" in eff.method
    none = bootstrap_ci(np.zeros(48))  # no flip: still an interval, not [0, 0]
    assert none.ci_low == 0.0 and none.ci_high > 0.07


def test_bootstrap_ci_contains_true_mean_and_has_nominal_coverage():
    rng = np.random.default_rng(4)
    x = rng.normal(loc=2.5, scale=1.0, size=300)
    eff = bootstrap_ci(x, seed=0)
    assert eff.ci_low < 2.5 < eff.ci_high
    assert eff.ci_low < eff.estimate < eff.ci_high

    hits = 0
    reps = 200
    for r in range(reps):
        sample = rng.normal(loc=0.0, scale=1.0, size=60)
        e = bootstrap_ci(sample, n_boot=400, seed=r)
        hits += e.ci_low <= 0.0 <= e.ci_high
    # Expected ~0.95; binomial sd over 200 reps is ~0.016.
    assert 0.90 <= hits / reps <= 0.995


def test_bootstrap_ci_constant_values_zero_width_with_a_note():
    for v in (0.1, -3.7, 0.0, 1.0, 1e9 + 0.3):
        eff = bootstrap_ci(np.full(40, v), method="studentized")  # "auto" would read 0s or 1s as a proportion
        assert eff.ci_low == v and eff.ci_high == v and eff.estimate == v
        assert not eff.excludes_zero or v != 0.0
        assert "nothing varies" in eff.note


def test_bootstrap_ci_statistic_without_axis_matches_vectorised():
    x = np.random.default_rng(5).exponential(size=45)
    vec = bootstrap_ci(x, statistic=np.median, n_boot=300, seed=9)
    loop = bootstrap_ci(x, statistic=lambda v: float(np.median(v)), n_boot=300, seed=9)
    assert (vec.ci_low, vec.ci_high) == pytest.approx((loop.ci_low, loop.ci_high), abs=1e-12)
    # another statistic than the mean gets BCa, as scipy computes it from the same resamples
    ref = sps.bootstrap((x,), np.median, n_resamples=300, method="BCa", rng=np.random.default_rng(9))
    assert (vec.ci_low, vec.ci_high) == pytest.approx(tuple(ref.confidence_interval), abs=1e-12)
    assert "BCa" in vec.method


def test_bootstrap_ci_deterministic_given_seed_and_confidence_width():
    x = np.random.default_rng(6).normal(size=80)
    assert bootstrap_ci(x, seed=1) == bootstrap_ci(x, seed=1)
    e90 = bootstrap_ci(x, confidence=0.90, seed=1)
    e99 = bootstrap_ci(x, confidence=0.99, seed=1)
    assert (e99.ci_high - e99.ci_low) > (e90.ci_high - e90.ci_low)
    assert e90.confidence == 0.90


@pytest.mark.parametrize(
    "bad, match",
    [
        ([1.0, np.nan, 2.0], "NaN"),
        (np.ones((3, 4)), "1-D"),
        ([], "empty"),
        ([1.0, np.inf], "infinite"),
        (["a", "b"], "float"),
    ],
)
def test_bootstrap_ci_rejects_bad_input(bad, match):
    with pytest.raises(StatsInputError, match=match):
        bootstrap_ci(bad)


def test_bootstrap_ci_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci([1.0, 2.0], n_boot=0)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([1.0, 2.0], confidence=95)


def test_small_sample_note():
    e = bootstrap_ci(np.arange(12.0))
    assert e.note.startswith("small sample (n=12 < 30): interval is unreliable")
    assert bootstrap_ci(np.arange(30.0)).note == ""
    assert "n=5 < 30" in paired_bootstrap_diff(np.arange(5.0), np.zeros(5)).note


# ---------------------------------------------------------------------------
# paired_bootstrap_diff
# ---------------------------------------------------------------------------


def test_paired_diff_uses_same_indices_and_is_narrower():
    rng = np.random.default_rng(7)
    base = rng.normal(scale=5.0, size=150)
    a = base + 0.3 + rng.normal(scale=0.1, size=150)
    b = base + rng.normal(scale=0.1, size=150)
    eff = paired_bootstrap_diff(a, b, n_boot=1000, seed=11)

    # Reference: the studentised bootstrap of the per-example differences (one index matrix for a and b).
    lo, hi = _reference_studentized_ci(a - b, 1000, 11)
    assert (eff.ci_low, eff.ci_high) == pytest.approx((lo, hi), abs=1e-9)
    assert eff.estimate == pytest.approx(a.mean() - b.mean())
    assert eff.ci_low < 0.3 < eff.ci_high and eff.excludes_zero and eff.p_value < 0.05

    # Unpaired reference: independent indices for a and b.
    rng2 = np.random.default_rng(12)
    ia = rng2.integers(0, 150, size=(1000, 150))
    ib = rng2.integers(0, 150, size=(1000, 150))
    unpaired = a[ia].mean(axis=1) - b[ib].mean(axis=1)
    ulo, uhi = np.quantile(unpaired, [0.025, 0.975])
    assert (eff.ci_high - eff.ci_low) < 0.1 * (uhi - ulo)
    # Equivalent to the interval of the per-example differences.
    d = bootstrap_ci(a - b, n_boot=1000, seed=11)
    assert (d.ci_low, d.ci_high) == pytest.approx((eff.ci_low, eff.ci_high), abs=1e-9)


def test_paired_diff_with_another_statistic_is_paired_bca():
    rng = np.random.default_rng(3)
    a, b = rng.exponential(size=40), rng.exponential(size=40)
    eff = paired_bootstrap_diff(a, b, statistic=np.median, n_boot=800, seed=2)
    ref = sps.bootstrap((a, b), lambda x, y, axis=-1: np.median(x, axis=axis) - np.median(y, axis=axis),
                        paired=True, n_resamples=800, method="BCa", rng=np.random.default_rng(2))
    assert (eff.ci_low, eff.ci_high) == pytest.approx(tuple(ref.confidence_interval), abs=1e-12)


def test_paired_diff_rejects_mismatched_or_2d():
    with pytest.raises(StatsInputError, match="lengths"):
        paired_bootstrap_diff(np.ones(5), np.ones(6))
    with pytest.raises(StatsInputError, match="1-D"):
        paired_bootstrap_diff(np.ones((5, 2)), np.ones((5, 2)))
    with pytest.raises(StatsInputError, match="NaN"):
        paired_bootstrap_diff([1.0, 2.0], [np.nan, 1.0])


def test_paired_diff_constant_inputs():
    e = paired_bootstrap_diff(np.full(50, 0.7), np.full(50, 0.2))
    assert e.ci_low == e.ci_high == e.estimate == pytest.approx(0.5)


# ---------------------------------------------------------------------------
# McNemar
# ---------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=120),
)
def test_mcnemar_matches_binomtest(pairs):
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    res = mcnemar_exact(a, b)
    exp_b = sum(1 for x, y in pairs if x and not y)
    exp_c = sum(1 for x, y in pairs if not x and y)
    assert (res.b, res.c, res.n) == (exp_b, exp_c, len(pairs))
    if exp_b + exp_c == 0:
        assert res.p_value == 1.0
    else:
        ref = sps.binomtest(exp_b, exp_b + exp_c, 0.5).pvalue
        assert res.p_value == pytest.approx(ref, rel=1e-9, abs=1e-300)
    assert 0.0 <= res.p_value <= 1.0
    # Symmetric in the two conditions.
    swapped = mcnemar_exact(b, a)
    assert (swapped.b, swapped.c) == (res.c, res.b)
    assert swapped.p_value == pytest.approx(res.p_value)


def test_mcnemar_known_values_and_inputs():
    a = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0])
    b = np.array([0, 0, 0, 0, 0, 0, 0, 1, 0, 1])
    res = mcnemar_exact(a, b)
    assert isinstance(res, McNemarResult)
    assert (res.b, res.c, res.n, res.discordant) == (7, 1, 10, 8)
    assert res.p_value == pytest.approx(sps.binomtest(7, 8, 0.5).pvalue)
    assert res.p_value == pytest.approx(0.0703125)
    with pytest.raises(StatsInputError, match="boolean"):
        mcnemar_exact([0, 2, 1], [1, 1, 1])
    with pytest.raises(StatsInputError, match="lengths"):
        mcnemar_exact([True], [True, False])
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.b = 3  # type: ignore[misc]


def test_accuracy_difference_and_binary_outcome_effect():
    rng = np.random.default_rng(8)
    clean = rng.random(200) < 0.8
    patched = clean & (rng.random(200) < 0.7)
    eff = accuracy_difference(clean, patched, n_boot=1000, seed=2)
    b, c = int(np.sum(clean & ~patched)), int(np.sum(~clean & patched))
    assert eff.estimate == pytest.approx(clean.mean() - patched.mean())
    # the score test Tango's interval inverts: McNemar's chi-square without continuity correction
    assert eff.p_value == pytest.approx(sps.chi2.sf((b - c) ** 2 / (b + c), 1), rel=1e-12)
    assert eff.ci_low <= eff.estimate <= eff.ci_high
    assert eff.excludes_zero and eff.p_value < 1e-6
    assert "Tango" in eff.method and "exact McNemar p" in eff.method

    change = binary_outcome_effect(clean, patched, n_boot=1000, seed=2)
    assert change.estimate == pytest.approx(-eff.estimate)
    assert change.p_value == pytest.approx(eff.p_value)
    assert (change.ci_low, change.ci_high) == pytest.approx((-eff.ci_high, -eff.ci_low), abs=1e-12)

    same = accuracy_difference(clean, clean)
    assert same.estimate == 0.0 and same.ci_low < 0.0 < same.ci_high  # never [0, 0]
    assert same.p_value == 1.0
    assert "discordant" in same.note


# ---------------------------------------------------------------------------
# Mediation
# ---------------------------------------------------------------------------


def _mediation_data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    clean = rng.normal(size=n)
    treated = clean - 1.0 + rng.normal(scale=0.3, size=n)
    direct = clean - 0.2 + rng.normal(scale=0.3, size=n)
    indirect = clean - 0.8 + rng.normal(scale=0.3, size=n)
    return clean, treated, direct, indirect


def test_mediation_estimates_are_plain_means():
    clean, treated, direct, indirect = _mediation_data()
    te, nde, nie = mediation_effects(clean, treated, direct, indirect, n_boot=500, seed=1)
    assert [e.name for e in (te, nde, nie)] == ["TE", "NDE", "NIE"]
    assert te.estimate == pytest.approx(np.mean(treated - clean))
    assert nde.estimate == pytest.approx(np.mean(direct - clean))
    assert nie.estimate == pytest.approx(np.mean(indirect - clean))
    for e in (te, nde, nie):
        assert e.n == 120 and e.ci_low < e.estimate < e.ci_high and e.note == ""
    assert te.ci_low < -1.0 < te.ci_high

    # Reference: the studentised bootstrap of each effect's differences, one shared index matrix.
    for e, y in ((te, treated), (nde, direct), (nie, indirect)):
        assert (e.ci_low, e.ci_high) == pytest.approx(tuple(_reference_studentized_ci(y - clean, 500, 1)), abs=1e-9)


def test_mediation_of_correctness_uses_tango():
    rng = np.random.default_rng(0)
    clean = (rng.random(60) < 0.8).astype(float)
    treated = np.where(rng.random(60) < 0.2, 1 - clean, clean)
    te, _, _ = mediation_effects(clean, treated, clean, treated)
    ref = accuracy_difference(treated.astype(bool), clean.astype(bool))
    assert (te.ci_low, te.ci_high, te.p_value) == (ref.ci_low, ref.ci_high, ref.p_value)


def test_mediation_shares_indices_across_effects():
    clean, treated, direct, _ = _mediation_data(seed=3)
    te, _, nie = mediation_effects(clean, treated, direct, treated.copy(), n_boot=400, seed=5)
    # Identical per-example differences + shared indices => identical intervals.
    assert (nie.ci_low, nie.ci_high) == (te.ci_low, te.ci_high)


def test_mediation_zero_indirect_effect():
    clean, treated, direct, _ = _mediation_data(n=20)
    te, nde, nie = mediation_effects(clean, treated, direct, clean.copy(), names=("T", "D", "I"))
    assert nie.name == "I"
    assert nie.estimate == 0.0 and nie.ci_low == 0.0 and nie.ci_high == 0.0
    assert not nie.excludes_zero and nie.p_value == 1.0
    assert "small sample (n=20 < 30)" in te.note


def test_mediation_input_errors():
    c, t, d, i = _mediation_data(n=10)
    with pytest.raises(StatsInputError, match="lengths"):
        mediation_effects(c, t, d, i[:-1])
    with pytest.raises(StatsInputError, match="names"):
        mediation_effects(c, t, d, i, names=("a", "b"))
    t = t.copy()
    t[3] = np.nan
    with pytest.raises(StatsInputError, match="y_treated"):
        mediation_effects(c, t, d, i)


# ---------------------------------------------------------------------------
# Effect container
# ---------------------------------------------------------------------------


def test_effect_container_and_frame():
    e1 = Effect("a", 0.5, 0.1, 0.9, 40, None, "m")
    e2 = Effect("b", -0.2, -0.5, 0.1, 12, 0.03, "m", note="small")
    assert e1.excludes_zero and not e2.excludes_zero
    assert Effect("c", -1, -2, -0.5, 50, None, "m").excludes_zero
    d = e2.to_dict()
    assert d["name"] == "b" and d["p_value"] == 0.03 and d["excludes_zero"] is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        e1.estimate = 1.0  # type: ignore[misc]
    frame = effects_frame([e1, e2])
    assert list(frame["name"]) == ["a", "b"]
    assert list(frame.columns[:8]) == [
        "name", "estimate", "ci_low", "ci_high", "n", "p_value", "method", "note",
    ]
    assert np.isnan(frame.loc[0, "p_value"]) and frame.loc[1, "p_value"] == 0.03
    empty = effects_frame([])
    assert len(empty) == 0 and "estimate" in empty.columns
    with pytest.raises(StatsInputError, match="Effect"):
        effects_frame([{"name": "x"}])  # type: ignore[list-item]
    assert isinstance(frame, pd.DataFrame)


# ---------------------------------------------------------------------------
# Column means (shared index draw)
# ---------------------------------------------------------------------------


def test_bootstrap_mean_columns_matches_bootstrap_ci_column_by_column():
    rng = np.random.default_rng(1)
    v = rng.normal(size=(23, 6))
    v[:, 2] = 0.75
    v[:, 4] = rng.random(23) < 0.4  # a 0/1 column: Wilson
    est, lo, hi = bootstrap_mean_columns(v, n_boot=1500, seed=7)
    for j in range(6):
        ref = bootstrap_ci(v[:, j], n_boot=1500, seed=7)
        assert est[j] == pytest.approx(ref.estimate, abs=1e-15)
        assert (lo[j], hi[j]) == pytest.approx((ref.ci_low, ref.ci_high), abs=1e-12)
        if j not in (2, 4):
            np.testing.assert_allclose([lo[j], hi[j]], _reference_studentized_ci(v[:, j], 1500, 7), atol=1e-9)
    assert (est[2], lo[2], hi[2]) == (0.75, 0.75, 0.75)


def test_bootstrap_mean_columns_input_errors():
    with pytest.raises(StatsInputError, match="NaN"):
        bootstrap_mean_columns(np.array([[1.0, np.nan], [2.0, 3.0]]))
    with pytest.raises(StatsInputError, match="n examples"):
        bootstrap_mean_columns(np.ones(4))
