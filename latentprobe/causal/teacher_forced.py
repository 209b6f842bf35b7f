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

from latentprobe.engine.forward import cache_kwarg
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


def _prepare_pair(runner: LatentRunner, rows_c: list[Any], rows_o: list[Any]) -> tuple[Prepared, Prepared]:
    """Inputs of the clean rows and of counterfactual rows that line up with them position by position (same
    lengths and segments): the counterfactual rows reuse the attention mask, and the positions where their
    images have the same grids."""
    prep_c = _prepare(runner, rows_c)
    same_grids = all((a.grid_thw is None) == (b.grid_thw is None) and (a.grid_thw is None or torch.equal(a.grid_thw, b.grid_thw))
                     for a, b in zip(rows_c, rows_o))
    if not same_grids:
        return prep_c, _prepare(runner, rows_o)
    embeds, _, _, offsets, _ = runner._decoder.embed_prefix(rows_o, positions=False)
    return prep_c, (embeds, prep_c[1], prep_c[2], offsets)


def _forward(runner: LatentRunner, rows: list[Any], layers: Sequence[int], *, grad: bool = False,
             patch: dict[int, tuple[Tensor, Tensor, Tensor]] | None = None,
             prepared: Prepared | None = None, cache: Any = None,
             cols: tuple[int, int] | None = None) -> tuple[Tensor, list[Tensor], list[int]]:
    """Teacher-forced forward over ``rows`` (left-padded): the logits at the last column, the residuals at
    ``layers`` (``[b, t, d]`` each, part of the graph when ``grad``) and the pad offsets. ``patch`` maps a
    layer to ``(rows, cols, values)`` written there before later layers read it; ``prepared`` gives the inputs
    already built by :func:`_prepare`. ``cache`` (a ``DynamicCache``) receives the keys and values of the columns
    run; ``cols = (start, end)`` runs only those columns, on a ``cache`` that holds columns ``[0, start)``
    already (residuals are then ``[b, end - start, d]``, ``patch`` columns count from ``start``, and the logits
    are those of column ``end - 1``)."""
    embeds, attn, pos, offsets = _prepare(runner, rows) if prepared is None else prepared
    if cols is not None:
        start, end = cols
        embeds, pos = embeds[:, start:end], pos[..., start:end]
        # a 2-D padding mask covers every key so far; an additive mask [b, 1, q, t] the queries run, keys to end
        attn = attn[:, :, start:end, :end] if attn.dim() == 4 else attn[:, :end]
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
            if cache is not None:
                kw[cache_kwarg(runner.model)] = cache
            out = runner.model(inputs_embeds=embeds, attention_mask=attn, position_ids=pos,
                               use_cache=cache is not None, **kw)
    finally:
        for h in handles:
            h.remove()
    return out.logits[:, -1], [caps[l] for l in sorted(want)], offsets
