"""The one nnsight-traced forward pass: gathers residuals, norm outputs and logits, patches layers.

The KV cache is passed through the argument the installed transformers declares (:func:`cache_kwarg`):
``cache=`` from transformers 5.24 on (``past_key_values=`` is deprecated there and removed in 5.40),
``past_key_values=`` before, where an unknown ``cache=`` would be swallowed by ``**kwargs`` and the
model would silently run without its cache.

Devices: under a ``device_map`` the decoder layers, the final norm and ``lm_head`` may live on
different devices, so every index and patch tensor is moved to the device of the tensor it
indexes, at the point it indexes it (:func:`at`). Memory: logits are computed only at the last
position and at the positions asked for (``logits_at``), through the model's ``logits_to_keep``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from jaxtyping import Float, Int
from nnsight import NNsight
from torch import Tensor

from latentprobe.engine.parts import ModelParts, get_path
from latentprobe.engine.patching import LayerPatch
from latentprobe.errors import ModelStructureError

__all__ = ["ForwardOut", "TracedForward", "new_cache", "at", "cache_kwarg"]


@dataclass(frozen=True)
class ForwardOut:
    """What one forward returns: the last position of every row, and the gathered positions.

    ``residuals`` hold the gathered positions' residual layers (all ``L + 1``, or those asked for);
    ``logits_gather`` the logits at the ``logits_at`` positions, in their order.

    Parameters
    ----------
    h_last : Float[Tensor, "b d"]
        Final-norm output at every row's last position.
    logits_last : Float[Tensor, "b vocab"] | None
        Log-probabilities there, if read.
    residuals : Float[Tensor, "n layers d"] | None
        Residual layers at the gathered positions.
    h_gather : Float[Tensor, "n d"] | None
        Final-norm outputs at the gathered positions.
    logits_gather : Float[Tensor, "m vocab"] | None
        Log-probabilities at the positions read.
    """

    h_last: Float[Tensor, "b d"]
    logits_last: Float[Tensor, "b vocab"] | None  # None when the forward was asked for no logits
    residuals: Float[Tensor, "n layers d"] | None = None
    h_gather: Float[Tensor, "n d"] | None = None
    logits_gather: Float[Tensor, "m vocab"] | None = None


def new_cache(model: torch.nn.Module) -> Any:
    """An empty ``DynamicCache`` for ``model``.

    Parameters
    ----------
    model : torch.nn.Module
        The Hugging Face model.

    Returns
    -------
    DynamicCache
    """
    from transformers import DynamicCache

    return DynamicCache(config=model.config)


def cache_kwarg(model: torch.nn.Module) -> str:
    """The keyword ``model.forward`` takes its KV cache by: ``"cache"`` or ``"past_key_values"``.

    Parameters
    ----------
    model : torch.nn.Module
        The Hugging Face model.

    Returns
    -------
    str
    """
    params = inspect.signature(model.forward).parameters
    if "cache" in params:
        return "cache"
    if "past_key_values" in params:
        return "past_key_values"
    inner = getattr(model, "get_base_model", None)  # a wrapper (e.g. peft) that forwards **kwargs
    if callable(inner) and inner() is not model:
        return cache_kwarg(inner())
    raise ModelStructureError(
        f"{type(model).__name__}.forward takes neither cache= nor past_key_values=; latentprobe needs a KV-cached "
        "causal LM (a transformers model of version 5)."
    )


def at(index: Tensor, target: Tensor) -> Tensor:
    """``index`` on ``target``'s device (a no-op when it is already there).

    Parameters
    ----------
    index : Tensor
        An index tensor.
    target : Tensor
        The tensor it indexes.

    Returns
    -------
    Tensor
    """
    return index.to(target.device)


class TracedForward:
    """Runs the model under an nnsight trace over ``inputs_embeds``.

    Reads the final-norm output (a latent's source) and the logits at each row's last position;
    with ``gather=(rows, cols)`` also the residual layers ``layers`` (default all; 0 = input of
    decoder layer 0, ``i`` = output of decoder layer ``i-1``) and the norm output at those
    positions, and with ``logits_at=(rows, cols)`` the logits there. Layer patches rewrite
    decoder-layer outputs at their (rows, cols) before later layers read them. With ``untraced=True``,
    a forward that gathers, patches and reads no gathered logits runs the model outside nnsight (the last
    position's final-norm output read by a forward hook, the same tensor): every capture and patch goes
    through nnsight. With ``logits=False``
    (a decode step where no token is chosen) the LM head runs on no position and ``logits_last`` is
    ``None``.

    Parameters
    ----------
    model : torch.nn.Module
        The Hugging Face model.
    parts : ModelParts
        Its located parts.
    """

    def __init__(self, model: torch.nn.Module, parts: ModelParts) -> None:
        self.nn = NNsight(model)
        self.parts = parts
        self.keeps_logits = "logits_to_keep" in inspect.signature(model.forward).parameters
        self.cache_kw = cache_kwarg(model)

    def __call__(self, embeds: Float[Tensor, "b t d"], attn: Tensor, pos: Int[Tensor, "..."], cache: Any,
                 gather: tuple[Tensor, Tensor] | None, patches: list[LayerPatch], *,
                 layers: Sequence[int] | None = None,
                 logits_at: tuple[Tensor, Tensor] | None = None, logits: bool = True,
                 untraced: bool = False) -> ForwardOut:
        T = embeds.shape[1]
        wanted = list(range(self.parts.n_layers + 1)) if layers is None else sorted(set(int(l) for l in layers))
        keep_cols, lrows, lidx = None, None, None
        if logits_at is not None and len(logits_at[0]):
            cols = sorted(set(logits_at[1].tolist()) | {T - 1})
            where = {c: k for k, c in enumerate(cols)}
            keep_cols = torch.tensor(cols, dtype=torch.long)
            lrows = logits_at[0].long().cpu()
            lidx = torch.tensor([where[int(c)] for c in logits_at[1].tolist()], dtype=torch.long)
            if not self.keeps_logits:  # the model computes every position's logits: index them directly
                lidx = logits_at[1].long().cpu()
        with torch.no_grad():
            saved = self._traced(embeds, attn, pos, cache, gather, patches, wanted, keep_cols, lrows, lidx,
                                 logits or logits_at is not None, untraced)
        res = None
        if gather is not None:
            parts = [r.to(saved["h_last"].device) for r in saved["res"]]
            res = torch.stack(parts, dim=1)  # [n, layers, d]
        return ForwardOut(saved["h_last"], saved.get("logits_last"), res, saved.get("h_gather"),
                          saved.get("logits_gather"))

    def _traced(self, embeds: Tensor, attn: Tensor, pos: Tensor, cache: Any, gather: tuple[Tensor, Tensor] | None,
                patches: list[LayerPatch], wanted: list[int], keep_cols: Tensor | None, lrows: Tensor | None,
                lidx: Tensor | None, logits: bool = True, untraced: bool = False) -> dict[str, Any]:
        parts = self.parts
        n_layers = parts.n_layers
        saved: dict[str, Any] = {}
        kw: dict[str, Any] = {self.cache_kw: cache}
        if self.keeps_logits:  # an empty index: the LM head runs on no position at all
            kw["logits_to_keep"] = (keep_cols if keep_cols is not None else 1) if logits else \
                torch.zeros(0, dtype=torch.long)
        want = set(wanted)
        if untraced and gather is None and not patches and lrows is None:
            return self._plain(embeds, attn, pos, kw, logits)
        with self.nn.trace(inputs_embeds=embeds, attention_mask=attn, position_ids=pos, use_cache=True, **kw):
            layers = get_path(self.nn, parts.layers_path)
            res = []
            if gather is not None and 0 in want:
                x0 = layers[0].input
                res.append(x0[at(gather[0], x0), at(gather[1], x0)].clone().save())
            for i in range(n_layers):
                out = layers[i].output
                hs = out[0] if isinstance(out, tuple) else out
                for p in patches:
                    if p.layer == i + 1:
                        r, c = at(p.rows, hs), at(p.cols, hs)
                        hs[r, c] = p.fn(hs[r, c]).to(hs.dtype)
                if gather is not None and i + 1 in want:
                    res.append(hs[at(gather[0], hs), at(gather[1], hs)].clone().save())
            normed = get_path(self.nn, parts.norm_path).output
            saved["h_last"] = normed[:, -1].clone().save()
            if gather is not None:
                saved["h_gather"] = normed[at(gather[0], normed), at(gather[1], normed)].clone().save()
            if logits:
                lg = self.nn.output.logits
                saved["logits_last"] = lg[:, -1].clone().save()
                if lrows is not None:
                    saved["logits_gather"] = lg[at(lrows, lg), at(lidx, lg)].clone().save()
            saved["res"] = res
        return saved

    def _plain(self, embeds: Tensor, attn: Tensor, pos: Tensor, kw: dict[str, Any], logits: bool) -> dict[str, Any]:
        """A step that captures and patches nothing: the model is called as it is, outside nnsight, and the
        final norm's last position is read by a forward hook (the same values the traced path saves)."""
        got: dict[str, Tensor] = {}

        def keep_last(module: Any, args: Any, output: Any) -> None:
            out = output[0] if isinstance(output, tuple) else output
            got["h_last"] = out[:, -1].clone()

        handle = self.parts.norm.register_forward_hook(keep_last)
        try:
            out = self.parts.model(inputs_embeds=embeds, attention_mask=attn, position_ids=pos, use_cache=True, **kw)
        finally:
            handle.remove()
        saved: dict[str, Any] = {"h_last": got["h_last"], "res": []}
        if logits:
            saved["logits_last"] = out.logits[:, -1].clone()
        return saved
