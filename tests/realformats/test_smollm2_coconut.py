"""SmolLM2-135M-Instruct's real weights in a Coconut-style loop: against a hand-written reference loop
(greedy and seeded sampling), replay equivalence, the identity patch in every mode, one intervention
and one probe.

Coconut's three tokens are added to a copy of the tokenizer and the embeddings of a deep copy of the
model are resized (the session's ``smollm2`` stays untouched); prompts hold K ``<|latent|>`` slots as
``facebookresearch/coconut``'s ``dataset.py`` writes them. One runner and one trace are shared.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from latentprobe import LatentRunner
from latentprobe.engine.loading import COCONUT_TOKENS, coconut_prompt
from latentprobe.interventions import Zero
from latentprobe.presets import get_preset
from latentprobe.probing import probe_sweep, recurring_types
from latentprobe.seeding import torch_generator

from reference_loops import Decoding, run_text_reference

pytestmark = pytest.mark.slow

K = 3
MAX_NEW = 6
ARITHMETIC = ["What is 2 plus 3?", "What is 7 minus 4?", "What is 5 times 6?", "What is 9 plus 8?",
              "What is 12 minus 5?", "What is 3 times 3?"]
ANIMALS = ["Which animal barks?", "Which animal says moo?", "What colour is a crow?", "Where do fish live?",
           "What does a cat eat?", "Which bird cannot fly?"]
QUESTIONS = ARITHMETIC + ANIMALS
SAMPLING = dict(do_sample=True, temperature=0.7, top_k=40, top_p=0.9, seed=5)


@pytest.fixture(scope="module")
def coconut(smollm2):
    """(runner, model, tokenizer) of SmolLM2 with Coconut's tokens (copies: the session model is untouched)."""
    tok = copy.deepcopy(smollm2.tokenizer)
    model = copy.deepcopy(smollm2.model)
    for t in COCONUT_TOKENS:
        tok.add_tokens(t)
    old = model.get_input_embeddings().weight.shape[0]
    model.resize_token_embeddings(len(tok), mean_resizing=False)
    with torch.no_grad():  # the new rows: the mean embedding plus a little keyed noise (deterministic)
        emb = model.get_input_embeddings().weight
        noise = torch.randn(len(tok) - old, emb.shape[1], generator=torch_generator(0, "coconut_tokens"))
        emb[old:] = emb[:old].mean(0) + 0.01 * noise
    runner = LatentRunner(model, tok, get_preset("coconut", num_latents=K))
    return runner, model.eval(), tok


@pytest.fixture(scope="module")
def greedy_trace(coconut):
    runner, _, tok = coconut
    prompts = [coconut_prompt(tok, q, K) for q in QUESTIONS]
    return runner.run(prompts, max_new_tokens=MAX_NEW, progress=False, batch_size=len(prompts))


def _reference(model, tok, question, dec, example_id):
    ids = coconut_prompt(tok, question, K)
    start, end, lat = (tok.convert_tokens_to_ids(t) for t in COCONUT_TOKENS)
    o = ids.index(start)
    return run_text_reference(model, ids, o + 1, K, ids[o + 1 + K:], dec, example_id, MAX_NEW, tok.eos_token_id,
                              slot_id=lat, prompt_len=len(ids))


def test_coconut_tokens_and_prompt(coconut, greedy_trace):
    runner, model, tok = coconut
    ids = [tok.convert_tokens_to_ids(t) for t in COCONUT_TOKENS]
    assert ids == [49152, 49153, 49154] and model.get_input_embeddings().weight.shape[0] == 49155
    assert runner.resolved.open_id == 49152 and runner.resolved.slot_id == 49154
    for e in greedy_trace:
        assert e.num_latents == K and e.z.shape == (K, 576) and e.hidden.shape == (K, 31, 576)
        assert torch.isfinite(e.hidden).all()


@pytest.mark.parametrize("sampled", [False, True], ids=["greedy", "seeded"])
def test_coconut_loop_matches_a_hand_written_reference(coconut, greedy_trace, sampled):
    """Batch 1 against the batch-1 reference: the same latents (<= 1e-5); the batched, left-padded run
    (``greedy_trace``, all twelve prompts at once) agrees with both up to float32 summation order."""
    runner, model, tok = coconut
    picked = [0, 1, 7]
    prompts = [coconut_prompt(tok, QUESTIONS[i], K) for i in picked]
    ids_ = [str(i) for i in picked]
    settings = SAMPLING if sampled else {}
    trace = runner.run(prompts, example_ids=ids_, max_new_tokens=MAX_NEW, progress=False, batch_size=1, **settings)
    dec = Decoding(True, 0.7, 40, 0.9, seed=5) if sampled else Decoding()
    for i, e in zip(picked, trace):
        ref = _reference(model, tok, QUESTIONS[i], dec, e.example_id)
        assert e.input_ids.tolist() == ref.ids
        assert e.latent_positions.tolist() == ref.latent_positions
        assert torch.allclose(e.z, torch.stack(ref.latents), atol=1e-5, rtol=0)
        assert e.answer_ids.tolist() == ref.answer
        if not sampled:
            batched = greedy_trace[i]
            assert torch.equal(batched.input_ids, e.input_ids)
            assert torch.allclose(batched.z, e.z, atol=1e-4, rtol=1e-5)  # |z| is about 40 here


def test_replay_reproduces_the_run(coconut, greedy_trace):
    runner = coconut[0]
    rep = runner.intervene(greedy_trace, None, mode="replay", progress=False)
    for a, b in zip(greedy_trace, rep):
        # within 1e-4 relative to each (step, layer) vector's largest entry: SmolLM2's residual stream holds
        # massive activations (about 870) where float32 summation order alone moves entries by about 5e-4
        scale = a.hidden.abs().amax(-1, keepdim=True)
        assert ((a.hidden - b.hidden).abs() <= 1e-4 * scale).all()
        assert torch.allclose(a.z, b.z, atol=1e-4, rtol=0)
        assert torch.equal(a.answer_ids, b.answer_ids)


def test_identity_patch_is_exact_in_every_mode(coconut, greedy_trace):
    runner = coconut[0]
    some = greedy_trace.select([0, 6])
    for mode in ("replay", "propagate", "redecode"):
        control = runner.intervene(some, None, mode=mode, layers=(0, 15), progress=False)
        patched = runner.intervene(some, lambda z, step, example: z, mode=mode, layers=(0, 15), progress=False)
        for a, b, orig in zip(control, patched, some):
            assert torch.equal(a.z, b.z) and torch.equal(a.hidden, b.hidden), mode
            assert torch.equal(a.answer_ids, b.answer_ids) and torch.equal(a.answer_logprobs, b.answer_logprobs)
            if mode != "replay":
                assert torch.equal(b.answer_ids, orig.answer_ids)


def test_zeroing_the_latents_changes_answers(coconut, greedy_trace):
    runner = coconut[0]
    out = runner.intervene(greedy_trace, Zero(), mode="redecode", progress=False)
    assert all(torch.count_nonzero(e.z) == 0 for e in out)
    changed = [not torch.equal(a.answer_ids, b.answer_ids) or
               not torch.allclose(a.answer_logprobs[:1], b.answer_logprobs[:1], atol=1e-4)
               for a, b in zip(greedy_trace, out)]
    assert any(changed)


def test_probe_on_real_latents_runs_with_controls(greedy_trace):
    X = greedy_trace.features(layers=[0, 30])  # [n, 2 layers, K, d]
    y = np.array([0] * len(ARITHMETIC) + [1] * len(ANIMALS))
    types = recurring_types(QUESTIONS, np.arange(len(QUESTIONS)), n_splits=3, seed=0)  # question prefixes recurring across folds
    res = probe_sweep(X, y, None, n_splits=3, steps=[0], progress=False, control_types=types)
    table = res.scores
    assert len(table) == 2 and set(table["layer"]) == {0, 1}
    assert (table["control_recur"] == 1.0).all()
    for column in ("score", "majority", "shuffle", "control", "selectivity_ci_low", "chance"):
        assert np.isfinite(table[column].to_numpy(dtype=float)).all(), column
    assert (table["score"].between(0, 1)).all() and (table["chance"] == 0.5).all()
