"""Locating the parts of a Hugging Face causal LM that the latent protocol touches.

The hook points are the same for every model: a latent's source is read at the output of the
final norm (what ``lm_head`` reads), and a latent is written in place of the token embedding
(``inputs_embeds``). Per-layer residuals are the decoder layers' outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from latentprobe.errors import ModelStructureError

__all__ = ["ModelParts", "locate_parts", "get_path"]

# (layers, final norm, token embedding) paths, tried in order.
_CANDIDATES: tuple[tuple[str, str, str], ...] = (
    ("model.language_model.layers", "model.language_model.norm", "model.language_model.embed_tokens"),  # Qwen2/2.5-VL, LLaVA
    ("model.layers", "model.norm", "model.embed_tokens"),  # Llama, Qwen2, Mistral
    ("transformer.h", "transformer.ln_f", "transformer.wte"),  # GPT-2
    ("gpt_neox.layers", "gpt_neox.final_layer_norm", "gpt_neox.embed_in"),  # Pythia
    ("model.decoder.layers", "model.decoder.final_layer_norm", "model.decoder.embed_tokens"),  # OPT
)


def get_path(root: object, path: str) -> Any:
    """The attribute at dotted ``path`` below ``root`` (a module, or nnsight's envoy of one); ``None`` if absent.

    Parameters
    ----------
    root : Any
        A module or an nnsight envoy.
    path : str
        Dotted attribute path.

    Returns
    -------
    object or None
    """
    obj: Any = root
    for part in path.split("."):
        if not hasattr(obj, part):
            return None
        obj = getattr(obj, part)
    return obj


@dataclass
class ModelParts:
    """Paths (dotted, from the model root) and modules the runner needs.

    Parameters
    ----------
    model : nn.Module
        The Hugging Face model.
    layers_path : str
        Dotted path of the decoder layers.
    norm_path : str
        Of the final norm.
    embed_path : str
        Of the token embedding.
    lm_head_path : str
        Of the LM head.
    is_vlm : bool
        Whether the model has a vision tower.
    """

    model: nn.Module
    layers_path: str
    norm_path: str
    embed_path: str
    lm_head_path: str
    is_vlm: bool

    @property
    def layers(self) -> nn.ModuleList:
        return get_path(self.model, self.layers_path)

    @property
    def norm(self) -> nn.Module:
        return get_path(self.model, self.norm_path)

    @property
    def embed(self) -> nn.Module:
        return get_path(self.model, self.embed_path)

    @property
    def lm_head(self) -> nn.Module:
        return get_path(self.model, self.lm_head_path)

    @property
    def input_device(self) -> torch.device:
        """Where input embeddings, masks and positions go: the token embedding's device (under a
        ``device_map`` the model's first parameter may live elsewhere)."""
        return self.embed.weight.device

    @property
    def dtype(self) -> torch.dtype:
        """The model's compute dtype, read from the token embedding."""
        return self.embed.weight.dtype

    @property
    def vision_device_dtype(self) -> tuple[torch.device, torch.dtype]:
        """Device and dtype of the vision tower's first parameter (where pixel values go)."""
        visual = getattr(getattr(self.model, "model", None), "visual", None)
        p = next(visual.parameters()) if visual is not None else self.embed.weight
        return p.device, p.dtype

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def hidden_size(self) -> int:
        return int(self.embed.weight.shape[1])

    @property
    def vocab_size(self) -> int:
        return int(self.lm_head.weight.shape[0])

    def image_features(self, pixel_values: torch.Tensor, image_grid_thw: torch.Tensor) -> torch.Tensor:
        """Merged vision-tower features, one row per image placeholder token (all images concatenated).

        Parameters
        ----------
        pixel_values : torch.Tensor
            The processor's pixel values.
        image_grid_thw : torch.Tensor
            ``[n, 3]`` image grids.

        Returns
        -------
        Tensor
            ``[tokens, d]`` features.
        """
        feats = self.model.model.get_image_features(pixel_values, image_grid_thw, return_dict=True).pooler_output
        return torch.cat(list(feats), dim=0)

    def rope_index(self, input_ids: torch.Tensor, mm_token_type_ids: torch.Tensor,
                   image_grid_thw: torch.Tensor | None, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """3-D rotary positions (3, B, T) and per-row deltas (B, 1) of a Qwen2-VL-style model.

        Parameters
        ----------
        input_ids : torch.Tensor
            ``[B, T]`` ids.
        mm_token_type_ids : torch.Tensor
            ``[B, T]`` modality of each token (1: image).
        image_grid_thw : torch.Tensor | None
            ``[n, 3]`` image grids, or ``None``.
        attention_mask : torch.Tensor
            ``[B, T]`` padding mask.

        Returns
        -------
        tuple[Tensor, Tensor]
            Positions ``[3, B, T]`` and deltas ``[B, 1]``.
        """
        return self.model.model.get_rope_index(
            input_ids, mm_token_type_ids=mm_token_type_ids, image_grid_thw=image_grid_thw,
            attention_mask=attention_mask,
        )

    @property
    def image_token_id(self) -> int | None:
        return getattr(self.model.config, "image_token_id", None)

    @property
    def merge_size(self) -> int:
        return int(self.model.config.vision_config.spatial_merge_size)


def locate_parts(model: nn.Module, *, layers: str | None = None, norm: str | None = None,
                 embed: str | None = None, lm_head: str = "lm_head") -> ModelParts:
    """Find the decoder layers, final norm, token embedding and LM head of ``model``.

    Pass dotted paths to override the search for an architecture it does not know.

    Parameters
    ----------
    model : nn.Module
        The Hugging Face model.
    layers : str | None
        Dotted path of the decoder layers (default: found).
    norm : str | None
        Of the final norm (default: found).
    embed : str | None
        Of the token embedding (default: found).
    lm_head : str
        Of the LM head.

    Returns
    -------
    ModelParts

    Raises
    ------
    ModelStructureError
        If a part cannot be found; the message lists the paths that were tried.
    """
    if not isinstance(model, nn.Module):
        raise ModelStructureError(f"expected a torch.nn.Module (a Hugging Face causal LM), got {type(model).__name__}.")
    found = None
    if layers and norm and embed:
        found = (layers, norm, embed)
    else:
        for cand in _CANDIDATES:
            if all(isinstance(get_path(model, p), nn.Module) for p in cand):
                found = (layers or cand[0], norm or cand[1], embed or cand[2])
                break
    if found is None:
        tried = "; ".join(", ".join(c) for c in _CANDIDATES)
        raise ModelStructureError(
            f"could not locate decoder layers / final norm / token embedding in {type(model).__name__}. "
            f"Tried: {tried}. Pass layers=, norm= and embed= (dotted module paths) to the runner."
        )
    lp, np_, ep = found
    if not isinstance(get_path(model, lp), nn.ModuleList) or len(get_path(model, lp)) == 0:
        raise ModelStructureError(f"{type(model).__name__}.{lp} is not a non-empty ModuleList of decoder layers.")
    for what, p in (("final norm", np_), ("token embedding", ep), ("LM head", lm_head)):
        if not isinstance(get_path(model, p), nn.Module):
            raise ModelStructureError(f"{type(model).__name__} has no module at {p!r} ({what}); pass its dotted path.")
    is_vlm = hasattr(getattr(model, "model", None), "get_rope_index") and hasattr(model.config, "vision_config")
    return ModelParts(model=model, layers_path=lp, norm_path=np_, embed_path=ep, lm_head_path=lm_head, is_vlm=is_vlm)
