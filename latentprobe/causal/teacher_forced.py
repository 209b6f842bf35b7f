"""Teacher-forced forwards over recorded sequences, with residual capture and patching at any layer x position.

The forwards of :func:`latentprobe.causal.attribution_patching` and of its exact check: a recorded example
up to its first answer token (prompt, markers, the recorded latents as fixed inputs) in one left-padded
batch, the residual of chosen layers captured (inside the autograd graph when asked), and residuals
overwritten at chosen layers before later layers read them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch
from torch import Tensor

from latentprobe.engine.modes import _row_from_example
from latentprobe.engine.protocol import ProtocolState
from latentprobe.trace import ExampleTrace, Segment

if TYPE_CHECKING:  # pragma: no cover
    from latentprobe.engine.runner import LatentRunner

__all__: list[str] = []


def _rows(exs: Sequence[ExampleTrace]) -> list[Any]:
    return [_row_from_example(e, e.answer_start, ProtocolState()) for e in exs]


Prepared = tuple[Tensor, Tensor, Tensor, list[int]]


def _prepare(runner: LatentRunner, rows: list[Any]) -> Prepared:
    """Inputs of a teacher-forced forward over ``rows`` (left-padded): embeddings, attention mask, positions
    and pad offsets."""
    dec = runner._decoder
    embeds, mask, pos, offsets, _ = dec.embed_prefix(rows)
    B, T = mask.shape
    col_segs = torch.full((B, T), Segment.PAD, dtype=torch.long)
    for b, r in enumerate(rows):
        col_segs[b, offsets[b]:] = torch.tensor(r.segs)
    return embeds, dec.attention(col_segs, mask, T), pos, offsets


def _split(prepared: Prepared, n: int) -> tuple[Prepared, Prepared]:
    """Rows ``[:n]`` and ``[n:]`` of prepared inputs (positions are ``[b, t]``, or ``[3, b, t]`` for M-RoPE)."""
    embeds, attn, pos, offsets = prepared
    bdim = pos.dim() - 2
    first = (embeds[:n], attn[:n], pos.narrow(bdim, 0, n), offsets[:n])
    rest = (embeds[n:], attn[n:], pos.narrow(bdim, n, pos.shape[bdim] - n), offsets[n:])
    return first, rest


def _forward(runner: LatentRunner, rows: list[Any], layers: Sequence[int], *, grad: bool = False,
             patch: dict[int, tuple[Tensor, Tensor, Tensor]] | None = None,
             prepared: Prepared | None = None) -> tuple[Tensor, list[Tensor], list[int]]:
    """Teacher-forced forward over ``rows`` (left-padded): the logits at the last column, the residuals at
    ``layers`` (``[b, t, d]`` each, part of the graph when ``grad``) and the pad offsets. ``patch`` maps a
    layer to ``(rows, cols, values)`` written there before later layers read it; ``prepared`` gives the inputs
    already built by :func:`_prepare`."""
    embeds, attn, pos, offsets = _prepare(runner, rows) if prepared is None else prepared
    blocks = runner.parts.layers
    caps: dict[int, Tensor] = {}
    patch = patch or {}

    def write(layer: int, hs: Tensor) -> Tensor:
        if layer in patch:
            r, c, v = patch[layer]
            hs = hs.clone()
            hs[r.to(hs.device), c.to(hs.device)] = v.to(hs.device, hs.dtype)
        if layer in want:
            caps[layer] = hs
        return hs

    def pre0(module: Any, args: tuple, kwargs: dict) -> Any:
        if args:
            return (write(0, args[0]),) + tuple(args[1:]), kwargs
        return args, {**kwargs, "hidden_states": write(0, kwargs["hidden_states"])}

    def post(layer: int) -> Callable[..., Any]:
        def hook(module: Any, args: Any, out: Any) -> Any:
            if isinstance(out, tuple):
                return (write(layer, out[0]),) + tuple(out[1:])
            return write(layer, out)
        return hook

    want = set(int(l) for l in layers)
    handles = [blocks[0].register_forward_pre_hook(pre0, with_kwargs=True)]
    handles += [blocks[i].register_forward_hook(post(i + 1)) for i in range(len(blocks))]
    kw: dict[str, Any] = {}
    if runner._decoder.forward.keeps_logits:
        kw["logits_to_keep"] = 1
    try:
        with torch.set_grad_enabled(grad):
            if grad:
                embeds = embeds.detach().requires_grad_(True)
            out = runner.model(inputs_embeds=embeds, attention_mask=attn, position_ids=pos, use_cache=False, **kw)
    finally:
        for h in handles:
            h.remove()
    return out.logits[:, -1], [caps[l] for l in sorted(want)], offsets
