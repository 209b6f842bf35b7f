"""paired_difference_ci and one_sample_ci against independent computations (scipy, hand formulas, loops)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats as sps
from scipy.special import ndtri

from latentprobe.stats import Interval, StatsInputError, one_sample_ci, paired_difference_ci
from latentprobe.stats import intervals as iv
from latentprobe.stats.coverage import binary_tables


def _pairs(gain, loss, n):
    """before/after 0/1 arrays with ``gain`` 0->1 and ``loss`` 1->0 pairs (the rest 1->1 and 0->0)."""
    both_right = (n - gain - loss) // 2
    both_wrong = n - gain - loss - both_right
    before = np.r_[np.zeros(gain), np.ones(loss), np.ones(both_right), np.zeros(both_wrong)]
    after = np.r_[np.ones(gain), np.zeros(loss), np.ones(both_right), np.zeros(both_wrong)]
    return before, after


# ------------------------------------------------------------------ Tango, against a numerical score test
def _score_statistic_numeric(delta, gain, loss, n):
    """Tango's score statistic with the constrained MLE found numerically (not the closed form).

    Cells (p12, p21) with p12 - p21 = delta: p12 = gain probability, p21 = loss probability.
    """
    lo = max(0.0, -delta) + 1e-15
    hi = min(1.0, (1.0 - delta) / 2.0) - 1e-15

    def nll(p21):
        p12 = p21 + delta
        rest = 1.0 - p12 - p21
        return -(gain * np.log(max(p12, 1e-300)) + loss * np.log(max(p21, 1e-300))
                 + (n - gain - loss) * np.log(max(rest, 1e-300)))

    p21 = optimize.minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-14}).x
    return (gain - loss - n * delta) / np.sqrt(n * (2 * p21 + delta * (1 - delta)))


@pytest.mark.parametrize("gain,loss,n", [(7, 1, 21), (1, 7, 21), (6, 16, 161), (40, 20, 160), (0, 4, 48), (3, 0, 120)])
def test_tango_limits_solve_the_numerical_score_equation(gain, loss, n):
    z = float(ndtri(0.975))
    low, high, est, p, *_ = paired_difference_ci(*_pairs(gain, loss, n))
    assert est == pytest.approx((gain - loss) / n)
    assert _score_statistic_numeric(low, gain, loss, n) == pytest.approx(z, abs=2e-5)
    assert _score_statistic_numeric(high, gain, loss, n) == pytest.approx(-z, abs=2e-5)
    # the roots found independently by brentq on the numerical statistic
    ref_low = optimize.brentq(lambda d: _score_statistic_numeric(d, gain, loss, n) - z, -1 + 1e-9, est)
    ref_high = optimize.brentq(lambda d: _score_statistic_numeric(d, gain, loss, n) + z, est, 1 - 1e-9)
    assert (low, high) == pytest.approx((ref_low, ref_high), abs=1e-6)
    # p from the score test at 0: McNemar's chi-square without continuity correction
    chi2 = (gain - loss) ** 2 / (gain + loss)
    assert p == pytest.approx(sps.chi2.sf(chi2, 1), rel=1e-12)


def test_tango_without_discordant_pairs_is_not_zero_width():
    for n in (12, 48, 120):
        low, high, est, p, method, nn, note, exact, level = paired_difference_ci(np.ones(n), np.ones(n))
        z2 = float(ndtri(0.975)) ** 2
        assert (low, high) == pytest.approx((-z2 / (n + z2), z2 / (n + z2)), abs=1e-12)
        assert est == 0.0 and p == 1.0 and exact == 1.0 and nn == n and "Tango" in method
        assert "few discordant pairs" in note


def test_tango_all_lost_reaches_minus_one():
    low, high, est, *_ = paired_difference_ci(np.ones(30), np.zeros(30))
    assert est == -1.0 and low == pytest.approx(-1.0, abs=1e-12)
    assert _score_statistic_numeric(high, 0, 30, 30) == pytest.approx(-float(ndtri(0.975)), abs=2e-5)


@pytest.mark.slow
def test_interval_excludes_zero_iff_score_p_below_alpha_for_every_table_up_to_n_120():
    """The exhaustive check: every (gain, loss) with gain + loss <= n, every n in 1..120, two levels."""
    gs, ls, ns = [], [], []
    for n in range(1, 121):
        g, l = binary_tables(n)
        gs.append(g), ls.append(l), ns.append(np.full(g.size, n))
    g, l, n = np.concatenate(gs), np.concatenate(ls), np.concatenate(ns)
    p = iv.score_p_value(g, l)
    est = (g - l) / n
    for level in (0.95, 0.90):
        low, high = iv.tango_limits(g, l, n, level)
        excludes = (low > 0) | (high < 0)
        assert np.array_equal(excludes, p < 1 - level), int(np.sum(excludes != (p < 1 - level)))
        assert np.all(high - low > 0)  # never zero width
        assert np.all((low <= est) & (est <= high) & (low >= -1) & (high <= 1))
    assert g.size == sum((k + 1) * (k + 2) // 2 for k in range(1, 121))


def test_public_function_agrees_with_the_vectorised_engine_and_mcnemar_exact():
    for gain, loss, n in [(0, 5, 48), (2, 9, 120), (12, 3, 60)]:
        r = paired_difference_ci(*_pairs(gain, loss, n), level=0.9)
        low, high = iv.tango_limits(gain, loss, n, 0.9)
        assert (r.low, r.high) == (float(low), float(high))
        assert r.mcnemar_exact_p == pytest.approx(sps.binomtest(min(gain, loss), gain + loss, 0.5).pvalue)
        assert r.level == 0.9 and isinstance(r, Interval) and r.n == n


def test_tango_unpacks_and_converts_to_an_effect():
    low, high, *rest = paired_difference_ci([1, 1, 0, 1], [0, 1, 0, 1])
    assert low < -0.25 < high and len(rest) == 7
    e = paired_difference_ci([1, 1, 0, 1], [0, 1, 0, 1]).to_effect("accuracy_change")
    assert (e.name, e.ci_low, e.ci_high, e.estimate) == ("accuracy_change", low, high, -0.25)


# ------------------------------------------------------------------ Wilson
@pytest.mark.parametrize("k,n", [(0, 48), (3, 48), (48, 48), (17, 120)])
def test_one_sample_binary_is_wilson_as_scipy_computes_it(k, n):
    ci = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high, est, p, method, *_ = one_sample_ci(np.r_[np.ones(k), np.zeros(n - k)])
    assert (low, high) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert est == k / n and p is None and "Wilson" in method
    assert high > low


# ------------------------------------------------------------------ studentised bootstrap, against a loop
def _loop_studentized(x, n_boot, seed, level=0.95):
    x = np.asarray(x, dtype=float)
    n = x.size
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    m, se = x.mean(), x.std(ddof=1) / np.sqrt(n)
    t = np.array([(x[i].mean() - m) / (x[i].std(ddof=1) / np.sqrt(n)) for i in idx])
    a = 1 - level
    q_lo, q_hi = np.quantile(t, [a / 2, 1 - a / 2])
    return m - q_hi * se, m - q_lo * se


@pytest.mark.parametrize("n,seed,level", [(30, 0, 0.95), (57, 3, 0.9), (120, 11, 0.95)])
def test_continuous_paired_is_the_studentised_bootstrap_of_the_differences(n, seed, level):
    rng = np.random.default_rng(n)
    before = rng.normal(size=n)
    after = before + rng.exponential(size=n) - 0.5
    r = paired_difference_ci(before, after, level=level, seed=seed, n_boot=1500)
    lo, hi = _loop_studentized(after - before, 1500, seed, level)
    assert (r.low, r.high) == pytest.approx((lo, hi), abs=1e-9)
    assert r.estimate == pytest.approx(np.mean(after - before))
    assert "studentised" in r.method and r.mcnemar_exact_p is None
    one = one_sample_ci(after - before, level=level, seed=seed, n_boot=1500)
    assert (one.low, one.high) == pytest.approx((r.low, r.high), abs=1e-12)


def test_studentised_p_is_consistent_with_the_interval():
    rng = np.random.default_rng(5)
    agree = 0
    for trial in range(200):
        n = int(rng.integers(8, 60))
        d = rng.standard_t(3, size=n) * 0.5 + rng.normal(0, 0.3) + 0.2
        r = paired_difference_ci(np.zeros(n), d, seed=trial, n_boot=400)
        excl = r.low > 0 or r.high < 0
        assert excl == (r.p_value < 0.05), (trial, r)
        agree += excl
    assert 20 < agree < 180  # both outcomes occur


def test_bca_matches_scipy_on_the_same_resamples():
    x = np.random.default_rng(9).lognormal(size=40)
    r = one_sample_ci(x, method="bca", seed=4, n_boot=3000)
    ref = sps.bootstrap((x,), np.mean, n_resamples=3000, method="BCa", rng=np.random.default_rng(4)).confidence_interval
    assert (r.low, r.high) == pytest.approx((ref.low, ref.high), abs=1e-10)
    pr = paired_difference_ci(np.zeros(40), x, method="bca", seed=4, n_boot=3000)
    assert (pr.low, pr.high) == pytest.approx((ref.low, ref.high), abs=1e-10)


def test_percentile_option_is_the_previous_interval():
    x = np.random.default_rng(2).normal(size=50)
    r = one_sample_ci(x, method="percentile", seed=3, n_boot=700)
    idx = np.random.default_rng(3).integers(0, 50, size=(700, 50))
    ref = np.quantile([x[i].mean() for i in idx], [0.025, 0.975])
    assert (r.low, r.high) == pytest.approx(tuple(ref), abs=1e-12)


def test_constant_continuous_sample_gives_the_point_with_a_note():
    r = paired_difference_ci(np.full(40, 0.2), np.full(40, 0.7))
    assert (r.low, r.high, r.p_value) == pytest.approx((0.5, 0.5, 0.0))
    assert "nothing varies" in r.note
    z = paired_difference_ci(np.full(10, 0.3), np.full(10, 0.3))
    assert (z.low, z.high, z.p_value) == (0.0, 0.0, 1.0)


def test_point_mass_sample_falls_back_to_bca_instead_of_an_absurd_interval():
    d = np.r_[np.zeros(27), [-0.9, -0.4, -0.7]]
    r = paired_difference_ci(np.zeros(30), d)
    assert np.isfinite(r.low) and np.isfinite(r.high) and r.low >= -1.8 and r.high <= 0.9
    assert r.low < r.estimate < r.high
    assert r.p_value is None and r.method.startswith("BCa")


def test_reproducible_by_seed():
    x = np.random.default_rng(1).exponential(size=33)
    assert paired_difference_ci(np.zeros(33), x, seed=5) == paired_difference_ci(np.zeros(33), x, seed=5)
    assert paired_difference_ci(np.zeros(33), x, seed=5) != paired_difference_ci(np.zeros(33), x, seed=6)


def test_bad_inputs_are_refused_with_the_argument_named():
    with pytest.raises(StatsInputError, match="lengths"):
        paired_difference_ci([0, 1], [1, 1, 0])
    with pytest.raises(StatsInputError, match="tango"):
        paired_difference_ci([0.5, 1], [1, 1], method="tango")
    with pytest.raises(StatsInputError, match="method"):
        paired_difference_ci([0, 1], [1, 1], method="exact")
    with pytest.raises(StatsInputError, match="level"):
        paired_difference_ci([0, 1], [1, 1], level=95)
    with pytest.raises(StatsInputError, match="wilson"):
        one_sample_ci([0.5, 1.0], method="wilson")
    with pytest.raises(StatsInputError, match="NaN"):
        one_sample_ci([np.nan, 1.0])
