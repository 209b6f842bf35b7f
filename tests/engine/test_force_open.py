"""The public force-open logits processor: its rule by hand, its checks, and a run on an untrained toy
model in which every example opens latent mode at the forced position and runs to the budget."""

from __future__ import annotations

import pytest
import torch

from latentprobe.engine import ForceOpen, LatentRunner
from latentprobe.errors import InputError, LatentProbeError
from latentprobe.presets import get_preset

V = 6
INF = float("-inf")


def test_first_free_position_then_never_again_and_never_eos():
    p = ForceOpen(open_id=3, eos_id=0)
    out = p([1, 2], torch.arange(V, dtype=torch.float), 0)
    assert out.tolist() == [INF, INF, INF, 0.0, INF, INF]
    after = p([1, 2, 3, 5], torch.arange(V, dtype=torch.float), 0)
    assert after.tolist() == [INF, 1.0, 2.0, INF, 4.0, 5.0]
    assert p.__call__([1], torch.zeros(V), 7)[3] == 0.0  # index plays no role without prompt_lens


def test_the_input_is_not_modified_and_eos_can_be_kept():
    scores = torch.zeros(V)
    ForceOpen(open_id=3)([1, 3], scores, 0)
    assert scores.tolist() == [0.0] * V
    assert ForceOpen(open_id=3)([1, 3], torch.zeros(V), 0).tolist() == [0.0, 0.0, 0.0, INF, 0.0, 0.0]


def test_a_position_per_example_counts_from_the_prompt():
    p = ForceOpen(open_id=3, eos_id=0, at={0: 0, 1: 2}, prompt_lens={0: 2, 1: 3})
    assert p([9, 9], torch.zeros(V), 0).argmax().item() == 3
    assert p([9, 9, 9], torch.zeros(V), 1)[3] == INF  # example 1: position 0 of 2
    assert p([9, 9, 9, 1], torch.zeros(V), 1)[3] == INF  # position 1
    assert p([9, 9, 9, 1, 1], torch.zeros(V), 1).argmax().item() == 3  # position 2: forced
    assert p([9, 9, 9, 1, 1, 3, 1], torch.zeros(V), 1)[3] == INF  # opened: never again
    assert p([9, 3, 9], torch.zeros(V), 2)[3] == INF  # an index without a prompt length is never forced


def test_a_marker_in_the_prompt_counts_only_without_prompt_lens():
    assert ForceOpen(open_id=3)([3, 1], torch.zeros(V), 0)[3] == INF
    assert ForceOpen(open_id=3, prompt_lens={0: 2})([3, 1], torch.zeros(V), 0).argmax().item() == 3


def test_skip_ids_leave_an_example_unforced():
    p = ForceOpen(open_id=3, eos_id=0, skip_ids=[4])
    assert p.skip_ids == (4,)
    out = p([4, 1], torch.zeros(V), 0)
    assert out[3] == INF and out[0] == INF and out[1] == 0.0


@pytest.mark.parametrize("kw, match", [
    (dict(open_id=-1), "open_id=-1"),
    (dict(open_id=True), "open_id=True"),
    (dict(open_id=3, eos_id="</s>"), "eos_id='</s>'"),
    (dict(open_id=3, at=2), r"at=2 needs prompt_lens"),
    (dict(open_id=3, at={0: 0}), "needs prompt_lens"),
    (dict(open_id=3, at=-1, prompt_lens={}), "give a position >= 0"),
    (dict(open_id=3, skip_ids=("how",)), "skip_ids"),
])
def test_bad_arguments_are_refused(kw, match):
    with pytest.raises(InputError, match=match) as err:
        ForceOpen(**kw)
    assert isinstance(err.value, LatentProbeError)


@pytest.fixture(scope="module")
def toy_runner():
    from latentprobe.toy.model import build_model, mask_rule, toy_spec
    from latentprobe.toy.vocab import build_tokenizer

    tok = build_tokenizer()
    return LatentRunner(build_model(tok.get_vocab(), seed=0), tok, toy_spec("mediated"),
                        mask_rule=mask_rule("mediated"))


def test_for_runner_opens_every_example_of_an_untrained_model(toy_runner):
    from latentprobe.toy.perturbations import toy_inputs
    from latentprobe.toy.shapes import make_dataset

    r = toy_runner
    proc = ForceOpen.for_runner(r)
    assert (proc.open_id, proc.eos_id) == (r.rspec.open_id, r.rspec.eos_id)
    inputs = toy_inputs(make_dataset(2, 2, seed=1))
    trace = r.run(**inputs.run_kwargs(), max_new_tokens=9, logits_processor=proc, progress=False)
    for e in trace.examples:
        assert e.entered_latent_mode and e.num_latents == r.spec.num_latents
        assert int(e.input_ids[e.prompt_len]) == r.rspec.open_id  # the first generated token
        assert int((e.input_ids[e.prompt_len:] == r.rspec.open_id).sum()) == 1
        assert r.rspec.eos_id not in [int(t) for t in e.answer_ids] and not e.finished  # ran to the budget
    assert ForceOpen.for_runner(r, keep_eos=True).eos_id is None
    with pytest.raises(InputError, match=r"skip_tokens \['<no such token>'\]"):
        ForceOpen.for_runner(r, skip_tokens=("<no such token>",))


def test_for_runner_refuses_families_that_open_by_themselves(toy_runner):
    class Fake:
        rspec = toy_runner.rspec.__class__(**{**vars(toy_runner.rspec), "spec": get_preset("coconut")})
        tokenizer = toy_runner.tokenizer

    with pytest.raises(InputError, match=r"'coconut' spec opens latent mode itself \(open_mode='prompt'\)"):
        ForceOpen.for_runner(Fake())
