"""latentprobe.load on checkpoint folders (offline), CODI's official layout, Coconut's format."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

import latentprobe  # noqa: E402
from checkpoints import (OfficialCodi, save_coconut_checkpoint, save_codi_checkpoint, save_gpt2_base,  # noqa: E402
                         save_vl_checkpoint)
from latentprobe.engine import coconut_prompt, load_coconut, load_codi  # noqa: E402
from latentprobe.errors import ModelStructureError, SpecError, SpecTokenError  # noqa: E402

import peft  # noqa: E402,F401  (the codi extra is part of the test install: a missing peft must fail)

Q = "what colour is the circle ?"


@pytest.fixture(scope="module")
def vl_folder(tmp_path_factory):
    return save_vl_checkpoint(tmp_path_factory.mktemp("vl") / "ckpt")


@pytest.fixture(scope="module")
def gpt2_base(tmp_path_factory):
    return save_gpt2_base(tmp_path_factory.mktemp("gpt2") / "base")


def _img(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_load_brings_tokenizer_processor_template_and_convention(vl_folder, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = latentprobe.load(vl_folder, "mirage")
    assert type(r.image_processor).__name__ == "Qwen2VLImageProcessorPil"
    assert r.tokenizer.chat_template is not None
    assert r.prompt_convention.suffix == "<|im_start|>assistant" and not r.prompt_convention.add_generation_prompt
    monet = latentprobe.load(vl_folder, "monet", dtype=torch.bfloat16)
    assert monet.dtype == torch.bfloat16
    size = monet.image_processor.size
    assert (size["shortest_edge"], size["longest_edge"]) == (256 * 28 * 28, 8192 * 28 * 28)


def test_missing_spec_tokens_are_named(vl_folder):
    spec = latentprobe.get_preset("mirage").replace(name="other", open_token="<|think|>")
    with pytest.raises(SpecTokenError, match=r"open_token='<\|think\|>'.*add_tokens"):
        latentprobe.load(vl_folder, spec)
    with pytest.raises(SpecError, match="load_codi"):
        latentprobe.load(vl_folder, "codi")


def test_chat_messages_follow_the_family_convention(vl_folder):
    r = latentprobe.load(vl_folder, "mirage")
    img = _img((90, 130, 4))
    msgs = [{"role": "user", "content": [{"type": "image", "image": img}, {"type": "text", "text": Q}]}]
    tr = r.run([msgs], max_new_tokens=6, progress=False)
    text = r.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=False) + "<|im_start|>assistant"
    same = r.run([text], [img], max_new_tokens=6, progress=False)
    assert torch.equal(tr[0].input_ids, same[0].input_ids) and torch.equal(tr[0].z, same[0].z)
    assert r.tokenizer.decode(tr[0].input_ids[tr[0].prompt_len - 2:tr[0].prompt_len]) == "<|im_start|> assistant"
    lvr = latentprobe.load(vl_folder, "lvr")
    t2 = lvr.run([msgs], max_new_tokens=4, progress=False)
    assert lvr.tokenizer.decode(t2[0].input_ids[t2[0].prompt_len - 3:t2[0].prompt_len]) == \
        "<|im_end|> <|im_start|> assistant"


def test_images_of_any_size_and_mode_several_per_prompt(vl_folder):
    from PIL import Image

    r = latentprobe.load(vl_folder, "mirage")
    imgs = [_img((90, 130, 4), 1), _img((60, 60), 2), Image.fromarray(_img((57, 113, 3), 3))]
    prompt = " ".join(["<|vision_start|> <|image_pad|> <|vision_end|>"] * 3) + f" {Q}"
    tr = r.run([prompt], [imgs], max_new_tokens=4, progress=False)
    e = tr[0]
    grid = e.image_grid_thw
    assert grid.shape == (3, 3)
    n_tokens = int((grid.prod(-1) // 4).sum())
    assert int((e.input_ids == r.parts.image_token_id).sum()) == n_tokens == e.image_embeds.shape[0]
    assert e.image_embeds.dtype == torch.float32


def test_pre_expanded_image_tokens_are_accepted(vl_folder):
    r = latentprobe.load(vl_folder, "mirage")
    img = _img((112, 112, 3))
    one = r.run([f"<|vision_start|> <|image_pad|> <|vision_end|> {Q}"], [img], max_new_tokens=6, progress=False)
    run16 = " ".join(["<|image_pad|>"] * 16)
    pre = r.run([f"<|vision_start|> {run16} <|vision_end|> {Q}"], [img], max_new_tokens=6, progress=False)
    assert torch.equal(one[0].input_ids, pre[0].input_ids) and torch.equal(one[0].z, pre[0].z)
    with pytest.raises(latentprobe.ImageBatchError, match="run of 5 image tokens"):
        r.run([f"<|vision_start|> {' '.join(['<|image_pad|>'] * 5)} <|vision_end|> {Q}"], [img], progress=False)


def test_video_is_refused_with_a_typed_error(vl_folder):
    from latentprobe.engine import VideoNotSupportedError

    r = latentprobe.load(vl_folder, "mirage")
    with pytest.raises(VideoNotSupportedError, match="video input is not supported yet"):
        r.run([f"<|vision_start|> <|video_pad|> <|vision_end|> {Q}"], progress=False)
    msgs = [{"role": "user", "content": [{"type": "video", "video": "clip.mp4"}, {"type": "text", "text": Q}]}]
    with pytest.raises(VideoNotSupportedError, match="message 0, part 0"):
        r.run([msgs], progress=False)
    assert issubclass(VideoNotSupportedError, latentprobe.LatentProbeError)


# ----------------------------------------------------------------------------- CODI


def _hand_codi(official: OfficialCodi, ids: list[int], k: int, max_answer: int, eos: int):
    """CODI's test.py loop, written out: prompt + <bot>, k projected latents, <eot>, greedy over logits[:, :-1]."""
    from transformers import DynamicCache

    from latentprobe.engine.forward import cache_kwarg

    m = official.codi
    embed = m.get_input_embeddings()
    cache = DynamicCache(config=m.config)
    kv = {cache_kwarg(m): cache}
    with torch.no_grad():
        out = m(input_ids=torch.tensor([ids + [official.bot_id]]), use_cache=True, **kv,
                output_hidden_states=True)
        latent = official.prj(out.hidden_states[-1][:, -1])
        zs = []
        for _ in range(k):
            zs.append(latent[0])
            out = m(inputs_embeds=latent[:, None], use_cache=True, **kv, output_hidden_states=True)
            latent = official.prj(out.hidden_states[-1][:, -1])
        out = m(inputs_embeds=embed(torch.tensor([[official.eot_id]])), use_cache=True, **kv)
        answer = []
        for _ in range(max_answer):
            tok = int(out.logits[0, -1, :m.config.vocab_size - 1].argmax())
            if tok == eos:
                break
            answer.append(tok)
            out = m(input_ids=torch.tensor([[tok]]), use_cache=True, **kv)
    return torch.stack(zs), answer


@pytest.mark.parametrize("safetensors", [False, True])
def test_codi_official_layout_reproduces_the_hand_loop(gpt2_base, tmp_path, safetensors):
    official = save_codi_checkpoint(tmp_path / "codi", gpt2_base, r=8, safetensors=safetensors)
    r = load_codi(tmp_path / "codi", gpt2_base, lora_r=8)
    eot = official.eot_id

    def no_eot(ids, logits, index):  # test.py reads logits[:, :vocab-1]: eot is never chosen
        logits = logits.clone()
        logits[eot] = float("-inf")
        return logits

    questions = ["what is the red circle ?", "one two three four"]
    tr = r.run(questions, max_new_tokens=6 + 1 + 8, logits_processor=no_eot, progress=False)
    for q, e in zip(questions, tr):
        ids = r.tokenizer(q, add_special_tokens=False)["input_ids"]
        zs, answer = _hand_codi(official, ids, 6, 8, r.tokenizer.eos_token_id)
        assert e.num_latents == 6
        torch.testing.assert_close(e.z, zs, atol=1e-5, rtol=1e-5)
        assert e.answer_ids.tolist() == answer
    assert r.tokenizer.convert_tokens_to_ids(["<bot>", "<eot>"]) == [official.bot_id, official.eot_id]


def test_codi_bf16_with_its_projection_runs(gpt2_base, tmp_path):
    save_codi_checkpoint(tmp_path / "codi", gpt2_base, r=8)
    r = load_codi(tmp_path / "codi", gpt2_base, lora_r=8, dtype=torch.bfloat16)
    assert r.projection.prj[1].weight.dtype == torch.bfloat16
    tr = r.run(["what is the red circle ?"], max_new_tokens=10, progress=False)
    assert tr[0].num_latents == 6 and tr[0].z.dtype == torch.bfloat16
    # fp32 hidden states into a bf16 projection: cast in, cast back
    assert r.projection(torch.zeros(3, r.hidden_size)).dtype == torch.float32


def test_codi_wrong_layout_is_refused(gpt2_base, tmp_path):
    torch.save({"fc1.weight": torch.zeros(2, 2)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(ModelStructureError, match="official layout"):
        load_codi(tmp_path, gpt2_base, lora_r=8)
    save_codi_checkpoint(tmp_path / "codi", gpt2_base, r=8)
    with pytest.raises(ModelStructureError, match="lora_r"):
        load_codi(tmp_path / "codi", gpt2_base, lora_r=16)


# ----------------------------------------------------------------------------- Coconut


def test_coconut_published_format_loads(gpt2_base, tmp_path):
    ref = save_coconut_checkpoint(tmp_path / "checkpoint_15", gpt2_base)
    r = load_coconut(tmp_path / "checkpoint_15", gpt2_base)
    for (name, a), b in zip(ref.state_dict().items(), r.model.state_dict().values()):
        assert torch.equal(a, b), name
    V = len(r.tokenizer) - 3
    assert r.tokenizer.convert_tokens_to_ids(["<|start-latent|>", "<|end-latent|>", "<|latent|>"]) == [V, V + 1, V + 2]
    ids = coconut_prompt(r.tokenizer, "what is the red circle ?")
    assert ids[-8:] == [V] + [V + 2] * 6 + [V + 1]
    tr = r.run([ids], max_new_tokens=8, progress=False)
    assert tr[0].num_latents == 6
    # the latents are the last hidden states of the previous positions (Coconut's offset 1)
    with torch.no_grad():
        out = ref(input_ids=torch.tensor([ids[:-7]]), output_hidden_states=True)
    torch.testing.assert_close(tr[0].z[0], out.hidden_states[-1][0, -1], atol=1e-5, rtol=1e-5)


def test_prompt_conventions_come_from_the_presets():
    # one source: load applies each preset's published prompt conventions
    from latentprobe.engine.loading import FAMILY_CONVENTIONS, convention_for
    from latentprobe.presets import get_preset

    monet = convention_for(get_preset("monet"))
    assert monet.add_generation_prompt and monet.image_prefix == "<image>\n"
    assert (monet.min_pixels, monet.max_pixels) == (256 * 28 * 28, 8192 * 28 * 28)
    mirage = convention_for(get_preset("mirage"))
    assert not mirage.add_generation_prompt and mirage.suffix == "<|im_start|>assistant" and mirage.image_prefix == ""
    lvr = convention_for(get_preset("lvr"))
    assert lvr.add_generation_prompt and lvr.suffix == "" and lvr.min_pixels is None
    assert FAMILY_CONVENTIONS == {"monet": monet, "lvr": lvr, "mirage": mirage}
    assert get_preset("toy").prompt is None and convention_for(get_preset("toy")) is None
