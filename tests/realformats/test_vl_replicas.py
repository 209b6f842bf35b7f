"""``latentprobe.load`` on the real-format Qwen2.5-VL replicas (Monet, LVR, Mirage) end to end, against an
independent Hugging Face reference loop per family: chat messages, odd-sized images in RGB/RGBA/L, greedy
and the published (sampled) decoding; the same prompt ids, image-token runs, latents and answers.

The replicas' bodies are random, so a logits processor makes them enter latent mode: it forces the family's
open marker as the first generated token and (Monet, Mirage) a sampled close after a few positions, which
exercises the published early close (Mirage: at 0 latents).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoTokenizer, Qwen2_5_VLForConditionalGeneration

import latentprobe
from latentprobe.seeding import numpy_rng
from latentprobe.trace import Segment

from reference_images import fetch_image
from reference_loops import Decoding, VlProtocol, run_vl_reference

pytestmark = pytest.mark.slow

FAMILIES = {  # open, close, K, latent 0 on the open slot, close rule, slot id, min latents, segments
    "monet": ("<abs_vis_token>", "</abs_vis_token>", 10, True, "sampled_or_cap", "sampled", 1, None),
    "lvr": ("<|lvr_start|>", None, 8, False, "quota", "sampled", 0, None),
    "mirage": ("<|latent_start|>", "<|latent_end|>", 8, False, "sampled_or_cap", "<|latent_pad|>", 0, 1),
}
#: positions after the open marker at which the processor forces a close (Monet: after 3 latents;
#: Mirage: straight after the open marker, so 0 latents)
CLOSE_AFTER = {"monet": 3, "mirage": 1}
MODES = ("RGB", "RGBA", "L")
MAX_NEW = 14


def _image(mode: str, size=(97, 131)) -> Image.Image:
    pixels = numpy_rng(0, "realformats_image", mode).integers(0, 256, (size[1], size[0], 4), dtype=np.uint8)
    return Image.fromarray(pixels, mode="RGBA").convert(mode)


def _messages(family: str, image: Image.Image) -> list[dict]:
    text = {"type": "text", "text": "Which colour covers most of the picture?"}
    part = {"type": "image", "image": image}
    content = [text, part] if family == "monet" else [part, text]  # each family's published order
    return [{"role": "system", "content": "You are a careful visual assistant."},
            {"role": "user", "content": content}]


def _forcing(open_id: int, close_id: int | None, close_after: int | None):
    """Force the open marker as the first choice; optionally a close ``close_after`` positions after it."""
    def processor(ids: list[int], scores: torch.Tensor, index: int) -> torch.Tensor:
        target = None
        if open_id not in ids:
            target = open_id
        elif close_after is not None and close_id not in ids and len(ids) - ids.index(open_id) >= close_after:
            target = close_id
        if target is None:
            return scores
        forced = torch.full_like(scores, float("-inf"))
        forced[target] = 0.0
        return forced
    return processor


@pytest.fixture(scope="module")
def families(replica_dir):
    """Per family: the runner from ``latentprobe.load`` and the reference's own HF model, tokenizer, processor."""
    out = {}
    for family in FAMILIES:
        folder = replica_dir(family)
        runner = latentprobe.load(folder, family)
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
        out[family] = (runner, model, AutoTokenizer.from_pretrained(folder), AutoImageProcessor.from_pretrained(folder))
    return out


def _reference_prompt(family, tok, improc, messages, image):
    """The prompt as the family's authors build it, written here from the published conventions."""
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=family != "mirage")
    if family == "monet":
        text = "<image>\n" + text  # load_and_gen_vllm.py:87-88
    if family == "mirage":
        text = text + "<|im_start|>assistant"  # src/test.py:53-57
    vision = improc(images=[fetch_image(image)], return_tensors="pt")  # qwen_vl_utils first, then the processor
    grid = vision["image_grid_thw"]
    n = int(grid.prod()) // 4
    assert text.count("<|image_pad|>") == 1
    ids = tok(text.replace("<|image_pad|>", "<|image_pad|>" * n), add_special_tokens=False).input_ids
    return ids, vision["pixel_values"], grid, n


def _protocol(family, tok) -> VlProtocol:
    open_t, close_t, k, first_on_open, close, slot, min_latents, segs = FAMILIES[family]
    return VlProtocol(tok.convert_tokens_to_ids(open_t), None if close_t is None else tok.convert_tokens_to_ids(close_t),
                      k, first_on_open, close, slot if slot == "sampled" else tok.convert_tokens_to_ids(slot),
                      min_latents, segs)


@pytest.mark.parametrize("generation", ["greedy", "published"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_load_runs_the_published_loop_like_a_hand_written_reference(families, family, generation):
    runner, model, tok, improc = families[family]
    proto = _protocol(family, tok)
    images = [_image(m) for m in MODES]
    prompts = [_messages(family, im) for im in images]
    processor = _forcing(proto.open_id, proto.close_id, CLOSE_AFTER.get(family))
    ids_ = [f"{family}-{m}" for m in MODES]
    if generation == "greedy":
        trace = runner.run(prompts, example_ids=ids_, max_new_tokens=MAX_NEW, logits_processor=processor,
                           progress=False)
        dec = Decoding()
    else:
        trace = runner.run(prompts, example_ids=ids_, generation="published", max_new_tokens=MAX_NEW, seed=7,
                           logits_processor=processor, progress=False)
        rec = trace.config["generation"]  # the replicas' generation_config.json merged as generate() merges it
        dec = Decoding(rec["do_sample"], rec["temperature"], rec["top_k"], rec["top_p"], rec["repetition_penalty"],
                       seed=7)
    eos = tuple(trace.config["generation"]["eos_token_id"])  # <|im_end|>, <|endoftext|>
    assert eos == tuple(tok.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"]))
    for e, image, messages in zip(trace, images, prompts):
        ids, pv, grid, n_image = _reference_prompt(family, tok, improc, messages, image)
        # the prompt: the chat template through the real tokenizer, one image run as long as the grid says
        assert e.input_ids[:e.prompt_len].tolist() == ids
        assert torch.equal(e.image_grid_thw, grid) and e.image_embeds.shape[0] == n_image
        image_run = e.positions_of(Segment.IMAGE).tolist()
        assert len(image_run) == n_image and image_run == list(range(image_run[0], image_run[0] + n_image))
        assert all(ids[p] == model.config.image_token_id for p in image_run)
        ref = run_vl_reference(model, ids, image_run, pv, grid, proto, dec, processor, e.example_id, MAX_NEW, eos)
        # the same fed sequence, latents and answer
        assert e.input_ids.tolist() == ref.ids
        assert e.latent_positions.tolist() == ref.latent_positions
        if ref.latents:
            assert torch.allclose(e.z.float(), torch.stack(ref.latents), atol=1e-5, rtol=0)
        else:
            assert e.z.shape[0] == 0
        assert e.answer_ids.tolist() == ref.answer
        _check_segments(family, e, proto)


def _check_segments(family, e, proto: VlProtocol) -> None:
    """K and the segment layout follow the preset."""
    segs, ids, start = e.segments.tolist(), e.input_ids.tolist(), e.prompt_len
    lat = e.latent_positions.tolist()
    if family == "monet":  # latent 0 on the open marker's own slot, 3 latents, then a sampled close
        assert ids[start] == proto.open_id and lat == [start, start + 1, start + 2]
        assert segs[start + 3] == Segment.CLOSE and ids[start + 3] == proto.close_id
    elif family == "lvr":  # open fed as a token, K=8 latents, then the sampled token is fed as text
        assert segs[start] == Segment.OPEN and lat[:8] == list(range(start + 1, start + 9))
        assert Segment.CLOSE not in segs and (len(segs) == start + 9 or segs[start + 9] in (Segment.GEN, Segment.OPEN))
        opens = [p for p in range(start, len(segs)) if segs[p] == Segment.OPEN]
        assert all(segs[p + 1:p + 9] == [Segment.LATENT] * 8 for p in opens)  # every segment: the full quota
        assert e.num_latents == 8 * len(opens)
        # re-entering never runs past the budget by more than one segment and the token after it
        assert len(segs) - start <= MAX_NEW + 8 + 1
    else:  # Mirage: open, then a sampled close at 0 latents
        assert segs[start:start + 2] == [Segment.OPEN, Segment.CLOSE] and lat == [] and e.num_latents == 0


def test_forced_close_at_the_cap(families):
    """Without a sampled close Monet's segment ends at K=10 latents, as the reference's does."""
    runner, model, tok, improc = families["monet"]
    proto = _protocol("monet", tok)
    image = _image("RGB")
    processor = _forcing(proto.open_id, None, None)
    trace = runner.run([_messages("monet", image)], example_ids=["cap"], max_new_tokens=MAX_NEW,
                       logits_processor=processor, progress=False)
    e = trace[0]
    ids, pv, grid, _ = _reference_prompt("monet", tok, improc, _messages("monet", image), image)
    image_run = e.positions_of(Segment.IMAGE).tolist()
    ref = run_vl_reference(model, ids, image_run, pv, grid, proto, Decoding(), processor, "cap", MAX_NEW,
                           tok.convert_tokens_to_ids("<|im_end|>"))
    assert e.input_ids.tolist() == ref.ids and e.num_latents == 10 == len(ref.latents)
    assert torch.allclose(e.z, torch.stack(ref.latents), atol=1e-5, rtol=0)
    assert e.segments[e.prompt_len + 10] == Segment.CLOSE


def test_bf16_replica_stores_bf16_traces(replica_dir):
    """A bf16 load of the Monet replica runs the same protocol; its trace keeps bf16 unless float32 is asked."""
    runner = latentprobe.load(replica_dir("monet"), "monet", dtype=torch.bfloat16)
    tok = runner.tokenizer
    processor = _forcing(tok.convert_tokens_to_ids("<abs_vis_token>"), None, None)
    prompt = [_messages("monet", _image("RGBA"))]
    e = runner.run(prompt, max_new_tokens=MAX_NEW, logits_processor=processor, progress=False)[0]
    assert runner.dtype == torch.bfloat16 and e.num_latents == 10
    assert e.z.dtype == e.hidden.dtype == e.image_embeds.dtype == torch.bfloat16
    f = runner.run(prompt, max_new_tokens=MAX_NEW, logits_processor=processor, progress=False,
                   trace_dtype=torch.float32)[0]
    assert f.z.dtype == f.hidden.dtype == torch.float32 and torch.equal(f.input_ids, e.input_ids)
