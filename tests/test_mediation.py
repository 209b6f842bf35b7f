"""Tests for latentprobe.mediation: structural truths of the toy variants, statistics against
reference computations, dropped-example accounting and resumable sweeps (CPU, small)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats as sps

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from latentprobe import stats as lstats  # noqa: E402
from latentprobe.mediation import (  # noqa: E402
    PAPER_INTERVENTIONS,
    NoLatents,
    bootstrap_mean_columns,
    decompose,
    default_interventions,
    summarize_mediation,
    summarize_x_to_z,
    summarize_z_to_y,
    x_to_z,
    z_to_y,
)
from latentprobe.perturbations import (  # noqa: E402
    BlankImage,
    Counterfactual,
    Custom,
    ImageSwap,
    InputSet,
    InstanceSwap,
    NoiseImage,
    Occlude,
    QuestionSwap,
)
from latentprobe.engine import LatentRunner  # noqa: E402
from latentprobe.toy.model import build_model, mask_rule, toy_spec  # noqa: E402
from latentprobe.toy.shapes import make_dataset  # noqa: E402
from latentprobe.toy.vocab import build_tokenizer  # noqa: E402

MAX_NEW = 9  # open + 4 latents + close + 3 answer tokens (the budget counts every generated position)
NB = 300  # bootstrap resamples in model-based tests (the reference tests use more)


class ForceOpen:
    """Stateless logits processor for random-weight models: force the open marker as the first
    free token (unless the prompt holds ``skip_word``), never open again and never stop early."""

    def __init__(self, tok, skip_word: str | None = None):
        self.open = tok.convert_tokens_to_ids("<|latent_start|>")
        self.eos = tok.eos_token_id
        self.skip = None if skip_word is None else tok.convert_tokens_to_ids(skip_word)

    def __call__(self, ids, logits, index):
        logits = logits.clone()
        if self.open not in ids and (self.skip is None or self.skip not in ids):
            logits[:] = float("-inf")
            logits[self.open] = 0.0
        else:
            logits[self.open] = float("-inf")
            logits[self.eos] = float("-inf")
        return logits


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The toy models are tiny: one intra-op thread is fastest, and much faster on a busy machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    return build_model(tok.get_vocab(), seed=0)


@pytest.fixture(scope="module")
def inputs():
    return InputSet.from_toy(make_dataset(3, 2, seed=0))


def runner(model, tok, variant):
    return LatentRunner(model, tok, toy_spec(variant), mask_rule=mask_rule(variant))


# --------------------------------------------------------------------------- structural truths
def test_bypass_nie_exactly_zero(model, tok, inputs):
    r = runner(model, tok, "bypass")
    proc = ForceOpen(tok)
    for treatment in (Counterfactual(), ImageSwap(seed=1), QuestionSwap(seed=2)):
        for outcome in ("gold_logprob", "correct"):
            res = decompose(r, inputs, treatment, outcome=outcome, n_boot=NB, max_new_tokens=MAX_NEW,
                            logits_processor=proc, progress=False)
            nie = res.effects["NIE"]
            assert nie.n == len(inputs) and res.dropped.empty
            assert (nie.estimate, nie.ci_low, nie.ci_high) == (0.0, 0.0, 0.0)
            # the answer cannot read the latents: the direct effect is the whole effect
            assert res.effects["NDE"].estimate == res.effects["TE"].estimate
            s = res.summary.set_index("effect")
            assert s.loc["NIE", "estimate"] == 0.0 and s.loc["NIE", "ci_low"] == 0.0 and s.loc["NIE", "ci_high"] == 0.0
            if outcome == "correct":
                assert s.loc["NIE", "p_value"] == 1.0
    # the treatment does change the outcome through X (the comparison is not vacuous)
    res = decompose(r, inputs, QuestionSwap(seed=2), outcome="gold_logprob", n_boot=NB, max_new_tokens=MAX_NEW,
                    logits_processor=proc, progress=False)
    wide = res.rows.pivot(index="example_id", columns="condition", values="gold_logprob")
    assert (wide["treated"] != wide["clean"]).any()
    assert (wide["indirect"] == wide["clean"]).all()


def test_bypass_z_to_y_exactly_zero(model, tok, inputs):
    r = runner(model, tok, "bypass")
    proc = ForceOpen(tok)
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
    assert (latent_only["correct"] == latent_only["ref_correct"]).all()
    s = res.summary[res.summary["intervention"] != "no_latents"]
    for metric in ("accuracy_change", "flip_rate", "kl", "gold_logprob_change"):
        m = s[s["metric"] == metric]
        assert len(m) == 3 * (len(names) - 2) + 3 if metric != "accuracy_change" else len(m) > 0
        assert (m["estimate"] == 0.0).all() and (m["ci_low"] == 0.0).all() and (m["ci_high"] == 0.0).all()
    assert (s.loc[s["metric"] == "accuracy_change", "p_value"] == 1.0).all()
    # replay scores the recorded answer; it is unchanged too
    rep = latent_only[latent_only["mode"] == "replay"]
    assert rep["recorded_logprob"].notna().all()
    assert (rep["recorded_logprob"] == rep["ref_recorded_logprob"]).all()


def test_free_variant_z_to_y_is_not_trivially_zero(model, tok, inputs):
    """Control for the test above: without the bypass rule the same interventions move the answer."""
    r = runner(model, tok, "free")
    proc = ForceOpen(tok)
    trace = r.run(**inputs.run_kwargs(), max_new_tokens=MAX_NEW, logits_processor=proc, progress=False)
    ivs = {k: v for k, v in default_interventions(trace).items() if k in ("zero", "swap")}
    res = z_to_y(r, trace, ivs, modes=("redecode",), gold=inputs.gold, n_boot=NB, logits_processor=proc,
                 progress=False)
    kl = res.rows.loc[res.rows["intervention"] != "none", "kl"]
    assert (kl > 0).all()


def test_blind_x_to_z_exactly_zero(model, tok, inputs):
    r = runner(model, tok, "blind")
    perts = [ImageSwap(seed=0), BlankImage(), NoiseImage(seed=1), Occlude(box="target"), Counterfactual(),
             QuestionSwap(seed=3)]
    res = x_to_z(r, inputs, perts, n_boot=NB, max_new_tokens=MAX_NEW, logits_processor=ForceOpen(tok),
                 progress=False)
    n_layers = r.parts.n_layers + 1
    rows = res.rows
    image_perts = ["image_swap", "blank_image", "noise_image", "occlude", "counterfactual"]
    lat = rows[(rows["source"] == "latent") & rows["perturbation"].isin(image_perts)]
    assert len(lat) == len(image_perts) * len(inputs) * 4 * n_layers
    assert np.all(np.abs(lat["cosine"] - 1.0) <= 1e-6)
    assert np.all(lat["rel_l2"] <= 1e-6)
    # the text before the image cannot see it either; the image tokens do change (the perturbation is real)
    txt = rows[(rows["source"] == "text_last") & rows["perturbation"].isin(image_perts)]
    assert np.all(txt["rel_l2"] <= 1e-6)
    img = rows[(rows["source"] == "image_mean") & rows["perturbation"].isin(image_perts) & (rows["layer"] >= 1)]
    assert (img.groupby("perturbation")["rel_l2"].mean() > 1e-3).all()
    # the question is visible to the latents: swapping it changes them
    q = rows[(rows["source"] == "latent") & (rows["perturbation"] == "question_swap")]
    assert q["rel_l2"].mean() > 1e-2
    s = res.summary
    sl = s[(s["source"] == "latent") & s["perturbation"].isin(image_perts) & (s["metric"] == "rel_l2")]
    assert np.all(np.abs(sl[["estimate", "ci_low", "ci_high"]].to_numpy()) <= 1e-6)
    # inter-instance similarity matrix of clean latents (layer 0 = the fed z)
    assert res.across_matrices[0].shape == (4, len(inputs), len(inputs))
    assert set(res.across["center"]) == {False, True} and (res.across["n"] == len(inputs)).all()
    assert res.config["perturbations"]["image_swap"]["mapping"] is not None


# --------------------------------------------------------------------------- trained weights
def _load_trained(variant):
    from latentprobe.toy import load

    return load(variant)  # the weights ship with the package: a missing file is a failure


def test_mediated_trained_large_nie():
    tm = _load_trained("mediated")
    inputs = InputSet.from_toy(tm.examples(split="test", n=60))
    res = decompose(tm.runner(), inputs, Counterfactual(), outcome="correct", n_boot=2000, progress=False)
    nie = res.effects["NIE"]
    assert nie.n >= 40
    assert nie.excludes_zero and nie.estimate < -0.3
    assert res.effects["TE"].excludes_zero
    # visual information reaches the answer only through Z: the direct effect is small
    assert abs(res.effects["NDE"].estimate) < abs(nie.estimate)


def test_mediated_trained_latent_swap_hurts():
    tm = _load_trained("mediated")
    exs = tm.examples(split="test", n=40)
    r = tm.runner()
    inputs = InputSet.from_toy(exs)
    trace = r.run(**inputs.run_kwargs(), max_new_tokens=16, progress=False)
    ivs = {k: v for k, v in default_interventions(trace).items() if k in ("swap", "swap_placebo")}
    res = z_to_y(r, trace, ivs, modes=("redecode",), gold=inputs.gold, n_boot=2000, progress=False)
    s = res.summary.set_index(["intervention", "metric"])
    assert s.loc[("swap", "accuracy_change"), "ci_high"] < 0


# --------------------------------------------------------------------------- statistics vs references
def _loop_ci(x, n_boot, seed, conf=0.95):
    x = np.asarray(x, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))
    boots = [x[i].mean() for i in idx]
    a = 1 - conf
    return np.quantile(boots, [a / 2, 1 - a / 2])


def _loop_paired_ci(a, b, n_boot, seed, conf=0.95):
    a, b = np.asarray(a, float), np.asarray(b, float)
    idx = np.random.default_rng(seed).integers(0, len(a), size=(n_boot, len(a)))
    boots = [a[i].mean() - b[i].mean() for i in idx]
    al = 1 - conf
    return np.quantile(boots, [al / 2, 1 - al / 2])


def _binom_p(x, y):
    """McNemar exact p-value for paired booleans x (reference) and y."""
    b = int(np.sum(x & ~y))
    c = int(np.sum(~x & y))
    return 1.0 if b + c == 0 else sps.binomtest(b, b + c, 0.5).pvalue


def test_bootstrap_mean_columns_matches_reference():
    rng = np.random.default_rng(1)
    v = rng.normal(size=(23, 5))
    v[:, 2] = 0.75
    est, lo, hi = bootstrap_mean_columns(v, n_boot=1500, seed=7)
    for j in range(5):
        ref = lstats.bootstrap_ci(v[:, j], n_boot=1500, seed=7)
        assert est[j] == ref.estimate and lo[j] == ref.ci_low and hi[j] == ref.ci_high
        if j != 2:
            np.testing.assert_allclose([lo[j], hi[j]], _loop_ci(v[:, j], 1500, 7), rtol=1e-12)
    assert (est[2], lo[2], hi[2]) == (0.75, 0.75, 0.75)


def test_summarize_x_to_z_matches_reference():
    rng = np.random.default_rng(2)
    recs = []
    for i in range(15):
        for layer in (0, 1):
            recs.append({"example_id": f"e{i}", "perturbation": "p", "source": "latent", "step": 0, "layer": layer,
                         "cosine": float(rng.uniform(0.5, 1)), "rel_l2": float(rng.uniform(0, 1)), "chunk": 0})
    recs[3]["rel_l2"] = float("nan")  # e1, layer 1: left out of that cell only
    rows = pd.DataFrame(recs)
    s = summarize_x_to_z(rows, n_boot=800, seed=3)
    assert len(s) == 4
    for _, r in s.iterrows():
        x = rows[(rows["layer"] == r["layer"])][r["metric"]].dropna().to_numpy()
        assert r["n"] == len(x)
        assert r["estimate"] == pytest.approx(x.mean(), rel=1e-12)
        np.testing.assert_allclose([r["ci_low"], r["ci_high"]], _loop_ci(x, 800, 3), rtol=1e-12)


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
    assert s.loc["accuracy_change", "p_value"] == pytest.approx(_binom_p(ref_c, cor), rel=1e-12)
    np.testing.assert_allclose(s.loc["accuracy_change", ["ci_low", "ci_high"]].to_numpy(float),
                               _loop_paired_ci(cor, ref_c, 1000, 5), rtol=1e-12)
    np.testing.assert_allclose(s.loc["accuracy", ["ci_low", "ci_high"]].to_numpy(float), _loop_ci(cor, 1000, 5),
                               rtol=1e-12)
    np.testing.assert_allclose(s.loc["flip_rate", ["ci_low", "ci_high"]].to_numpy(float), _loop_ci(flip, 1000, 5),
                               rtol=1e-12)
    np.testing.assert_allclose(s.loc["gold_logprob_change", ["ci_low", "ci_high"]].to_numpy(float),
                               _loop_paired_ci(glp, rglp, 1000, 5), rtol=1e-12)
    np.testing.assert_allclose(s.loc["kl", ["ci_low", "ci_high"]].to_numpy(float), _loop_ci(kl, 1000, 5), rtol=1e-12)
    assert (s["n"] == n).all() and "recorded_logprob_change" not in s.index


def _med_rows(y):
    recs = []
    for i in range(len(y["clean"])):
        for cond in ("clean", "treated", "direct", "indirect"):
            recs.append({"example_id": f"e{i}", "chunk": 0, "condition": cond, "x": "", "z": "", "answer": "",
                         "gold": "g", "correct": float(y[cond][i]), "gold_logprob": float(y[cond][i]) - 3.0,
                         "n_latents": 4})
    return pd.DataFrame(recs)


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
                                   _loop_paired_ci(y[cond], clean, 1200, 9), rtol=1e-12)
        assert s.loc[name, "p_value"] == pytest.approx(_binom_p(clean, y[cond]), rel=1e-12)
    assert eff["TE"].excludes_zero
    assert prop == pytest.approx(eff["NIE"].estimate / eff["TE"].estimate)
    assert s.loc["proportion_mediated", "estimate"] == pytest.approx(prop)
    assert s.loc["proportion_mediated", "ci_low"] <= prop <= s.loc["proportion_mediated", "ci_high"]
    inter = y["treated"].astype(float) - y["direct"] - y["indirect"] + clean
    np.testing.assert_allclose(s.loc["interaction", ["ci_low", "ci_high"]].to_numpy(float),
                               _loop_ci(inter, 1200, 9), rtol=1e-12)
    assert missing == []
    # log-prob outcome: same differences, no McNemar p-value
    s2 = summarize_mediation(rows, outcome="gold_logprob", n_boot=1200, seed=9).set_index("effect")
    assert np.isnan(s2.loc["TE", "p_value"])
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


# --------------------------------------------------------------------------- dropped examples
def test_dropped_examples_are_counted(model, tok, inputs):
    r = runner(model, tok, "free")
    proc = ForceOpen(tok, skip_word="how")  # count questions never enter latent mode
    n_count = sum("how" in p.split() for p in inputs.prompts)
    assert n_count == 1
    qs = QuestionSwap(seed=0).bind(inputs)
    gets_count = sum("how" in inputs.prompts[j].split() for j in qs.mapping)
    res = x_to_z(r, inputs, [qs, BlankImage()], n_boot=NB, max_new_tokens=MAX_NEW, logits_processor=proc,
                 layers=[0], across_layers=[0], progress=False)
    counts = res.drop_counts()
    assert counts["blank_image"] == {"clean_not_entered": 1}
    assert counts["question_swap"].get("clean_not_entered", 0) == 1
    assert counts["question_swap"].get("perturbed_not_entered", 0) == gets_count
    kept = res.status[res.status["reason"] == "kept"]
    assert set(res.rows["example_id"]) == set(kept["example_id"])
    assert len(res.status) == 2 * len(inputs)
    assert (res.across["n"] == len(inputs) - 1).all()
    # Z -> Y drops examples without latents, and says so
    trace = r.run(**inputs.run_kwargs(), max_new_tokens=MAX_NEW, logits_processor=proc, progress=False)
    zy = z_to_y(r, trace, {"zero": default_interventions(trace)["zero"]}, modes=("replay",), gold=inputs.gold,
                n_boot=NB, progress=False)
    assert zy.drop_counts() == {"all": {"not_entered": 1}}
    assert zy.rows["example_id"].nunique() == len(inputs) - 1
    # mediation: the example whose clean run has no latents is dropped
    md = decompose(r, inputs, BlankImage(), outcome="gold_logprob", n_boot=NB, max_new_tokens=MAX_NEW,
                   logits_processor=proc, progress=False)
    assert md.drop_counts() == {"blank_image": {"clean_not_entered": 1}}
    assert md.effects["TE"].n == len(inputs) - 1


# --------------------------------------------------------------------------- resumable sweeps
class Boom(RuntimeError):
    pass


class HalveLatents:
    """A callable intervention that raises once it has seen more than ``limit`` examples."""

    def __init__(self, limit=None):
        self.limit, self.seen = limit, set()

    def __call__(self, z, step, example):
        self.seen.add(example.example_id)
        if self.limit is not None and len(self.seen) > self.limit:
            raise Boom("injected failure")
        return z * 0.5


class Mirror:
    """A per-example perturbation (mirror the image) that raises after ``limit`` calls."""

    def __init__(self, limit=None):
        self.limit, self.calls = limit, 0

    def __call__(self, prompt, image, meta):
        self.calls += 1
        if self.limit is not None and self.calls > self.limit:
            raise Boom("injected failure")
        return prompt, image[:, ::-1].copy()


def test_z_to_y_resumes_after_a_crash(model, tok, inputs, tmp_path):
    r = runner(model, tok, "free")
    proc = ForceOpen(tok)
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


def test_x_to_z_resumes_after_a_crash(model, tok, inputs, tmp_path):
    r = runner(model, tok, "free")
    kw = dict(n_boot=NB, chunk_size=2, max_new_tokens=MAX_NEW, logits_processor=ForceOpen(tok), layers=[0, 2],
              progress=False)
    perts = lambda fn: [InstanceSwap(seed=1), Custom(fn, name="mirror")]  # noqa: E731
    with pytest.raises(Boom):
        x_to_z(r, inputs, perts(Mirror(limit=3)), out_dir=tmp_path / "a", **kw)
    again = Mirror()
    resumed = x_to_z(r, inputs, perts(again), out_dir=tmp_path / "a", **kw)
    assert 0 < again.calls < len(inputs)
    fresh = x_to_z(r, inputs, perts(Mirror()), out_dir=tmp_path / "b", **kw)
    for name in ("rows", "summary", "dropped", "status", "across"):
        pd.testing.assert_frame_equal(getattr(resumed, name), getattr(fresh, name))
    np.testing.assert_array_equal(resumed.across_matrices[0], fresh.across_matrices[0])
    memory = x_to_z(r, inputs, perts(Mirror()), **kw)
    pd.testing.assert_frame_equal(memory.rows, fresh.rows)
    pd.testing.assert_frame_equal(memory.summary, fresh.summary)


def test_decompose_resumes_after_a_crash(model, tok, inputs, tmp_path):
    r = runner(model, tok, "free")
    kw = dict(outcome="gold_logprob", n_boot=NB, chunk_size=2, max_new_tokens=MAX_NEW,
              logits_processor=ForceOpen(tok), progress=False)
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
