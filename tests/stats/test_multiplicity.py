"""Holm and Benjamini-Hochberg adjustments, simultaneous levels, and their error rates on null grids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from latentprobe.errors import StatsInputError
from latentprobe.stats import add_adjusted_columns, adjust_pvalues, simultaneous_level


def test_holm_and_bh_by_hand():
    p = np.array([0.001, 0.04, 0.03, 0.2])
    # Holm: sorted 0.001, 0.03, 0.04, 0.2 times 4, 3, 2, 1, running maximum
    assert adjust_pvalues(p, "holm").tolist() == pytest.approx([0.004, 0.09, 0.09, 0.2])
    # BH: sorted times 4/1, 4/2, 4/3, 4/4, running minimum from the top
    assert adjust_pvalues(p, "fdr_bh").tolist() == pytest.approx([0.004, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.2])
    assert adjust_pvalues(p, "bonferroni").tolist() == pytest.approx([0.004, 0.16, 0.12, 0.8])


def test_agrees_with_statsmodels():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(7)
    for m in (1, 2, 5, 20, 200):
        p = rng.uniform(size=m) ** 3
        p[: m // 4] = p[0]  # ties
        for method in ("holm", "fdr_bh", "bonferroni"):
            assert adjust_pvalues(p, method).tolist() == pytest.approx(multipletests(p, method=method)[1].tolist(),
                                                                      rel=1e-12, abs=0)


def test_nan_is_no_test_and_stays_out_of_the_family():
    out = adjust_pvalues([0.01, np.nan, 0.02], "holm")
    assert np.isnan(out[1]) and out[[0, 2]].tolist() == pytest.approx([0.02, 0.02])
    assert np.isnan(adjust_pvalues([np.nan, np.nan])).all()


def test_bad_inputs_are_refused():
    with pytest.raises(StatsInputError, match="unknown method"):
        adjust_pvalues([0.1], "sidak-ish")
    with pytest.raises(StatsInputError, match=r"\[0, 1\]"):
        adjust_pvalues([1.5])
    with pytest.raises(StatsInputError, match="no column"):
        add_adjusted_columns(pd.DataFrame({"p": [0.1]}))


def test_simultaneous_level():
    assert simultaneous_level(0.95, 1) == pytest.approx(0.95)
    assert simultaneous_level(0.95, 20) == pytest.approx(0.9975)
    with pytest.raises(StatsInputError):
        simultaneous_level(0.95, 0)


def test_families_by_column():
    t = pd.DataFrame({"metric": ["a", "a", "b", "b"], "p_value": [0.01, 0.04, 0.01, np.nan]})
    out = add_adjusted_columns(t, by=["metric"])
    assert out["p_holm"].tolist()[:3] == pytest.approx([0.02, 0.04, 0.01]) and np.isnan(out["p_holm"].iloc[3])
    assert out["p_bh"].tolist()[:3] == pytest.approx([0.02, 0.04, 0.01])  # 0.01 x 2/1, 0.04 x 2/2
    assert list(t.columns) == ["metric", "p_value"]  # the input is not changed


def _error_rates(p: np.ndarray, null: np.ndarray) -> dict[str, float]:
    """Per-replication family-wise error and false discovery proportion of each reading, averaged."""
    out = {}
    for name, adj in (("raw", p), ("holm", np.vstack([adjust_pvalues(r, "holm") for r in p])),
                      ("bh", np.vstack([adjust_pvalues(r, "fdr_bh") for r in p]))):
        called = adj <= 0.05
        false = called & null
        out[f"{name}_fwer"] = float(false.any(axis=1).mean())
        out[f"{name}_fdr"] = float((false.sum(axis=1) / np.maximum(called.sum(axis=1), 1)).mean())
    return out


REPS = 20_000
BOUND = 0.05 + 3 * np.sqrt(0.05 * 0.95 / REPS)  # 0.05 plus three standard errors of the simulated rate


def test_null_grids_of_independent_p_values():
    p = np.random.default_rng(0).uniform(size=(REPS, 20))
    r = _error_rates(p, np.ones_like(p, dtype=bool))
    assert r["holm_fwer"] <= BOUND and r["bh_fdr"] <= BOUND
    assert r["raw_fwer"] == pytest.approx(1 - 0.95 ** 20, abs=0.015)  # 0.64 unadjusted


def test_null_grids_of_positively_correlated_p_values():
    # 20 one-sided z-tests sharing a common factor (rho = 0.5), as cells of one sweep share examples
    rng = np.random.default_rng(1)
    z = np.sqrt(0.5) * rng.normal(size=(REPS, 1)) + np.sqrt(0.5) * rng.normal(size=(REPS, 20))
    p = stats.norm.sf(z)
    r = _error_rates(p, np.ones_like(p, dtype=bool))
    assert r["holm_fwer"] <= BOUND and r["bh_fdr"] <= BOUND
    assert r["raw_fwer"] > 0.3


def test_grids_with_real_effects_keep_the_false_discovery_rate():
    # 15 null cells and 5 cells with a true effect: BH's FDR is at most 0.05 * 15 / 20, Holm's FWER at most 0.05
    rng = np.random.default_rng(2)
    shift = np.r_[np.zeros(15), np.full(5, 3.0)]
    p = stats.norm.sf(rng.normal(size=(REPS, 20)) + shift)
    null = np.broadcast_to(shift == 0, p.shape)
    r = _error_rates(p, null)
    assert r["bh_fdr"] <= 0.05 * 15 / 20 + 3 * np.sqrt(0.05 * 0.95 / REPS)
    assert r["holm_fwer"] <= BOUND
    assert r["raw_fwer"] > 0.4
