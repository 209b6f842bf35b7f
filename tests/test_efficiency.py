"""Per-example decode time and token counts: recorded by the runner, read back from saved traces, summarised."""

from __future__ import annotations

import math

import numpy as np
import pytest

from latentprobe import toy
from latentprobe.efficiency import cost_summary, decode_costs
from latentprobe.errors import InputError
from latentprobe.trace import LatentTrace, Segment


@pytest.fixture(scope="module")
def run():
    tm = toy.load("mediated")
    ex = tm.examples("test", 5)
    return tm.runner().run(tm.prompts(ex), tm.images(ex), max_new_tokens=12, progress=False, batch_size=2)


def test_every_example_records_its_batch_time(run):
    sizes = [e.meta["batch_size"] for e in run]
    assert sizes == [2, 2, 2, 2, 1]  # batches of 2, 2 and 1
    for e in run:
        assert e.meta["batch_seconds"] > 0
        assert e.meta["decode_seconds"] == pytest.approx(e.meta["batch_seconds"] / e.meta["batch_size"], rel=1e-12)
    # examples of one batch share its time
    assert run[0].meta["batch_seconds"] == run[1].meta["batch_seconds"]


def test_token_counts_follow_the_segments(run, tmp_path):
    costs = decode_costs(run)
    for e, (_, row) in zip(run, costs.iterrows()):
        gen = e.segments[e.prompt_len:]
        assert row.generated_tokens == int((gen != Segment.PAD).sum()) == e.seq_len - e.prompt_len
        assert row.latent_steps == int((gen == Segment.LATENT).sum()) == e.num_latents
        assert row.text_tokens == row.generated_tokens - row.latent_steps
        assert row.answer_tokens == len(e.answer_ids) and row.prompt_tokens == e.prompt_len
    assert set(costs.model) == {run.spec.name}
    # a saved trace keeps the times
    again = decode_costs(LatentTrace.load(run.save(tmp_path / "t")))
    assert np.array_equal(again.decode_seconds.to_numpy(), costs.decode_seconds.to_numpy())


def test_summary_means_and_missing_times(run):
    costs = decode_costs(run, model="toy")
    old = costs.assign(model="old", decode_seconds=[math.nan, 0.5, math.nan, 0.25, 0.75])
    s = cost_summary([costs, old], n_boot=200).set_index(["model", "metric"])
    assert s.loc[("toy", "latent_steps"), "mean"] == costs.latent_steps.mean()
    assert s.loc[("old", "decode_seconds"), "n"] == 3 and s.loc[("old", "decode_seconds"), "mean"] == pytest.approx(0.5)
    lo, hi = s.loc[("toy", "generated_tokens"), ["ci_low", "ci_high"]]
    assert lo <= costs.generated_tokens.mean() <= hi
    with pytest.raises(InputError, match="unknown metric"):
        cost_summary(costs, metrics=["flops"])
    with pytest.raises(InputError, match="takes a LatentTrace"):
        decode_costs(costs)
