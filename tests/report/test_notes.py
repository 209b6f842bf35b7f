"""The notes' claims hold: with every step intervened on, propagate and redecode agree for the interventions
that do not read the latent, and differ for one that does."""

from __future__ import annotations

import numpy as np

from latentprobe.causal import z_to_y
from latentprobe.causal.zy import SUITE, default_interventions
from latentprobe.report import Report
from latentprobe.report.notes import (INDEPENDENT_INTERVENTIONS, PROPAGATE_REDECODE_NOTE, SMALL_SAMPLE_N,
                                      SMALL_SAMPLE_NOTE)
from latentprobe.toy import load
from latentprobe.toy.perturbations import toy_inputs


def test_propagate_equals_redecode_exactly_for_the_independent_interventions():
    assert set(INDEPENDENT_INTERVENTIONS) < set(SUITE)
    tm = load("mediated")
    runner, inputs = tm.runner(), toy_inputs(tm.examples(split="test", n=12))
    trace = runner.run(**inputs.run_kwargs(), max_new_tokens=12, batch_size=12, progress=False)
    ivs = {k: v for k, v in default_interventions(trace, seed=0).items() if k in ("zero", "swap", "add_noise")}
    rows = z_to_y(runner, trace, ivs, modes=("propagate", "redecode"), gold=inputs.gold, n_boot=20, batch_size=12,
                  progress=False).rows
    for name in ivs:
        prop = rows[(rows.intervention == name) & (rows["mode"] == "propagate")].set_index("example_id")
        red = rows[(rows.intervention == name) & (rows["mode"] == "redecode")].set_index("example_id")
        same_answers = (prop["answer"] == red.loc[prop.index, "answer"]).all()
        gap = np.nanmax(np.abs(prop["gold_logprob"].to_numpy(float) - red.loc[prop.index, "gold_logprob"].to_numpy(float)))
        if name in INDEPENDENT_INTERVENTIONS:
            assert same_answers and gap < 1e-4, name
        else:  # add_noise reads the latent: regenerated latents get different noise-free parts
            assert not (same_answers and gap < 1e-4), name


def test_notes_render_in_a_report():
    rep = Report("r").add_note(PROPAGATE_REDECODE_NOTE, title="Propagate = redecode")
    rep.add_note(SMALL_SAMPLE_NOTE.format(n=6, n_groups=6), kind="warning")
    doc = rep.to_html()
    assert "<strong>Why propagate and redecode agree here.</strong>" in doc and "<code>steps = [k]</code>" in doc
    assert "Few examples: 6 (6 groups)" in doc and 6 < SMALL_SAMPLE_N
