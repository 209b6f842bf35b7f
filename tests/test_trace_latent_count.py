"""One latent-count rule: traces, features, stack and the causal analyses keep the same examples."""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from latentprobe import Zero  # noqa: E402
from latentprobe.causal import default_interventions, z_to_y  # noqa: E402
from latentprobe.engine import LatentRunner  # noqa: E402
from latentprobe.errors import InputError  # noqa: E402
from latentprobe.toy.model import build_model, mask_rule, toy_spec  # noqa: E402
from latentprobe.toy.perturbations import toy_inputs  # noqa: E402
from latentprobe.toy.shapes import make_dataset  # noqa: E402
from latentprobe.toy.vocab import build_tokenizer  # noqa: E402
from latentprobe.trace import LatentSelection, LatentTrace, modal_latent_count  # noqa: E402


@pytest.mark.parametrize(("counts", "expected"), [
    ([1, 1, 8, 8], 8),  # a tie goes to the larger count
    ([8, 8, 1, 1], 8),
    ([2, 2, 9, 9, 3], 9),
    ([4, 4, 2, 0, 0, 0], 4),  # no-latent examples never count, however many
    ([3], 3),
    ([0, 0], None),
    ([], None),
])
def test_modal_latent_count(counts, expected):
    assert modal_latent_count(counts) == expected
    for perm in itertools.permutations(counts):  # the multiset decides, never the order
        assert modal_latent_count(perm) == expected


def test_selection_counts_why_examples_are_left_out():
    sel = LatentSelection.of([0, 1, 1, 8, 8, 3])
    assert sel.num_latents == 8 and sel.indices == (3, 4)
    assert (sel.n_examples, sel.n_kept, sel.n_no_latents, sel.n_other_count) == (6, 2, 1, 3)
    assert sel.to_dict() == {"num_latents": 8, "n_examples": 6, "n_kept": 2, "n_no_latents": 1, "n_other_count": 3,
                             "rule": "modal"}
    given = LatentSelection.of([0, 1, 1, 8, 8, 3], 1)
    assert given.indices == (1, 2) and given.rule == "given" and given.n_other_count == 3
    assert LatentSelection.of([0, 0]).to_dict()["num_latents"] is None


# --------------------------------------------------------------------------- a real run with counts 1, 8, 1, 8
class _CloseAfter:
    """Stateless logits processor for a random-weight toy: open latent mode at once, close it after
    1 latent when the question holds "left" and after 8 otherwise, then write answer tokens."""

    def __init__(self, tok):
        ids = tok.convert_tokens_to_ids(["<|latent_start|>", "<|latent_end|>", "<|latent_pad|>", "left"])
        self.open, self.close, self.pad, self.short = ids
        self.eos = tok.eos_token_id

    def __call__(self, ids, logits, index):
        ids = [int(t) for t in ids]
        logits = logits.clone()
        if self.open not in ids:
            logits[:] = float("-inf")
            logits[self.open] = 0.0
            return logits
        o = ids.index(self.open)
        if self.close not in ids[o:]:
            if ids[o:].count(self.pad) >= (1 if self.short in ids[:o] else 8):
                logits[:] = float("-inf")
                logits[self.close] = 0.0
            else:
                logits[self.close] = float("-inf")
            return logits
        logits[self.open] = float("-inf")
        logits[self.eos] = float("-inf")
        return logits


@pytest.fixture(scope="module")
def varying():
    torch.set_num_threads(1)
    tok = build_tokenizer()
    spec = toy_spec("free").replace(name="toy-varying", stop="end_token", num_latents=8, min_latents=1)
    runner = LatentRunner(build_model(tok.get_vocab(), seed=0), tok, spec, mask_rule=mask_rule("free"))
    inputs = toy_inputs(make_dataset(2, 2, seed=0))
    proc = _CloseAfter(tok)
    trace = runner.run(**inputs.run_kwargs(), max_new_tokens=14, logits_processor=proc, progress=False)
    return runner, inputs, proc, trace


def test_every_consumer_keeps_the_same_examples(varying):
    runner, inputs, proc, trace = varying
    counts = [e.num_latents for e in trace]
    assert sorted(counts) == [1, 1, 8, 8]  # the tie of the regression
    eights = [i for i, c in enumerate(counts) if c == 8]
    z, kept = trace.stack("z")
    assert kept == eights and z.shape[1] == 8
    assert trace.kept_indices() == eights
    assert trace.stack("hidden", layer=1)[1] == eights
    with pytest.raises(InputError, match=r"num_latents=8 is the count stack\(\)"):
        trace.features(layers=1)
    k = trace.latent_selection().num_latents
    np.testing.assert_array_equal(trace.features(layers=1, num_latents=k), trace.stack("hidden", layer=1)[0].numpy())
    assert default_interventions(trace)["mean_ablate"].mean.shape[0] == 8
    # examples without latents are left out of features() as of stack(): they have nothing to give
    e = trace[eights[0]]
    empty = e.replace(example_id="no-latents", index=99, latent_positions=e.latent_positions[:0], z=e.z[:0],
                      h_src=e.h_src[:0], hidden=e.hidden[:0])
    with_empty = LatentTrace(trace.select(eights).examples + (empty,), trace.spec, trace.config)
    assert with_empty.features(layers=1).shape == (2, 8, 128) and with_empty.kept_indices() == [0, 1]
    zy = z_to_y(runner, trace, {"zero": Zero()}, modes=("replay",), gold=inputs.gold, n_boot=50,
                logits_processor=proc, progress=False)
    assert sorted(set(zy.rows["example_id"])) == sorted(trace.example_ids[i] for i in eights)
    assert set(zy.rows["n_latents"]) == {8}
    assert zy.drop_counts() == {"all": {"latent_count_not_modal": 2}}
    assert zy.config["kept"] == {"num_latents": 8, "n_examples": 4, "n_kept": 2, "n_no_latents": 0,
                                 "n_other_count": 2, "rule": "modal"}
