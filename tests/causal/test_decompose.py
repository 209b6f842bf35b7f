"""latentprobe.causal.decompose: planted NIE/NDE of the toy variants, the summary against reference
computations, resuming after a crash."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latentprobe.causal import decompose, summarize_mediation
from latentprobe.perturbations import Custom, ImageSwap, QuestionSwap
from latentprobe.toy.perturbations import Counterfactual, toy_inputs

from causal.helpers import (
    Boom, force_open, MAX_NEW, Mirror, NB, _load_trained, _loop_ci, _med_rows, _score_p, _tango, _wilson, runner,
)


def test_bypass_nie_exactly_zero(model, tok, inputs):
    r = runner(model, tok, "bypass")
    proc = force_open(tok)
    for treatment in (Counterfactual(), ImageSwap(seed=1), QuestionSwap(seed=2)):
        for outcome in ("gold_logprob", "correct"):
            res = decompose(r, inputs, treatment, outcome=outcome, n_boot=NB, max_new_tokens=MAX_NEW,
                            logits_processor=proc, progress=False)
            nie = res.effects["NIE"]
            assert nie.n == len(inputs) and res.dropped.empty
            # gold_logprob: identical outcomes, the point [0, 0]; correct: no discordant pair, Tango's
            # interval +-z**2 / (n + z**2) (never [0, 0])
            half = 0.0 if outcome == "gold_logprob" else 1.959963984540054 ** 2 / (len(inputs) + 1.959963984540054 ** 2)
            assert nie.estimate == 0.0 and nie.p_value == 1.0
            assert (nie.ci_low, nie.ci_high) == pytest.approx((-half, half), abs=1e-12)
            # the answer cannot read the latents: the direct effect is the whole effect
            assert res.effects["NDE"].estimate == res.effects["TE"].estimate
            s = res.summary.set_index("effect")
            assert s.loc["NIE", "estimate"] == 0.0 and s.loc["NIE", "ci_low"] == nie.ci_low
            assert s.loc["NIE", "ci_high"] == nie.ci_high and s.loc["NIE", "p_value"] == 1.0
    # the treatment does change the outcome through X (the comparison is not vacuous)
    res = decompose(r, inputs, QuestionSwap(seed=2), outcome="gold_logprob", n_boot=NB, max_new_tokens=MAX_NEW,
                    logits_processor=proc, progress=False)
    wide = res.rows.pivot(index="example_id", columns="condition", values="gold_logprob")
    assert (wide["treated"] != wide["clean"]).any()
    assert (wide["indirect"] == wide["clean"]).all()


def test_mediated_trained_large_nie():
    tm = _load_trained("mediated")
    inputs = toy_inputs(tm.examples(split="test", n=60))
    res = decompose(tm.runner(), inputs, Counterfactual(), outcome="correct", n_boot=2000, progress=False)
    nie = res.effects["NIE"]
    assert nie.n >= 40
    assert nie.excludes_zero and nie.estimate < -0.3
    assert res.effects["TE"].excludes_zero
    # visual information reaches the answer only through Z: the direct effect is small
    assert abs(res.effects["NDE"].estimate) < abs(nie.estimate)


def test_summarize_mediation_matches_reference():
    rng = np.random.default_rng(4)
    n = 50
    clean = rng.random(n) < 0.9
    y = {"clean": clean, "treated": clean & (rng.random(n) < 0.3), "direct": clean & (rng.random(n) < 0.85),
         "indirect": clean & (rng.random(n) < 0.35)}
    rows = _med_rows(y)
    s, eff, prop, note, missing = summarize_mediation(rows, outcome="correct", n_boot=1200, seed=9,
                                                      return_details=True)
    s = s.set_index("effect")
    for name, cond in (("TE", "treated"), ("NDE", "direct"), ("NIE", "indirect")):
        assert s.loc[name, "estimate"] == pytest.approx(y[cond].mean() - clean.mean())
        np.testing.assert_allclose(s.loc[name, ["ci_low", "ci_high"]].to_numpy(float),
                                   _tango(clean, y[cond]), atol=1e-6)
        assert s.loc[name, "p_value"] == pytest.approx(_score_p(clean, y[cond]), rel=1e-12)
        assert "Tango" in s.loc[name, "method"] and "b=" in s.loc[name, "method"]
    assert eff["TE"].excludes_zero
    assert prop == pytest.approx(eff["NIE"].estimate / eff["TE"].estimate)
    assert s.loc["proportion_mediated", "estimate"] == pytest.approx(prop)
    assert s.loc["proportion_mediated", "ci_low"] <= prop <= s.loc["proportion_mediated", "ci_high"]
    inter = y["treated"].astype(float) - y["direct"] - y["indirect"] + clean
    np.testing.assert_allclose(s.loc["interaction", ["ci_low", "ci_high"]].to_numpy(float),
                               _loop_ci(inter, 1200, 9), atol=1e-9)
    assert missing == []
    np.testing.assert_allclose(s.loc["mean_clean", ["ci_low", "ci_high"]].to_numpy(float), _wilson(clean),
                               atol=1e-12)
    # log-prob outcome: same differences, the studentised bootstrap and its bootstrap-t p-value
    s2 = summarize_mediation(rows, outcome="gold_logprob", n_boot=1200, seed=9).set_index("effect")
    np.testing.assert_allclose(s2.loc["TE", ["ci_low", "ci_high"]].to_numpy(float),
                               _loop_ci(y["treated"].astype(float) - clean, 1200, 9), atol=1e-9)
    assert (s2.loc["TE", "p_value"] < 0.05) == bool(s2.loc["TE", "ci_low"] > 0 or s2.loc["TE", "ci_high"] < 0)
    assert s2.loc["NIE", "estimate"] == pytest.approx(s.loc["NIE", "estimate"])


def test_proportion_mediated_undefined_when_te_includes_zero():
    rng = np.random.default_rng(5)
    n = 30
    clean = rng.random(n) < 0.5
    y = {"clean": clean, "treated": clean.copy(), "direct": clean.copy(), "indirect": ~clean}
    y["treated"][:2] = ~y["treated"][:2]
    s, eff, prop, note, _ = summarize_mediation(_med_rows(y), outcome="correct", n_boot=500, seed=0,
                                                return_details=True)
    assert not eff["TE"].excludes_zero
    assert np.isnan(prop) and "includes 0" in note
    row = s.set_index("effect").loc["proportion_mediated"]
    assert np.isnan(row["estimate"]) and "includes 0" in row["note"]


def test_decompose_resumes_after_a_crash(model, tok, inputs, tmp_path):
    r = runner(model, tok, "free")
    kw = dict(outcome="gold_logprob", n_boot=NB, chunk_size=2, max_new_tokens=MAX_NEW,
              logits_processor=force_open(tok), progress=False)
    with pytest.raises(Boom):
        decompose(r, inputs, Custom(Mirror(limit=3), name="mirror"), out_dir=tmp_path / "a", **kw)
    again = Mirror()
    resumed = decompose(r, inputs, Custom(again, name="mirror"), out_dir=tmp_path / "a", **kw)
    assert 0 < again.calls < len(inputs)
    fresh = decompose(r, inputs, Custom(Mirror(), name="mirror"), out_dir=tmp_path / "b", **kw)
    for name in ("rows", "summary", "dropped"):
        pd.testing.assert_frame_equal(getattr(resumed, name), getattr(fresh, name))
    assert resumed.effects["NIE"] == fresh.effects["NIE"]
    assert set(resumed.rows["condition"]) == {"clean", "treated", "direct", "indirect"}
    # a different configuration is refused rather than mixed with stored results
    from latentprobe.sweep import SweepConfigMismatch

    with pytest.raises(SweepConfigMismatch):
        decompose(r, inputs, Custom(Mirror(), name="mirror"), out_dir=tmp_path / "a", **{**kw, "seed": 1})
