"""The latent-mode diagnosis of a clean run: the share that entered, the model's own choice at the open decision."""

from __future__ import annotations

import pytest
import torch

from latentprobe import toy
from latentprobe.study.diagnosis import diagnose_latent_mode


@pytest.fixture(scope="module")
def mediated():
    tm = toy.load("mediated")
    ex = tm.examples("test", 4)
    return tm, tm.runner(), tm.prompts(ex), tm.images(ex)


def test_a_model_that_opens_is_not_flagged(mediated):
    tm, runner, prompts, images = mediated
    d = diagnose_latent_mode(runner.run(prompts, images, max_new_tokens=8, progress=False), runner)
    assert (d.n, d.n_entered, d.share, d.never_opened) == (4, 4, 1.0, False)
    assert d.top_tokens == () and d.p_open is None and d.summary() == "4 of 4 examples (100%)"


def test_a_suppressed_open_marker_is_diagnosed_from_the_models_own_distribution(mediated):
    tm, runner, prompts, images = mediated
    open_id = runner.rspec.open_id

    def never_open(ids, scores, index):  # pushes the marker down after the model has scored it
        scores = scores.clone()
        scores[open_id] = float("-inf")
        return scores

    trace = runner.run(prompts, images, max_new_tokens=8, logits_processor=never_open, progress=False)
    d = diagnose_latent_mode(trace, runner)
    assert d.never_opened and d.n == 4 and d.share == 0.0
    # the trained toy wanted to open: its own distribution puts the marker first
    marker = runner.tokenizer.decode([open_id])
    assert d.top_tokens[0][0] == marker and d.p_open == pytest.approx(d.top_tokens[0][1], abs=1e-6)
    per = [e["p_open"] for e in d.examples]
    mean = torch.stack([e.first_token_logprobs.exp() for e in trace]).mean(0)
    assert d.p_open == pytest.approx(float(mean[open_id]), rel=1e-6) and d.p_open == pytest.approx(sum(per) / 4)
    assert len(d.top_tokens) == 5 and all(len(e["top"]) == 5 and not e["entered"] for e in d.examples)
    msg = d.message("s.toml")
    assert msg.startswith("s.toml: the model never entered latent mode on the clean run (0 of 4 examples)")
    assert 'open = "force"' in msg and repr(marker) in msg
    assert d.to_dict()["share"] == 0.0 and d.to_dict()["p_open_mean"] == d.p_open
    forced = diagnose_latent_mode(trace, runner, open_setting="force").message("s.toml")
    assert "open = \"force\" is set, yet nothing opened" in forced


def test_force_open_opens_once_and_never_after_a_close(mediated):
    from latentprobe.study.analyses import force_open

    tm, runner, prompts, images = mediated
    proc = force_open(runner)
    rs = runner.rspec
    vocab = len(runner.tokenizer.get_vocab())
    prompt = [20, 21, 22]  # no marker in the prompt
    assert int(proc(prompt, torch.zeros(vocab), 0).argmax()) == rs.open_id  # the first generated position
    assert proc(prompt + [rs.open_id, 9], torch.zeros(vocab), 0)[rs.open_id] == float("-inf")  # opened: never again
    # a replay that dropped the latent slots (and with them Monet's open marker) keeps its close: no new open
    assert proc(prompt + [rs.close_id, 9], torch.zeros(vocab), 0)[rs.open_id] == float("-inf")
    assert proc(prompt, torch.zeros(vocab), 0)[rs.eos_id] == float("-inf")  # only the marker at the open decision
    assert proc(prompt + [rs.open_id], torch.zeros(vocab), 0)[rs.eos_id] == 0.0  # the end is left to the model
