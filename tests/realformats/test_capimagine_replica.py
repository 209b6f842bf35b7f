"""The ``capimagine`` preset on a real-format replica (the real Qwen2.5-VL tokenizer with the tokens CapImagine's
training code adds, a tiny random Qwen2.5-VL body) against an independent reference: transformers' own
``generate``, which is how CapImagine's README says the model is run. Nothing is forced by the protocol, so the
text span is ordinary generated text between its markers: the same ids, the span's positions and fed embeddings,
and the answer after the close marker.

The body is random, so a logits processor writes the span: the open marker first, the close marker a few
positions later (``CLOSE_AFTER``); the tokens in between are the model's own greedy choices.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoTokenizer, LogitsProcessor, LogitsProcessorList
from transformers import Qwen2_5_VLForConditionalGeneration

import latentprobe
from latentprobe.seeding import numpy_rng
from latentprobe.trace import Segment

from reference_images import fetch_image

pytestmark = pytest.mark.slow

MAX_NEW = 12
CLOSE_AFTER = 4  # the close marker is forced 4 positions after the open marker: 3 span tokens


def _image(seed: int) -> Image.Image:
    pixels = numpy_rng(seed, "capimagine_image").integers(0, 256, (90, 120, 3), dtype=np.uint8)
    return Image.fromarray(pixels, mode="RGB")


def _force(ids: list[int], scores: torch.Tensor, open_id: int, close_id: int) -> torch.Tensor:
    target = None
    if open_id not in ids:
        target = open_id
    elif close_id not in ids and len(ids) - ids.index(open_id) >= CLOSE_AFTER:
        target = close_id
    if target is None:
        return scores
    forced = torch.full_like(scores, float("-inf"))
    forced[target] = 0.0
    return forced


class _HFForce(LogitsProcessor):
    def __init__(self, open_id: int, close_id: int, prompt_len: int):
        self.open_id, self.close_id, self.prompt_len = open_id, close_id, prompt_len

    def __call__(self, input_ids, scores):
        out = scores.clone()
        for b in range(scores.shape[0]):
            out[b] = _force(input_ids[b, self.prompt_len:].tolist(), scores[b], self.open_id, self.close_id)
        return out


@pytest.fixture(scope="module")
def capimagine(replica_dir):
    folder = replica_dir("capimagine")
    runner = latentprobe.load(folder, "capimagine")
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
    return runner, model, AutoTokenizer.from_pretrained(folder), AutoImageProcessor.from_pretrained(folder)


def test_the_markers_are_capimagines_added_tokens(capimagine):
    runner, _, tok, _ = capimagine
    assert tok("Hello world").input_ids == [9707, 1879]  # the real Qwen2 BPE
    assert tok.convert_tokens_to_ids(["<observation>", "</observation>"]) == [151668, 151669]
    assert (runner.rspec.open_id, runner.rspec.close_id) == (151668, 151669)
    assert runner.spec.mediator == "text" and runner.spec.latent_eos == "end"


def test_capimagine_runs_like_transformers_generate(capimagine):
    runner, model, tok, improc = capimagine
    open_id, close_id = runner.rspec.open_id, runner.rspec.close_id
    question = "What is written on the sign?"
    images = [_image(i) for i in range(2)]
    prompts = [[{"role": "user", "content": [{"type": "image", "image": im}, {"type": "text", "text": question}]}]
               for im in images]
    ids_ = ["cap-0", "cap-1"]
    # latentprobe's processor sees the generated ids (after the prompt)
    lens = {}

    def processor(ids, scores, index):
        return _force(ids[lens[index]:] if index in lens else ids, scores, open_id, close_id)

    probe = runner.run(prompts, example_ids=ids_, max_new_tokens=1, progress=False)
    lens.update({i: e.prompt_len for i, e in enumerate(probe)})
    trace = runner.run(prompts, example_ids=ids_, max_new_tokens=MAX_NEW, logits_processor=processor, progress=False)
    eos = set(tok.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"]))
    for e, image in zip(trace, images):
        # the reference prompt: the chat template (default system turn), one image run as the grid says
        text = tok.apply_chat_template(prompts[0], tokenize=False, add_generation_prompt=True)
        assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
        vision = improc(images=[fetch_image(image)], return_tensors="pt")
        n = int(vision["image_grid_thw"].prod()) // 4
        ids = tok(text.replace("<|image_pad|>", "<|image_pad|>" * n), add_special_tokens=False).input_ids
        assert e.input_ids[:e.prompt_len].tolist() == ids
        inp = torch.tensor([ids])
        out = model.generate(
            input_ids=inp, attention_mask=torch.ones_like(inp), pixel_values=vision["pixel_values"],
            image_grid_thw=vision["image_grid_thw"], mm_token_type_ids=(inp == model.config.image_token_id).long(),
            max_new_tokens=MAX_NEW, do_sample=False, repetition_penalty=1.0, top_k=None, top_p=None,
            temperature=None, logits_processor=LogitsProcessorList([_HFForce(open_id, close_id, len(ids))]),
            eos_token_id=sorted(eos), pad_token_id=151643)[0].tolist()
        new = out[len(ids):]
        if new and new[-1] in eos:  # generate keeps the eos it stopped on; the trace records no eos position
            new = new[:-1]
        assert e.input_ids.tolist() == ids + new
        o = new.index(open_id) + len(ids)
        c = new.index(close_id) + len(ids)
        assert c - o == CLOSE_AFTER
        # the span: the model's own tokens between the markers, recorded like latents (their embeddings fed)
        assert e.latent_positions.tolist() == list(range(o + 1, c))
        assert e.segments[o] == Segment.OPEN and e.segments[c] == Segment.CLOSE
        emb = model.get_input_embeddings().weight[e.input_ids[o + 1:c]].detach()
        assert torch.allclose(e.z.float(), emb, atol=1e-6, rtol=0)
        assert e.answer_ids.tolist() == (e.input_ids[c + 1:].tolist())
