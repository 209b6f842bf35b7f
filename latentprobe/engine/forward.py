"""The one nnsight-traced forward pass: gathers residuals, norm outputs and logits, patches layers.

The KV cache is passed as ``cache=``, the argument transformers 5 keeps (``past_key_values=`` is
deprecated for Qwen2.5-VL, GPT-2 and Llama and removed in 5.40).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from nnsight import NNsight
from torch import Tensor

from latentprobe.engine.parts import ModelParts, get_path
from latentprobe.engine.patching import LayerPatch

__all__ = ["ForwardOut", "TracedForward", "new_cache"]


@dataclass(frozen=True)
class ForwardOut:
    """What one forward returns: the last position of every row, and the gathered positions."""

    h_last: Float[Tensor, "b d"]
    logits_last: Float[Tensor, "b vocab"]
    residuals: Float[Tensor, "n layers_plus_1 d"] | None = None
    h_gather: Float[Tensor, "n d"] | None = None
    logits_gather: Float[Tensor, "n vocab"] | None = None


def new_cache(model: torch.nn.Module) -> Any:
    """An empty ``DynamicCache`` for ``model``."""
    from transformers import DynamicCache

    return DynamicCache(config=model.config)


class TracedForward:
    """Runs the model under an nnsight trace over ``inputs_embeds``.

    Reads the final-norm output (a latent's source) and the logits at each row's last position;
    with ``gather=(rows, cols)`` also every residual layer (0 = input of decoder layer 0, ``i`` =
    output of decoder layer ``i-1``), the norm output and the logits at those positions. Layer
    patches rewrite decoder-layer outputs at their (rows, cols) before later layers read them.
    """

    def __init__(self, model: torch.nn.Module, parts: ModelParts) -> None:
        self.nn = NNsight(model)
        self.parts = parts

    def __call__(self, embeds: Float[Tensor, "b t d"], attn: Tensor, pos: Int[Tensor, "..."], cache: Any,
                 gather: tuple[Tensor, Tensor] | None, patches: list[LayerPatch]) -> ForwardOut:
        with torch.no_grad():
            saved = self._traced(embeds, attn, pos, cache, gather, patches)
        res = torch.stack(list(saved["res"]), dim=1) if gather is not None else None  # [n, L+1, d]
        return ForwardOut(saved["h_last"], saved["logits_last"], res, saved.get("h_gather"),
                          saved.get("logits_gather"))

    def _traced(self, embeds: Tensor, attn: Tensor, pos: Tensor, cache: Any,
                gather: tuple[Tensor, Tensor] | None, patches: list[LayerPatch]) -> dict[str, Any]:
        parts = self.parts
        n_layers = parts.n_layers
        saved: dict[str, Any] = {}
        with self.nn.trace(inputs_embeds=embeds, attention_mask=attn, position_ids=pos, cache=cache,
                           use_cache=True):
            layers = get_path(self.nn, parts.layers_path)
            res = []
            if gather is not None:
                x0 = layers[0].input
                res.append(x0[gather[0], gather[1]].clone().save())
            for i in range(n_layers):
                out = layers[i].output
                hs = out[0] if isinstance(out, tuple) else out
                for p in patches:
                    if p.layer == i + 1:
                        hs[p.rows, p.cols] = p.fn(hs[p.rows, p.cols]).to(hs.dtype)
                if gather is not None:
                    res.append(hs[gather[0], gather[1]].clone().save())
            normed = get_path(self.nn, parts.norm_path).output
            saved["h_last"] = normed[:, -1].clone().save()
            if gather is not None:
                saved["h_gather"] = normed[gather[0], gather[1]].clone().save()
            logits = self.nn.output.logits
            saved["logits_last"] = logits[:, -1].clone().save()
            if gather is not None:
                saved["logits_gather"] = logits[gather[0], gather[1]].clone().save()
            saved["res"] = res
        return saved
