"""Replica Qwen2.5-VL checkpoints load offline through the standard transformers entry points and run."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from transformers import AutoImageProcessor, AutoTokenizer, Qwen2_5_VLForConditionalGeneration

from latentprobe.seeding import numpy_rng

from ._deps import FormatBuildError
from .qwen_tokenizer import FAMILY_TOKENS, cached_qwen_tokenizer
from .qwen_vl_replica import PIXELS, build_replica

FILES = ["chat_template.json", "config.json", "generation_config.json", "model.safetensors",
         "preprocessor_config.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]


def _image(mode: str, size=(97, 131)) -> Image.Image:
    pixels = numpy_rng(0, "replica_image", mode).integers(0, 256, (size[1], size[0], 4), dtype=np.uint8)
    return Image.fromarray(pixels, mode="RGBA").convert(mode)


def test_offline():
    assert os.environ.get("HF_HUB_OFFLINE") == "1"


@pytest.mark.parametrize("family", list(FAMILY_TOKENS))
def test_replica_reloads_with_published_layout(replica_dir, family):
    folder = replica_dir(family)
    assert sorted(p.name for p in folder.iterdir()) == FILES
    model, info = Qwen2_5_VLForConditionalGeneration.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    with safe_open(str(folder / "model.safetensors"), "pt") as f:  # the published key names
        keys = set(f.keys())
    assert {"model.embed_tokens.weight", "visual.patch_embed.proj.weight", "model.norm.weight"} <= keys
    text = model.config.text_config
    head_dim = text.hidden_size // text.num_attention_heads
    assert 64 <= text.hidden_size <= 128 and text.num_hidden_layers == 2 and model.config.vision_config.depth == 2
    assert sum(text.rope_parameters["mrope_section"]) == head_dim // 2
    tok = AutoTokenizer.from_pretrained(folder)
    last = 151664 + len(FAMILY_TOKENS[family])
    assert len(tok) == last + 1 and text.vocab_size > last
    assert tok.convert_ids_to_tokens(last) == (FAMILY_TOKENS[family] or ("<|file_sep|>",))[-1]
    assert (model.config.image_token_id, model.config.vision_start_token_id) == (151655, 151652)
    assert model.generation_config.eos_token_id == [151645, 151643]
    if family == "lvr":
        assert (model.config.lvr_start_id, model.config.lvr_end_id) == (151665, 151668)


@pytest.mark.parametrize("family", list(FAMILY_TOKENS))
def test_image_processor_is_pil_with_family_pixels(replica_dir, family):
    folder = replica_dir(family)
    processor = AutoImageProcessor.from_pretrained(folder)
    assert type(processor).__name__ == "Qwen2VLImageProcessorPil"
    assert (processor.size.shortest_edge, processor.size.longest_edge) == PIXELS[family]
    shipped = json.loads((folder / "preprocessor_config.json").read_text())
    assert shipped["image_processor_type"] == "Qwen2VLImageProcessor" and "size" not in shipped


@pytest.fixture(scope="module")
def monet(replica_dir):
    folder = replica_dir("monet")
    return (AutoImageProcessor.from_pretrained(folder), AutoTokenizer.from_pretrained(folder),
            Qwen2_5_VLForConditionalGeneration.from_pretrained(folder).eval())


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_odd_sized_images_preprocess_and_run_one_forward(monet, mode):
    processor, tok, model = monet
    image = _image(mode)
    assert image.size == (97, 131) and image.mode == mode
    vision = processor(images=[image], return_tensors="pt")
    grid = vision["image_grid_thw"]
    assert grid.shape == (1, 3) and grid[0, 0] == 1
    n_patches = int(grid.prod())
    assert vision["pixel_values"].shape == (n_patches, 3 * 2 * 14 * 14)
    pixels = int(grid[0, 1] * grid[0, 2]) * 14 * 14
    assert PIXELS["monet"][0] <= pixels <= PIXELS["monet"][1]  # upscaled into Monet's published range
    messages = [{"role": "user", "content": [{"type": "text", "text": "What is shown?"}, {"type": "image"}]}]
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    n_image_tokens = n_patches // 4
    ids = tok(prompt.replace("<|image_pad|>", "<|image_pad|>" * n_image_tokens), return_tensors="pt").input_ids
    mm_token_type_ids = (ids == model.config.image_token_id).long()
    assert int(mm_token_type_ids.sum()) == n_image_tokens
    with torch.no_grad():
        out = model(input_ids=ids, pixel_values=vision["pixel_values"], image_grid_thw=grid,
                    mm_token_type_ids=mm_token_type_ids, attention_mask=torch.ones_like(ids))
    assert out.logits.shape == (1, ids.shape[1], model.config.text_config.vocab_size)
    assert torch.isfinite(out.logits).all()


def test_same_seed_same_weights_and_unknown_family(tmp_path, replica_dir, qwen_tokenizer_dir):
    folder = replica_dir("qwen2_5_vl")
    again = build_replica(tmp_path / "again", "qwen2_5_vl",
                          tokenizer_dir=cached_qwen_tokenizer(qwen_tokenizer_dir, "qwen2_5_vl"))
    first, second = (str(f / "model.safetensors") for f in (folder, again))
    with safe_open(first, "pt") as a, safe_open(second, "pt") as b:
        assert all(torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in a.keys())
    with pytest.raises(FormatBuildError, match="unknown family 'coconut'"):
        build_replica(tmp_path / "bad", "coconut")
    with pytest.raises(FormatBuildError, match="head_dim"):
        build_replica(tmp_path / "bad", "mirage", hidden=96, heads=4)
