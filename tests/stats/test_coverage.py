"""Coverage with known truths (issue 19, deliverable 2): exact enumeration for paired 0/1 effects,
simulation for skewed continuous outcomes, and the benchmark that prints the table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from latentprobe.stats import paired_difference_ci
from latentprobe.stats.coverage import (
    BINARY_SCENARIOS, CONTINUOUS_SCENARIOS, DISTRIBUTIONS, binary_tables, coverage_continuous,
    coverage_paired_binary,
)

NS_BINARY = (48, 120)


def _scenarios(prefix):
    return [s for s in BINARY_SCENARIOS if s[0].startswith(prefix)]


@pytest.mark.parametrize("n", NS_BINARY)
@pytest.mark.parametrize("label,p_loss,p_gain", _scenarios("rare flips"))
def test_tango_coverage_is_nominal_with_rare_flips(label, p_loss, p_gain, n):
    r = coverage_paired_binary(n, p_loss, p_gain, scenario=label)
    assert 0.93 <= r.coverage <= 0.97, r
    assert r.zero_width == 0.0 and r.mc_se == 0.0 and r.replications is None
    assert r.truth == pytest.approx(p_gain - p_loss)


@pytest.mark.parametrize("n", NS_BINARY)
@pytest.mark.parametrize("label,p_loss,p_gain", BINARY_SCENARIOS)
def test_tango_never_under_covers_and_over_covers_only_with_few_expected_discordant_pairs(label, p_loss, p_gain, n):
    r = coverage_paired_binary(n, p_loss, p_gain, scenario=label)
    assert r.coverage >= 0.93, r
    if n * (p_loss + p_gain) >= 5:
        assert r.coverage <= 0.97, r
    assert r.zero_width == 0.0


def test_tango_coverage_matches_a_direct_enumeration():
    """The enumeration recomputed by hand: every table's interval from the public function."""
    n, p_loss, p_gain = 20, 0.15, 0.05
    total = covered = 0.0
    for g, l in zip(*binary_tables(n)):
        prob = sps.multinomial.pmf([g, l, n - g - l], n, [p_gain, p_loss, 1 - p_gain - p_loss])
        before = np.r_[np.zeros(g), np.ones(l), np.zeros(n - g - l)]
        after = np.r_[np.ones(g), np.zeros(l), np.zeros(n - g - l)]
        low, high, *_ = paired_difference_ci(before, after)
        total += prob
        covered += prob * (low <= p_gain - p_loss <= high)
    assert total == pytest.approx(1.0, abs=1e-12)
    assert coverage_paired_binary(n, p_loss, p_gain).coverage == pytest.approx(covered, abs=1e-12)


@pytest.mark.parametrize("n,issue_zero_width", [(48, 0.36), (120, 0.10)])
def test_the_percentile_bootstrap_under_covers_as_the_issue_reports(n, issue_zero_width):
    """Rare one-way flips, true effect -0.02: the old interval covers far less than 0.95 and is
    [0, 0] exactly when no answer flipped, with probability 0.98**n."""
    old = coverage_paired_binary(n, 0.02, 0.0, method="percentile")
    new = coverage_paired_binary(n, 0.02, 0.0)
    assert old.zero_width == pytest.approx(0.98 ** n, rel=1e-9)
    assert old.zero_width == pytest.approx(issue_zero_width, abs=0.03)
    assert old.coverage <= 1 - old.zero_width + 1e-12 and old.coverage < 0.93
    assert new.coverage > 0.95 and new.zero_width == 0.0


def test_no_sensible_interval_reaches_nominal_coverage_with_one_way_rare_flips_at_n_48():
    """Why the one-way rare-flip scenario cannot be in [0.93, 0.97]: the truth -0.02 is covered for
    a run of loss counts l in [a, b] (gain is always 0), and no run has probability in [0.93, 0.97]."""
    pmf = sps.binom.pmf(np.arange(49), 48, 0.02)
    runs = [pmf[a:b + 1].sum() for a in range(49) for b in range(a, 49)]
    assert not any(0.93 <= r <= 0.97 for r in runs)
    assert max(r for r in runs if r < 0.93) == pytest.approx(pmf[:3].sum())


@pytest.mark.slow
@pytest.mark.parametrize("n", (30, 120))
@pytest.mark.parametrize("distribution", CONTINUOUS_SCENARIOS)
def test_studentised_bootstrap_coverage_is_nominal_on_skewed_outcomes(distribution, n):
    r = coverage_continuous(distribution, n, reps=2000)
    assert r.replications == 2000 and r.mc_se < 0.0075  # +-0.015 is two standard errors
    assert 0.93 <= r.coverage <= 0.97, r
    assert r.zero_width == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("distribution", ("exponential", "lognormal"))
def test_studentised_beats_bca_and_percentile_at_n_30(distribution):
    """The measured reason for the choice of the studentised bootstrap."""
    cov = {m: coverage_continuous(distribution, 30, method=m, reps=2000).coverage
           for m in ("studentized", "bca", "percentile")}
    assert cov["bca"] < 0.93 and cov["percentile"] < 0.93
    assert cov["studentized"] > cov["bca"] + 0.01


def test_continuous_simulation_equals_one_call_per_sample():
    r = coverage_continuous("exponential", 15, reps=40, n_boot=300, seed=2)
    x = DISTRIBUTIONS["exponential"][0](np.random.default_rng([2, 1]), (40, 15))
    hits = [paired_difference_ci(np.zeros(15), row, seed=2, n_boot=300) for row in x]
    assert r.coverage == pytest.approx(np.mean([h.low <= 1.0 <= h.high for h in hits]), abs=1e-12)
    assert r.mean_width == pytest.approx(np.mean([h.high - h.low for h in hits]), rel=1e-9)


@pytest.mark.slow
def test_benchmark_prints_the_coverage_table():
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "stats_coverage.py"
    out = subprocess.run([sys.executable, str(script), "--quick"], capture_output=True, text=True, timeout=600,
                         check=True).stdout
    assert "| scenario | n | method | truth | coverage |" in out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "scenario" not in line]
    assert any("| tango |" in r for r in rows) and any("| percentile |" in r for r in rows)
    assert any("| studentized |" in r for r in rows) and any("| bca |" in r for r in rows)
