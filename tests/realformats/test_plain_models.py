"""The ``plain`` preset (no latent protocol) on SmolLM2-135M-Instruct's real weights and on a real-format Qwen2.5-VL
replica, against transformers' own greedy ``generate``: the same tokens, the first K generated tokens recorded as
the span (their embeddings as ``z``, the final-norm output that chose each one as ``h_src``), the answer the whole
generated text."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import Qwen2_5_VLForConditionalGeneration

import latentprobe
from latentprobe import LatentRunner, get_preset
from latentprobe.seeding import numpy_rng

pytestmark = pytest.mark.slow

K = 6
MAX_NEW = 16


def _check(e, prompt_ids, generated, model, tokenizer, final_h):
    eos = {tokenizer.eos_token_id}
    if generated and generated[-1] in eos:
        generated = generated[:-1]
    assert e.input_ids.tolist() == prompt_ids + generated
    p0 = len(prompt_ids)
    k = min(K, len(generated))
    assert e.latent_positions.tolist() == list(range(p0, p0 + k))
    emb = model.get_input_embeddings().weight[e.input_ids[p0:p0 + k]].detach()
    assert torch.allclose(e.z.float(), emb, atol=1e-6, rtol=0)
    # h_src[k]: the output (after the final norm) at the position before span token k, the one that chose it
    assert torch.allclose(e.h_src.float(), final_h[p0 - 1:p0 - 1 + k], atol=2e-4, rtol=1e-4)
    assert e.answer_ids.tolist() == generated
    assert e.answer_text == tokenizer.decode(generated, skip_special_tokens=True).strip()


def test_plain_runs_smollm2_like_generate(smollm2):
    model, tok = smollm2.model, smollm2.tokenizer
    runner = LatentRunner(model, tok, get_preset("plain", num_latents=K))
    messages = [[{"role": "user", "content": "What is the capital of France? Think step by step."}],
                [{"role": "user", "content": "Name a colour of the sky. Explain briefly."}]]
    trace = runner.run(messages, max_new_tokens=MAX_NEW, progress=False)
    for e, m in zip(trace, messages):
        ids = tok(tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True), add_special_tokens=False).input_ids
        inp = torch.tensor([ids])
        with torch.no_grad():
            out = model.generate(inp, attention_mask=torch.ones_like(inp), max_new_tokens=MAX_NEW, do_sample=False,
                                 temperature=None, top_p=None, top_k=None)[0].tolist()
            full = torch.tensor([e.input_ids.tolist()])
            final_h = model(full, output_hidden_states=True).hidden_states[-1][0].float()
        assert len(out) > len(ids) + K  # a text chain of thought longer than the span
        _check(e, ids, out[len(ids):], model, tok, final_h)


def test_plain_runs_a_qwen2_5_vl_replica_like_generate(replica_dir):
    from transformers import AutoImageProcessor, AutoTokenizer

    from reference_images import fetch_image

    folder = replica_dir("qwen2_5_vl")
    assert latentprobe.load(folder, "plain").spec.num_latents == 10  # the preset by name, on a base checkpoint
    runner = latentprobe.load(folder, get_preset("plain", num_latents=K))
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
    tok, improc = AutoTokenizer.from_pretrained(folder), AutoImageProcessor.from_pretrained(folder)
    pixels = numpy_rng(3, "plain_image").integers(0, 256, (84, 112, 3), dtype=np.uint8)
    image = Image.fromarray(pixels, mode="RGB")
    messages = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "Describe it."}]}]
    trace = runner.run([messages], max_new_tokens=MAX_NEW, progress=False)
    e = trace[0]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    vision = improc(images=[fetch_image(image)], return_tensors="pt")
    n = int(vision["image_grid_thw"].prod()) // 4
    ids = tok(text.replace("<|image_pad|>", "<|image_pad|>" * n), add_special_tokens=False).input_ids
    inp = torch.tensor([ids])
    kw = dict(pixel_values=vision["pixel_values"], image_grid_thw=vision["image_grid_thw"],
              mm_token_type_ids=(inp == model.config.image_token_id).long())
    with torch.no_grad():
        out = model.generate(input_ids=inp, attention_mask=torch.ones_like(inp), max_new_tokens=MAX_NEW,
                             do_sample=False, repetition_penalty=1.0, temperature=None, top_p=None, top_k=None,
                             eos_token_id=[tok.eos_token_id], pad_token_id=151643, **kw)[0].tolist()
        full = torch.tensor([e.input_ids.tolist()])
        final_h = model(input_ids=full, attention_mask=torch.ones_like(full), output_hidden_states=True,
                        **{**kw, "mm_token_type_ids": (full == model.config.image_token_id).long()}
                        ).hidden_states[-1][0].float()
    _check(e, ids, out[len(ids):], model, tok, final_h)
