"""The Qwen2.5-VL replicas with a Qwen2.5-VL-Instruct ``generation_config.json`` in the published layout:
``generation="published"`` against a reference that decodes with what the authors' ``generate()`` takes from
that file (transformers' own merge and processor classes), every eos id stopping, Monet's eos inside latent
mode, and the budget edges of each family's loop.

Two layouts of the base model's file (docs/published-protocols.md, "Decoding settings from the checkpoint"):
the replicas' own (``temperature 0.1, top_k 1, top_p 0.001``: greedy-equivalent, so Mirage's "T=0.7" and
LVR's defaults are both greedy with the 1.05 penalty) and the later one (``temperature 1e-06``, no top-k or
top-p: Mirage then samples at T=0.7 with transformers' top-k 50, draw by draw the same as the reference fed
the same keyed uniforms).
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch
from transformers import AutoImageProcessor, AutoTokenizer, Qwen2_5_VLForConditionalGeneration

import latentprobe
from latentprobe.trace import Segment

from reference_loops import Decoding, hf_decoding, run_vl_reference
from test_vl_replicas import _forcing, _image, _messages, _protocol, _reference_prompt

pytestmark = pytest.mark.slow

LATE = {"bos_token_id": 151643, "pad_token_id": 151643, "do_sample": True, "eos_token_id": [151645, 151643],
        "repetition_penalty": 1.05, "temperature": 1e-06, "transformers_version": "4.51.3"}
#: what each authors' script passes to generate() (Mirage src/test.py:61-68; LVR evaluation/evaluation.py:141)
AUTHORS = {"mirage": dict(do_sample=True, temperature=0.7, top_p=0.9), "lvr": {}}
#: each family's stop rules in its published loop (reference_loops.VlProtocol)
RULES = {"monet": ("stop", True), "lvr": ("complete_started", False), "mirage": ("stop", False)}
EOS = (151645, 151643)  # <|im_end|>, <|endoftext|>
MAX_NEW = 14


@pytest.fixture(scope="module")
def checkpoints(replica_dir, tmp_path_factory):
    """Per (family, layout): the runner from ``latentprobe.load`` and the reference's HF model, tokenizer, processor."""
    out = {}
    for family in ("monet", "lvr", "mirage"):
        for layout in ("early", "late"):
            folder = replica_dir(family)
            if layout == "late":
                copy = tmp_path_factory.mktemp(f"{family}_late") / family
                shutil.copytree(folder, copy)
                (copy / "generation_config.json").write_text(json.dumps(LATE, indent=2))
                folder = copy
            model = Qwen2_5_VLForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
            out[family, layout] = (latentprobe.load(folder, family), model, AutoTokenizer.from_pretrained(folder),
                                   AutoImageProcessor.from_pretrained(folder))
    return out


def _proto(family, tok):
    budget, eos_in_latent = RULES[family]
    return dataclasses.replace(_protocol(family, tok), budget=budget, eos_in_latent=eos_in_latent)


def _compare(family, checkpoint, processor, dec, eos, example_id, max_new, **run_kwargs):
    runner, model, tok, improc = checkpoint
    image = _image("RGB")
    messages = _messages(family, image)
    trace = runner.run([messages], example_ids=[example_id], max_new_tokens=max_new, logits_processor=processor,
                       progress=False, **run_kwargs)
    e = trace[0]
    ids, pv, grid, _ = _reference_prompt(family, tok, improc, messages, image)
    image_run = e.positions_of(Segment.IMAGE).tolist()
    ref = run_vl_reference(model, ids, image_run, pv, grid, _proto(family, tok), dec, processor, example_id, max_new,
                           eos)
    assert e.input_ids.tolist() == ref.ids
    assert e.latent_positions.tolist() == ref.latent_positions
    assert e.answer_ids.tolist() == ref.answer
    if ref.latents:
        assert torch.allclose(e.z.float(), torch.stack(ref.latents), atol=1e-5, rtol=0)
    return trace, ref


@pytest.mark.parametrize("layout", ["early", "late"])
@pytest.mark.parametrize("family", ["mirage", "lvr", "monet"])
def test_published_decoding_is_what_generate_takes_from_the_checkpoint(checkpoints, family, layout):
    runner, model, tok, _ = checkpoints[family, layout]
    proto = _protocol(family, tok)
    processor = _forcing(proto.open_id, proto.close_id, {"monet": 3, "mirage": 4}.get(family))
    if family == "monet":  # vLLM: explicit SamplingParams; the file's eos ids join the tokenizer's stop id
        pub = runner.spec.published_generation
        dec = Decoding(pub.do_sample, pub.temperature, pub.top_k, pub.top_p, pub.repetition_penalty, seed=7, hf=True)
        eos = EOS
    else:
        dec, eos = hf_decoding(model, seed=7, **AUTHORS[family])
    assert eos == EOS
    trace, _ = _compare(family, checkpoints[family, layout], processor, dec, eos, f"{family}-{layout}", MAX_NEW,
                        generation="published", seed=7)
    rec = trace.config["generation"]
    assert (rec["do_sample"], rec["temperature"], rec["top_k"], rec["top_p"], rec["repetition_penalty"]) == \
        (dec.do_sample, dec.temperature, dec.top_k, dec.top_p, dec.repetition_penalty)
    assert rec["eos_token_id"] == list(EOS) and rec["checkpoint_file"].endswith("generation_config.json")
    if family == "mirage" and layout == "late":  # a real draw: T=0.7, top-k 50 (transformers' default), top-p 0.9
        assert (dec.do_sample, dec.top_k, dec.repetition_penalty) == (True, 50, 1.05)
        greedy = runner.run([_messages(family, _image("RGB"))], example_ids=[f"{family}-{layout}"], progress=False,
                            max_new_tokens=MAX_NEW, logits_processor=processor, generation="published", do_sample=False)
        assert greedy[0].answer_ids.tolist() != trace[0].answer_ids.tolist()


def _force_at(targets: dict[int, int], prompt_len: int):
    """Force ``targets[k]`` as the token chosen at generated position ``k`` (0 = the first after the prompt)."""
    def processor(ids, scores, index):
        t = targets.get(len(ids) - prompt_len)
        if t is None:
            return scores
        forced = torch.full_like(scores, float("-inf"))
        forced[t] = 0.0
        return forced
    return processor


def _prompt_len(checkpoint, family):
    _, _, tok, improc = checkpoint
    image = _image("RGB")
    return len(_reference_prompt(family, tok, improc, _messages(family, image), image)[0])


def test_endoftext_stops_every_run(checkpoints):
    cp = checkpoints["mirage", "early"]
    n = _prompt_len(cp, "mirage")
    processor = _force_at({2: 151643}, n)  # <|endoftext|>, the second id of the checkpoint's eos list
    trace, ref = _compare("mirage", cp, processor, Decoding(), EOS, "eot", MAX_NEW)
    e = trace[0]
    assert e.answer_ids.shape[0] == 2 and e.finished and trace.config["generation"]["eos_token_id"] == list(EOS)
    # a runner that knows only the tokenizer's eos (<|im_end|>) writes it as text and goes on
    runner, model, tok, _ = cp
    bare = latentprobe.LatentRunner(model, tok, "mirage", image_processor=runner.image_processor,
                                    prompt_convention=runner.prompt_convention)
    other = bare.run([_messages("mirage", _image("RGB"))], max_new_tokens=MAX_NEW, logits_processor=processor,
                     progress=False)[0]
    assert other.answer_ids.tolist()[2] == 151643 and other.answer_ids.shape[0] > 3


def test_an_eos_sampled_inside_latent_mode_ends_monet(checkpoints):
    cp = checkpoints["monet", "early"]
    n = _prompt_len(cp, "monet")
    open_id = cp[2].convert_tokens_to_ids("<abs_vis_token>")
    processor = _force_at({0: open_id, 2: 151643}, n)  # latent 0 on the open slot, latent 1, then eos
    trace, ref = _compare("monet", cp, processor, Decoding(), EOS, "monet-eos", MAX_NEW)
    assert trace[0].num_latents == 2 and trace[0].finished and trace[0].answer_ids.shape[0] == 0


@pytest.mark.parametrize("family, targets, max_new, latents", [
    ("mirage", {0: "<|latent_start|>"}, 4, 3),  # the budget ends the segment after 3 latents
    ("mirage", {3: "<|latent_start|>"}, 4, 0),  # the open marker is the last budgeted id
    ("monet", {0: "<abs_vis_token>"}, 4, 4),  # vLLM's max_tokens: the segment is cut at 4 positions
    ("lvr", {3: "<|lvr_start|>"}, 4, 0),  # LVR: an open marker at the edge stops ...
    ("lvr", {2: "<|lvr_start|>"}, 4, 8),  # ... a started segment completes its quota
])
def test_the_budget_edges_stop_as_the_authors_loop(checkpoints, family, targets, max_new, latents):
    cp = checkpoints[family, "early"]
    n = _prompt_len(cp, family)
    processor = _force_at({k: cp[2].convert_tokens_to_ids(t) for k, t in targets.items()}, n)
    trace, ref = _compare(family, cp, processor, Decoding(), EOS, f"{family}-edge", max_new)
    e = trace[0]
    assert e.num_latents == latents and not e.finished and e.meta["eos"] is False
