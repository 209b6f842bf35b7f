"""latentprobe.causal.zy: Z -> Y on the toy variants, the summary against reference computations,
resuming after a crash."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latentprobe.causal import default_interventions, PAPER_INTERVENTIONS, summarize_z_to_y, z_to_y
from latentprobe.causal.zy import SUITE
from latentprobe.interventions import NoLatents
from latentprobe.toy.perturbations import toy_inputs

from causal.helpers import (
    Boom, force_open, HalveLatents, MAX_NEW, NB, _load_trained, _loop_ci, _loop_paired_ci, _score_p, _tango, _wilson, runner,
)


def test_bypass_z_to_y_exactly_zero(model, tok, inputs):
    r = runner(model, tok, "bypass")
    proc = force_open(tok)
    trace = r.run(**inputs.run_kwargs(), max_new_tokens=MAX_NEW, logits_processor=proc, progress=False)
    res = z_to_y(r, trace, gold=inputs.gold, n_boot=NB, logits_processor=proc, progress=False)
    names = set(res.rows["intervention"])
    assert set(PAPER_INTERVENTIONS) <= names and {"swap", "mean_ablate", "zero", "repeat_first", "no_latents",
                                                  "random_direction", "swap_placebo"} <= names
    assert set(res.rows.loc[res.rows["intervention"] == "no_latents", "mode"]) == {"redecode"}
    assert len(res.rows) == len(inputs) * (3 * (len(names) - 1) + 1)
    latent_only = res.rows[res.rows["intervention"] != "no_latents"]
    assert not latent_only["flip"].any()
    assert (latent_only["kl"] == 0.0).all()
    assert (latent_only["gold_logprob"] == latent_only["ref_gold_logprob"]).all()
    # random weights write unreadable answers too (correct NaN); equal means equal, NaN in the same places
    assert latent_only["correct"].equals(latent_only["ref_correct"])
    assert (latent_only["parse_method"] == latent_only["ref_parse_method"]).all()
    s = res.summary[res.summary["intervention"] != "no_latents"]
    for metric in ("accuracy_change", "flip_rate", "kl", "gold_logprob_change"):
        m = s[s["metric"] == metric]
        assert len(m) == 3 * (len(names) - 2) + 3 if metric != "accuracy_change" else len(m) > 0
        assert (m["estimate"] == 0.0).all()
        if metric in ("kl", "gold_logprob_change"):  # a constant continuous outcome: the point [0, 0]
            assert (m["ci_low"] == 0.0).all() and (m["ci_high"] == 0.0).all()
        else:  # no flip and no discordant pair still leave an interval (Wilson, Tango), never [0, 0]
            n, z2 = m["n"].to_numpy(float), 1.959963984540054 ** 2
            low = -z2 / (n + z2) if metric == "accuracy_change" else np.zeros(len(m))
            np.testing.assert_allclose(m["ci_low"].to_numpy(float), low, atol=1e-12)
            np.testing.assert_allclose(m["ci_high"].to_numpy(float), z2 / (n + z2), atol=1e-12)
    assert (s.loc[s["metric"] == "accuracy_change", "p_value"] == 1.0).all()
    # replay scores the recorded answer; it is unchanged too
    rep = latent_only[latent_only["mode"] == "replay"]
    assert rep["recorded_logprob"].notna().all()
    assert (rep["recorded_logprob"] == rep["ref_recorded_logprob"]).all()


def test_free_variant_z_to_y_is_not_trivially_zero(model, tok, inputs):
    """Control for the test above: without the bypass rule the same interventions move the answer."""
    r = runner(model, tok, "free")
    proc = force_open(tok)
    trace = r.run(**inputs.run_kwargs(), max_new_tokens=MAX_NEW, logits_processor=proc, progress=False)
    assert tuple(default_interventions(trace)) == SUITE  # the names study files may use
    ivs = {k: v for k, v in default_interventions(trace).items() if k in ("zero", "swap")}
    res = z_to_y(r, trace, ivs, modes=("redecode",), gold=inputs.gold, n_boot=NB, logits_processor=proc,
                 progress=False)
    kl = res.rows.loc[res.rows["intervention"] != "none", "kl"]
    assert (kl > 0).all()


def test_mediated_trained_latent_swap_hurts():
    tm = _load_trained("mediated")
    exs = tm.examples(split="test", n=40)
    r = tm.runner()
    inputs = toy_inputs(exs)
    trace = r.run(**inputs.run_kwargs(), max_new_tokens=16, progress=False)
    ivs = {k: v for k, v in default_interventions(trace).items() if k in ("swap", "swap_placebo")}
    res = z_to_y(r, trace, ivs, modes=("redecode",), gold=inputs.gold, n_boot=2000, progress=False)
    s = res.summary.set_index(["intervention", "metric"])
    assert s.loc[("swap", "accuracy_change"), "ci_high"] < 0


def test_summarize_z_to_y_matches_reference():
    rng = np.random.default_rng(3)
    n = 40
    ref_c = rng.random(n) < 0.7
    cor = np.where(rng.random(n) < 0.3, ~ref_c, ref_c)
    glp, rglp = rng.normal(-1, 1, n), rng.normal(-0.5, 1, n)
    kl = rng.exponential(0.2, n)
    flip = rng.random(n) < 0.25
    rows = pd.DataFrame({
        "example_id": [f"e{i}" for i in range(n)], "chunk": 0, "intervention": "x", "mode": "redecode",
        "answer": "a", "ref_answer": "a", "clean_answer": "a", "gold": "a", "correct": cor.astype(float),
        "ref_correct": ref_c.astype(float), "flip": flip, "changed_vs_clean": flip, "gold_logprob": glp,
        "ref_gold_logprob": rglp, "kl": kl, "recorded_logprob": np.nan, "ref_recorded_logprob": np.nan,
        "n_latents": 4})
    s = summarize_z_to_y(rows, n_boot=1000, seed=5).set_index("metric")
    assert s.loc["accuracy_change", "estimate"] == pytest.approx(cor.mean() - ref_c.mean())
    assert s.loc["accuracy_change", "p_value"] == pytest.approx(_score_p(ref_c, cor), rel=1e-12)
    np.testing.assert_allclose(s.loc["accuracy_change", ["ci_low", "ci_high"]].to_numpy(float),
                               _tango(ref_c, cor), atol=1e-6)
    np.testing.assert_allclose(s.loc["accuracy", ["ci_low", "ci_high"]].to_numpy(float), _wilson(cor), atol=1e-12)
    np.testing.assert_allclose(s.loc["flip_rate", ["ci_low", "ci_high"]].to_numpy(float), _wilson(flip), atol=1e-12)
    np.testing.assert_allclose(s.loc["gold_logprob_change", ["ci_low", "ci_high"]].to_numpy(float),
                               _loop_paired_ci(glp, rglp, 1000, 5), atol=1e-9)
    np.testing.assert_allclose(s.loc["kl", ["ci_low", "ci_high"]].to_numpy(float), _loop_ci(kl, 1000, 5), atol=1e-9)
    assert (s["n"] == n).all() and "recorded_logprob_change" not in s.index


def test_z_to_y_resumes_after_a_crash(model, tok, inputs, tmp_path):
    r = runner(model, tok, "free")
    proc = force_open(tok)
    trace = r.run(**inputs.run_kwargs(), max_new_tokens=MAX_NEW, logits_processor=proc, progress=False)
    kw = dict(modes=("replay", "redecode"), gold=inputs.gold, n_boot=NB, chunk_size=2, logits_processor=proc,
              progress=False)
    base = default_interventions(trace)
    ivs = lambda fn: {"halve": fn, "swap": base["swap"], "no_latents": NoLatents()}  # noqa: E731
    with pytest.raises(Boom):
        z_to_y(r, trace, ivs(HalveLatents(limit=3)), out_dir=tmp_path / "a", **kw)
    again = HalveLatents()
    resumed = z_to_y(r, trace, ivs(again), out_dir=tmp_path / "a", **kw)
    assert again.seen and len(again.seen) < len(inputs)  # finished units were not recomputed
    fresh = z_to_y(r, trace, ivs(HalveLatents()), out_dir=tmp_path / "b", **kw)
    pd.testing.assert_frame_equal(resumed.rows, fresh.rows)
    pd.testing.assert_frame_equal(resumed.summary, fresh.summary)
    memory = z_to_y(r, trace, ivs(HalveLatents()), **kw)
    pd.testing.assert_frame_equal(memory.rows, fresh.rows)
    assert resumed.config["seed"] == 0 and resumed.config["interventions"]["halve"]["fn"] == "HalveLatents"
