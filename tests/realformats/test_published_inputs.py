"""Inputs as the authors' scripts build them: the two-stage image sizing (``qwen_vl_utils``, then the
processor's bounds), Mirage's own conversation format (the image moved to ``<image>``) and Hugging Face's
``{"type": "image"}`` placeholders with the images passed separately; against the independent references
in ``reference_images.py`` and Mirage's ``place_input_image`` written out below."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

import latentprobe
from latentprobe.engine import convention_for
from latentprobe.engine.inputs import process_images
from latentprobe.errors import ImageBatchError
from latentprobe.seeding import numpy_rng

from formats.qwen_vl_replica import PIXELS
from reference_images import MONET_VLLM, fetch_image, one_stage_tokens, two_stage_tokens

#: (width, height) as PIL gives sizes: small, odd, square, panoramic, and past both stages' maxima
SIZES = [(97, 61), (61, 97), (150, 230), (230, 150), (448, 448), (4000, 3000), (3000, 4000), (13, 29), (28, 28),
         (55, 301), (301, 55), (333, 777), (640, 480), (800, 1200), (1024, 768), (1920, 1080), (2537, 2539),
         (2600, 2600), (5000, 100), (100, 5000), (1111, 37), (3584, 3584)]


def _noise(size, mode="RGB", seed=0) -> Image.Image:
    w, h = size
    pixels = numpy_rng(seed, "published_inputs", w, h).integers(0, 256, (h, w, 4), dtype=np.uint8)
    return Image.fromarray(pixels, mode="RGBA").convert(mode)


def _tokens(grid: torch.Tensor) -> list[int]:
    return [int(g.prod()) // 4 for g in grid]


def test_monet_image_tokens_equal_the_authors_two_stage_pipeline():
    conv = convention_for(latentprobe.get_preset("monet"))
    assert (conv.min_pixels, conv.max_pixels) == MONET_VLLM
    proc = Qwen2VLImageProcessorPil(min_pixels=conv.min_pixels, max_pixels=conv.max_pixels)
    got = []
    for w, h in SIZES:
        image = Image.new("RGB", (w, h), (w % 256, h % 256, 7))
        _, grid = process_images([image], proc, conv)
        got.append(_tokens(grid)[0])
    want = [two_stage_tokens(h, w) for w, h in SIZES]
    assert got == want
    # the sizes exercise the difference: a single resize gives other counts for several of them
    single = [one_stage_tokens(h, w) for w, h in SIZES]
    assert sum(a != b for a, b in zip(want, single)) >= 4
    assert two_stage_tokens(230, 150) == 273 and one_stage_tokens(230, 150) == 260  # the 150x230 case


@pytest.mark.parametrize("size, mode", [((97, 61), "RGBA"), ((150, 230), "L"), ((2600, 2600), "RGB")])
def test_pixels_equal_the_reference_pipeline(size, mode):
    """The pixels too: qwen_vl_utils' resize, then the processor, exactly."""
    conv = convention_for(latentprobe.get_preset("monet"))
    proc = Qwen2VLImageProcessorPil(min_pixels=conv.min_pixels, max_pixels=conv.max_pixels)
    image = _noise(size, mode)
    pv, grid = process_images([image], proc, conv)
    ref = proc(images=[fetch_image(image)], return_tensors="pt")
    assert torch.equal(grid, ref["image_grid_thw"]) and torch.equal(pv, ref["pixel_values"])


def _image_tokens(runner, e) -> int:
    return int((e.input_ids[:e.prompt_len] == runner.parts.image_token_id).sum())


@pytest.mark.parametrize("family", ["monet", "lvr", "mirage"])
def test_load_sizes_images_as_each_family_does(replica_dir, family):
    runner = latentprobe.load(replica_dir(family), family)
    sizes = [(150, 230), (97, 61)]
    msgs = [[{"role": "user", "content": [{"type": "image", "image": _noise(s, seed=i)},
                                          {"type": "text", "text": "What is shown?"}]}] for i, s in enumerate(sizes)]
    trace = runner.run(msgs, max_new_tokens=4, progress=False)
    bounds = PIXELS[family]  # the replica's processor bounds (Monet: vLLM's mm_processor_kwargs)
    assert [_image_tokens(runner, e) for e in trace] == [two_stage_tokens(h, w, bounds) for w, h in sizes]
    if family == "monet":
        assert _image_tokens(runner, trace[0]) == 273


# ----------------------------------------------------------------------------------------------- messages
def mirage_place_input_image(text: str) -> str:
    """``place_input_image(text, sep_token=None)`` (Mirage ``src/utils.py:53-66`` at 53f26de2)."""
    image_pad, image_placeholder = "<|vision_start|><|image_pad|><|vision_end|>", "<image>"
    return text.replace(image_pad, "").replace(image_placeholder, image_pad)


QUESTION = "You are given a maze.\n<image>\nIs the plan safe? Answer in \\boxed{}."


@pytest.fixture(scope="module")
def mirage(replica_dir):
    return latentprobe.load(replica_dir("mirage"), "mirage")


def test_mirage_own_conversation_format_places_the_image_at_its_placeholder(mirage):
    image = _noise((150, 230), "RGB", seed=3)
    conversations = [{"role": "user", "content": [{"type": "image", "image": image},
                                                  {"type": "text", "text": QUESTION}]}]
    e = mirage.run([conversations], max_new_tokens=4, progress=False)[0]
    tok = mirage.tokenizer
    # src/test.py:53-57: the template without generation prompt, the image moved, then '<|im_start|>assistant'
    text = mirage_place_input_image(tok.apply_chat_template(conversations, tokenize=False)) + "<|im_start|>assistant"
    n = two_stage_tokens(230, 150, PIXELS["mirage"])
    want = tok(text.replace("<|image_pad|>", "<|image_pad|>" * n), add_special_tokens=False).input_ids
    assert e.input_ids[:e.prompt_len].tolist() == want
    assert "<image>" not in tok.decode(e.input_ids[:e.prompt_len])
    # the image sits inside the question, after "You are given a maze.\n"
    first = e.input_ids.tolist().index(mirage.parts.image_token_id)
    assert tok.decode(e.input_ids[:first]).endswith("maze.\n<|vision_start|>")


def test_hugging_face_placeholders_take_images_passed_separately(mirage):
    images = [_noise((97, 61), "RGBA", seed=4), _noise((61, 97), "L", seed=5)]
    embedded = [{"role": "user", "content": [{"type": "image", "image": images[0]}, {"type": "image", "image": images[1]},
                                             {"type": "text", "text": "Which is brighter?"}]}]
    placeholders = [{"role": "user", "content": [{"type": "image"}, {"type": "image"},
                                                 {"type": "text", "text": "Which is brighter?"}]}]
    a = mirage.run([embedded], max_new_tokens=3, progress=False)[0]
    b = mirage.run([placeholders], images=[images], max_new_tokens=3, progress=False)[0]
    assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.image_embeds, b.image_embeds)
    swapped = mirage.run([placeholders], images=[images[::-1]], max_new_tokens=3, progress=False)[0]
    assert not torch.equal(swapped.image_grid_thw, b.image_grid_thw)  # the order of images= is the order of parts
    with pytest.raises(ImageBatchError, match=r"message 0, part 1: an image placeholder .* gives 1 image"):
        mirage.run([placeholders], images=[images[:1]], max_new_tokens=3, progress=False)


def test_placeholders_that_do_not_match_the_images_are_refused(mirage):
    image = _noise((97, 61), seed=6)
    two = [{"role": "user", "content": [{"type": "image", "image": image},
                                        {"type": "text", "text": "<image> and <image>: which?"}]}]
    with pytest.raises(ImageBatchError, match=r"2 '<image>' placeholder\(s\) for 1 image"):
        mirage.run([two], max_new_tokens=4, progress=False)
