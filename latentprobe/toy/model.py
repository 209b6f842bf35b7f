"""Tiny Qwen2.5-VL-architecture models with planted causal graphs.

The variants differ only in which causal edges exist, enforced by attention-mask rules over
segment codes (see :mod:`latentprobe.engine.masks`). The prompt is ``question <|vision_start|> <|image_pad|>``
(the question comes first, so no prompt text position sees the image), then the model emits
``<|latent_start|>``, K latents, ``<|latent_end|>`` (forced), the one-word answer and ``<eos>``.

=========  ============================================================  ============================
variant    rule                                                          known truth
=========  ============================================================  ============================
mediated   latents, close and answer cannot attend to image or open      all visual information
           (the open position is the only reader of the image: z_1 =     reaches Y through Z
           h(open) carries it, later latents are computed from z)
bypass     close and answer cannot attend to latents                     Z -> Y effect exactly zero
blind      open and latents cannot attend to the image                   X -> Z effect exactly zero
free       ordinary causal attention, like the real models               unknown (the interesting case)
text       writes a caption span instead of latents; close and answer    the answer sees the image only
           cannot attend to the image or open (they read the question    through the caption positions
           and the caption span)
=========  ============================================================  ============================
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from latentprobe.spec import LatentSpec
from latentprobe.presets import get_preset
from latentprobe.trace import Segment
from latentprobe.errors import InputError

__all__ = ["VARIANTS", "LATENT_VARIANTS", "mask_rule", "toy_spec", "toy_config", "build_model", "prompt_for",
           "TOY_TEXT_SPEC"]

VARIANTS: tuple[str, ...] = ("mediated", "bypass", "blind", "free", "text")
LATENT_VARIANTS: tuple[str, ...] = ("mediated", "bypass", "blind", "free")

S = Segment


def _isin(x: Tensor, codes: tuple[int, ...]) -> Tensor:
    return torch.isin(x, torch.tensor(codes, dtype=x.dtype, device=x.device))


def mediated_rule(seg_q: Int[Tensor, "b q"], seg_k: Int[Tensor, "b k"]) -> Bool[Tensor, "b q k"]:
    """Latents, close and answer never attend to the image or the open marker."""
    q = _isin(seg_q, (S.LATENT, S.CLOSE, S.GEN))[:, :, None]
    k = _isin(seg_k, (S.IMAGE, S.OPEN))[:, None, :]
    return ~(q & k)


def bypass_rule(seg_q: Int[Tensor, "b q"], seg_k: Int[Tensor, "b k"]) -> Bool[Tensor, "b q k"]:
    """Close and answer never attend to the latents."""
    q = _isin(seg_q, (S.CLOSE, S.GEN))[:, :, None]
    k = _isin(seg_k, (S.LATENT,))[:, None, :]
    return ~(q & k)


def blind_rule(seg_q: Int[Tensor, "b q"], seg_k: Int[Tensor, "b k"]) -> Bool[Tensor, "b q k"]:
    """The open marker and the latents never attend to the image."""
    q = _isin(seg_q, (S.OPEN, S.LATENT))[:, :, None]
    k = _isin(seg_k, (S.IMAGE,))[:, None, :]
    return ~(q & k)


def text_rule(seg_q: Int[Tensor, "b q"], seg_k: Int[Tensor, "b k"]) -> Bool[Tensor, "b q k"]:
    """Close and answer never attend to the image or the open marker: they read the caption span."""
    q = _isin(seg_q, (S.CLOSE, S.GEN))[:, :, None]
    k = _isin(seg_k, (S.IMAGE, S.OPEN))[:, None, :]
    return ~(q & k)


_RULES = {"mediated": mediated_rule, "bypass": bypass_rule, "blind": blind_rule, "free": None, "text": text_rule}


def mask_rule(variant: str):
    """The attention rule of a variant (``None``: ordinary causal attention).

    Parameters
    ----------
    variant : str
        One of :data:`~latentprobe.toy.VARIANTS`.

    Returns
    -------
    MaskRule or None
    """
    if variant not in _RULES:
        raise InputError(f"unknown toy variant {variant!r}; choose one of {', '.join(VARIANTS)}.")
    return _RULES[variant]


TOY_TEXT_SPEC = get_preset("toy-text")


def toy_spec(variant: str) -> LatentSpec:
    """The LatentSpec a variant runs with (``toy`` for latent variants, ``toy-text`` for ``text``).

    Parameters
    ----------
    variant : str
        One of :data:`~latentprobe.toy.VARIANTS`.

    Returns
    -------
    LatentSpec
    """
    mask_rule(variant)
    return get_preset("toy-text" if variant == "text" else "toy")


def prompt_for(question: str) -> str:
    """The toy prompt: the question first, then the image (so no prompt text sees the image).

    Parameters
    ----------
    question : str
        The question.

    Returns
    -------
    str
    """
    return f"{question} <|vision_start|> <|image_pad|>"


def toy_config(vocab: dict[str, int], *, hidden: int = 128, layers: int = 4, heads: int = 4, kv_heads: int = 2,
               vision_depth: int = 2, vision_width: int = 64) -> Any:
    """A small ``Qwen2_5_VLConfig`` (hidden 128, 4 layers, 2-layer vision tower of width 64).

    Parameters
    ----------
    vocab : dict[str, int]
        The tokenizer's vocabulary.
    hidden : int
        Hidden size.
    layers : int
        Decoder layers.
    heads : int
        Attention heads.
    kv_heads : int
        Key-value heads.
    vision_depth : int
        Vision tower layers.
    vision_width : int
        Vision tower width.

    Returns
    -------
    Qwen2_5_VLConfig
    """
    from transformers import Qwen2_5_VLConfig

    head_dim = hidden // heads
    half = head_dim // 2
    t = half // 4
    mrope = [t, (half - t) // 2, half - t - (half - t) // 2]
    cfg = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope},
                         max_position_embeddings=256, bos_token_id=None, eos_token_id=vocab["<eos>"],
                         pad_token_id=vocab["<pad>"], tie_word_embeddings=True),
        vision_config=dict(depth=vision_depth, hidden_size=vision_width, intermediate_size=2 * vision_width,
                           num_heads=2, out_hidden_size=hidden, patch_size=14, spatial_merge_size=2,
                           temporal_patch_size=2, in_channels=3, window_size=112,
                           fullatt_block_indexes=list(range(vision_depth))),
        image_token_id=vocab["<|image_pad|>"], video_token_id=vocab["<unk>"],
        vision_start_token_id=vocab["<|vision_start|>"], vision_end_token_id=vocab["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    cfg.architectures = ["Qwen2_5_VLForConditionalGeneration"]
    return cfg


def build_model(vocab: dict[str, int], *, seed: int = 0, **kwargs: Any):
    """A randomly initialised toy model (the trainer's starting point; also a random-weights control).

    Parameters
    ----------
    vocab : dict[str, int]
        The tokenizer's vocabulary.
    seed : int
        Seed of the initialisation.

    Returns
    -------
    Qwen2_5_VLForConditionalGeneration
    """
    from transformers import Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(toy_config(vocab, **kwargs))
    return model.float().eval()
