"""latentprobe.causal.xz: X -> Z on the blind toy variant, the summary against reference computations,
resuming after a crash."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latentprobe.causal import summarize_x_to_z, x_to_z
from latentprobe.perturbations import BlankImage, Custom, ImageSwap, InstanceSwap, NoiseImage, QuestionSwap
from latentprobe.toy.perturbations import Counterfactual, OccludeTarget

from causal.helpers import Boom, force_open, MAX_NEW, Mirror, NB, _loop_ci, runner


def test_blind_x_to_z_exactly_zero(model, tok, inputs):
    r = runner(model, tok, "blind")
    perts = [ImageSwap(seed=0), BlankImage(), NoiseImage(seed=1), OccludeTarget(), Counterfactual(),
             QuestionSwap(seed=3)]
    res = x_to_z(r, inputs, perts, n_boot=NB, max_new_tokens=MAX_NEW, logits_processor=force_open(tok),
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
        np.testing.assert_allclose([r["ci_low"], r["ci_high"]], _loop_ci(x, 800, 3), atol=1e-9)


def test_x_to_z_resumes_after_a_crash(model, tok, inputs, tmp_path):
    r = runner(model, tok, "free")
    kw = dict(n_boot=NB, chunk_size=2, max_new_tokens=MAX_NEW, logits_processor=force_open(tok), layers=[0, 2],
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
