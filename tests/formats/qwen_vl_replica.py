"""A Qwen2.5-VL checkpoint folder in the published layout, with a tiny random body (no hub needed).

``build_replica(folder, family)`` writes what a published Qwen2.5-VL (or Monet/LVR/Mirage) checkpoint holds:

- tokenizer files (``qwen_tokenizer.save_qwen_tokenizer``: real BPE, specials, family tokens, chat template);
- ``preprocessor_config.json`` as Qwen2.5-VL ships it (flat ``min_pixels``/``max_pixels``,
  ``image_processor_type="Qwen2VLImageProcessor"``), with the family's pixel range; without torchvision
  ``AutoImageProcessor`` loads it as ``Qwen2VLImageProcessorPil``;
- ``generation_config.json`` with Qwen2.5-VL-Instruct's shipped values;
- ``model.safetensors`` from ``save_pretrained`` of a tiny random ``Qwen2_5_VLForConditionalGeneration``
  (published key names: ``model.layers.*``, ``visual.*``), and ``config.json`` in the flat layout of the
  published configs (text keys at top level, ``rope_scaling={"type": "mrope", ...}``), which transformers 5
  converts on load, as it does for the real checkpoints.

The body is random: it proves loading, shapes, ids and preprocessing, never behaviour.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from latentprobe.seeding import torch_generator

from ._deps import FormatBuildError
from .qwen_tokenizer import (
    FAMILY_TOKENS, FIRST_SPECIAL_ID, QWEN2_5_VL_SPECIALS, TOKENIZER_FILES, save_qwen_tokenizer,
)

VOCAB_SIZE = 151936  #: Qwen2.5-VL-3B-Instruct's ``vocab_size`` (padded past the 151,665 tokenizer ids)
PATCH = 14
MERGE = 2

#: ``(min_pixels, max_pixels)`` per family. Qwen2.5-VL's shipped preprocessor_config: 3136 .. 12845056.
#: Monet: ``mm_processor_kwargs`` of its inference (``inference/load_and_gen_vllm.py:31-32``).
#: LVR: its training scripts (``scripts/finetune_lvr_stage1_7b.sh:34-35``); the evaluated checkpoint's own
#: processor config was not available. Mirage: processor defaults (``src/test.py:35`` passes none).
PIXELS: dict[str, tuple[int, int]] = {
    "qwen2_5_vl": (3136, 12845056),
    "monet": (256 * 28 * 28, 8192 * 28 * 28),
    "lvr": (128 * 28 * 28, 5120 * 28 * 28),
    "mirage": (3136, 12845056),
    "capimagine": (3136, 12845056),  # Qwen2.5-VL's own processor (its README's inference path)
}

#: Qwen2.5-VL-Instruct's shipped generation_config values (the same values ship in a Qwen2.5-VL derivative
#: read for this module; the original file itself could not be read here).
GENERATION_CONFIG = {
    "bos_token_id": 151643, "pad_token_id": 151643, "do_sample": True, "eos_token_id": [151645, 151643],
    "repetition_penalty": 1.05, "temperature": 0.1, "top_p": 0.001, "top_k": 1, "transformers_version": "4.49.0",
}

_SPECIAL_IDS = {content: FIRST_SPECIAL_ID + i for i, (content, _) in enumerate(QWEN2_5_VL_SPECIALS)}


def family_config_ids(family: str) -> dict[str, int]:
    """Extra ids a family stores in ``config.json`` (LVR: ``lvr_start_id`` ... , ``src/train/train_lvr.py:177-185``)."""
    if family != "lvr":
        return {}
    names = ("lvr_start_id", "lvr_id", "lvr_latent_end_id", "lvr_end_id")
    return {name: 151665 + i for i, name in enumerate(names)}


def published_config(hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                     vision_depth: int = 2, vision_hidden: int = 32, family: str = "qwen2_5_vl") -> dict:
    """``config.json`` in the flat layout of the published Qwen2.5-VL configs, at tiny sizes.

    ``mrope_section`` keeps the published proportions 2:3:3 ([16, 24, 24] at head_dim 128) and sums to
    head_dim / 2, as the rotary embedding requires.
    """
    head_dim = hidden // heads
    if head_dim % 16:
        raise FormatBuildError(f"replica sizes hidden={hidden}, heads={heads} give head_dim {head_dim}; choose "
                               "them so head_dim is a multiple of 16 (mrope_section [2, 3, 3] x head_dim/16 "
                               "must sum to head_dim/2)")
    unit = head_dim // 16
    return {
        "architectures": ["Qwen2_5_VLForConditionalGeneration"], "attention_dropout": 0.0,
        "bos_token_id": _SPECIAL_IDS["<|endoftext|>"], "eos_token_id": _SPECIAL_IDS["<|im_end|>"],
        "vision_start_token_id": _SPECIAL_IDS["<|vision_start|>"],
        "vision_end_token_id": _SPECIAL_IDS["<|vision_end|>"], "vision_token_id": _SPECIAL_IDS["<|vision_pad|>"],
        "image_token_id": _SPECIAL_IDS["<|image_pad|>"], "video_token_id": _SPECIAL_IDS["<|video_pad|>"],
        "hidden_act": "silu", "hidden_size": hidden, "initializer_range": 0.02, "intermediate_size": 2 * hidden,
        "max_position_embeddings": 128000, "max_window_layers": 70, "model_type": "qwen2_5_vl",
        "num_attention_heads": heads, "num_hidden_layers": layers, "num_key_value_heads": kv_heads,
        "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": True,
        "torch_dtype": "float32", "transformers_version": "4.49.0", "use_cache": True, "use_sliding_window": False,
        "vision_config": {
            "depth": vision_depth, "hidden_act": "silu", "hidden_size": vision_hidden,
            "intermediate_size": 2 * vision_hidden, "num_heads": 2, "in_chans": 3, "out_hidden_size": hidden,
            "patch_size": PATCH, "spatial_merge_size": MERGE, "spatial_patch_size": PATCH, "window_size": 112,
            "fullatt_block_indexes": [vision_depth - 1], "tokens_per_second": 2, "temporal_patch_size": 2,
        },
        "rope_scaling": {"type": "mrope", "mrope_section": [2 * unit, 3 * unit, 3 * unit]},
        "vocab_size": VOCAB_SIZE,
        **family_config_ids(family),
    }


def preprocessor_config(family: str) -> dict:
    """``preprocessor_config.json`` as Qwen2.5-VL ships it, with ``family``'s pixel range."""
    min_pixels, max_pixels = PIXELS[family]
    return {
        "min_pixels": min_pixels, "max_pixels": max_pixels, "patch_size": PATCH, "temporal_patch_size": 2,
        "merge_size": MERGE, "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711], "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": "Qwen2_5_VLProcessor",
    }


def _write_json(path: Path, content: dict) -> None:
    path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")


def build_replica(folder: str | Path, family: str = "qwen2_5_vl", seed: int = 0,
                  tokenizer_dir: str | Path | None = None, **sizes) -> Path:
    """Write a real-format Qwen2.5-VL checkpoint for ``family`` into ``folder`` and return it.

    Parameters
    ----------
    folder : created if missing; existing files of the same names are overwritten.
    family : ``"qwen2_5_vl"`` (base), ``"monet"``, ``"lvr"`` or ``"mirage"``.
    seed : weights come from ``latentprobe.seeding.torch_generator(seed, "qwen_vl_replica", family)``.
    tokenizer_dir : a folder written by ``save_qwen_tokenizer`` for the same family, copied instead of
        building the tokenizer again (``qwen_tokenizer.cached_qwen_tokenizer`` gives one per session).
    **sizes : forwarded to ``published_config`` (``hidden``, ``layers``, ``heads``, ``kv_heads``, ...).
    """
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    if family not in FAMILY_TOKENS:
        raise FormatBuildError(f"build_replica: unknown family {family!r}; choose one of {tuple(FAMILY_TOKENS)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config_dict = published_config(family=family, **sizes)
    model = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(**config_dict)).eval()
    generator = torch_generator(seed, "qwen_vl_replica", family)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if name.endswith("norm.weight") or name.endswith("norm1.weight") or name.endswith("norm2.weight") \
                    or name.endswith("ln_q.weight"):
                param.fill_(1.0)
            else:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
    model.save_pretrained(folder)
    _write_json(folder / "config.json", config_dict)
    _write_json(folder / "generation_config.json", GENERATION_CONFIG)
    _write_json(folder / "preprocessor_config.json", preprocessor_config(family))
    if tokenizer_dir is None:
        save_qwen_tokenizer(folder, family)
    else:
        for name in TOKENIZER_FILES:
            shutil.copyfile(Path(tokenizer_dir) / name, folder / name)
    return folder
