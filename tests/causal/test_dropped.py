"""Dropped-example accounting shared by the three causal analyses."""

from __future__ import annotations

from latentprobe.causal import decompose, default_interventions, x_to_z, z_to_y
from latentprobe.perturbations import BlankImage, QuestionSwap

from causal.helpers import force_open, MAX_NEW, NB, runner


def test_dropped_examples_are_counted(model, tok, inputs):
    r = runner(model, tok, "free")
    proc = force_open(tok, skip_word="how")  # count questions never enter latent mode
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
    n = len(inputs)
    assert res.config["kept"]["blank_image"] == {"n_examples": n, "n_kept": n - 1, "clean_not_entered": 1}
    assert res.config["kept"]["question_swap"]["n_kept"] == int((res.status.reason == "kept").sum()) - (n - 1)
    assert res.config["across_kept"] == {"num_latents": 4, "n_examples": n, "n_kept": n - 1, "n_no_latents": 1,
                                         "n_other_count": 0, "rule": "modal"}
    # Z -> Y drops examples without latents, and says so
    trace = r.run(**inputs.run_kwargs(), max_new_tokens=MAX_NEW, logits_processor=proc, progress=False)
    zy = z_to_y(r, trace, {"zero": default_interventions(trace)["zero"]}, modes=("replay",), gold=inputs.gold,
                n_boot=NB, progress=False)
    assert zy.drop_counts() == {"all": {"not_entered": 1}}
    assert zy.rows["example_id"].nunique() == len(inputs) - 1
    assert zy.config["kept"] == {"num_latents": 4, "n_examples": n, "n_kept": n - 1, "n_no_latents": 1,
                                 "n_other_count": 0, "rule": "modal"}
    # mediation: the example whose clean run has no latents is dropped
    md = decompose(r, inputs, BlankImage(), outcome="gold_logprob", n_boot=NB, max_new_tokens=MAX_NEW,
                   logits_processor=proc, progress=False)
    assert md.drop_counts() == {"blank_image": {"clean_not_entered": 1}}
    assert md.effects["TE"].n == len(inputs) - 1
    assert md.config["kept"] == {"n_examples": n, "n_kept": n - 1, "clean_not_entered": 1}
