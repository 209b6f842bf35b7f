"""Shared-prefix prefill: rows that start with the same positions share one prefill, then fork its KV cache.

Rows are grouped (one group per recorded example, its rows one per condition of a sweep). Each
group's longest common prefix (same ids and segments, the same vectors at latent slots, no layer
patch inside it) is prefilled once; the cache is then copied along the batch dimension, one copy per
row (:func:`fork_cache`), and every row feeds the rest of its prefix as one chunk on its copy. The
chunks are padded at their start (the padding sits between the shared prefix and the chunk, masked
out), so every row's last position is the batch's last column, as the decode loop expects.

Positions are those of each row's full sequence (3-D rotary positions of a vision-language model are
computed from the full ids and sliced), so a row sees exactly the positions it would see prefilled
on its own.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Sequence

import torch
from torch import Tensor

from latentprobe.engine.forward import new_cache
from latentprobe.engine.loop import Decoder, Gathered, _Prefill
from latentprobe.engine.prefix_cache import SharedPrefixCache, attached
from latentprobe.engine.rows import Row
from latentprobe.trace import Segment

if TYPE_CHECKING:  # pragma: no cover
    from transformers import DynamicCache

__all__ = ["fork_cache", "shared_length", "prefill_shared"]


def fork_cache(cache: DynamicCache, index: Tensor) -> DynamicCache:
    """A new cache whose batch row ``i`` is a copy of ``cache``'s row ``index[i]``; ``cache`` is left as it is.

    Uses the cache's own ``reorder_cache`` (transformers' ``DynamicCache``: ``index_select`` on every
    layer's keys and values, which allocates new tensors) on shallow copies of its layers.

    Parameters
    ----------
    cache : Any
        A KV cache.
    index : Tensor
        ``[n]`` source rows.

    Returns
    -------
    DynamicCache
    """
    out = copy.copy(cache)
    out.layers = [copy.copy(layer) for layer in cache.layers]
    out.reorder_cache(index)
    return out


def _same(a: Tensor | None, b: Tensor | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and (a is b or torch.equal(a, b)))


def _patched_slots(r: Row) -> list[int]:
    """Prefix positions whose residual layers >= 1 are patched (latent slots and position patches), and the
    row's ``prefix_cut``."""
    slots = sorted(r.z_at)
    return [slots[s] for s, pt in r.patches.items() if s < len(slots) and any(layer >= 1 for layer in pt.layers)] + [
        p for at in r.position_patches.values() for p in at] + ([] if r.prefix_cut is None else [r.prefix_cut])


def _common(a: list[int], b: list[int], n: int) -> int:
    """Leading positions (at most ``n``) where lists ``a`` and ``b`` agree (one C-level comparison when equal)."""
    if a[:n] == b[:n]:
        return n
    diff = torch.tensor(a[:n]) != torch.tensor(b[:n])
    return int(diff.to(torch.uint8).argmax())


def shared_length(rows: Sequence[Row]) -> int:
    """How many leading positions all ``rows`` feed identically (at most the shortest row's length).

    Ids and segments are compared a whole row at a time; vectors only at the latent slots inside the
    common ids.

    Parameters
    ----------
    rows : Sequence[Row]
        The rows.

    Returns
    -------
    int
    """
    n = min(len(r.ids) for r in rows)
    first = rows[0]
    for r in rows:
        n = min([n] + _patched_slots(r))
    n = max(n, 0)
    for r in rows[1:]:
        n = min(n, _common(r.ids, first.ids, n), _common(r.segs, first.segs, n))
    for r in rows[1:]:
        for p in sorted(set(r.z_at) | set(first.z_at)):
            if p >= n:
                break
            if not _same(r.z_at.get(p), first.z_at.get(p)):
                n = p
                break
    return n


def _positions(dec: Decoder, rows: list[Row]) -> tuple[list[Tensor], Tensor | None]:
    """Each row's positions over its full sequence (``[T]``, or ``[3, T]`` for 3-D rotary) and rope deltas.

    3-D positions are computed once per distinct row (same ids, segments, latent slots and image grid: the
    conditions of one example usually are) and shared by its copies."""
    if not dec.parts.is_vlm:
        return [torch.arange(len(r.ids)) for r in rows], None
    keys: dict[Any, int] = {}
    which = []
    for r in rows:
        grid = None if r.grid_thw is None else (id(r.grid_thw), tuple(r.grid_thw.flatten().tolist()))
        which.append(keys.setdefault((tuple(r.ids), tuple(r.segs), tuple(sorted(r.z_at)), grid), len(keys)))
    uniq = [rows[which.index(u)] for u in range(len(keys))]
    B, T = len(uniq), max(len(r.ids) for r in uniq)
    ids = torch.full((B, T), dec.rspec.pad_id, dtype=torch.long)
    mask = torch.zeros((B, T), dtype=torch.long)
    tt = torch.zeros((B, T), dtype=torch.long)
    for b, r in enumerate(uniq):
        off = T - len(r.ids)
        rid = torch.tensor(r.ids, dtype=torch.long)
        if r.z_at:
            rid[torch.tensor(list(r.z_at), dtype=torch.long)] = dec.rspec.placeholder_id
        ids[b, off:] = rid
        mask[b, off:] = 1
        tt[b, off:] = (torch.tensor(r.segs, dtype=torch.long) == Segment.IMAGE).long()
    grids = [r.grid_thw for r in uniq if r.grid_thw is not None]
    grid = torch.cat(grids).to(dec.device) if grids else None
    with torch.no_grad():
        pos, deltas = dec.parts.rope_index(ids.to(dec.device), tt.to(dec.device), grid, mask.to(dec.device))
    pos, deltas = pos.cpu(), deltas.reshape(B).cpu()
    return [pos[:, u, T - len(r.ids):] for u, r in zip(which, rows)], deltas[torch.tensor(which, dtype=torch.long)]


def _embed(dec: Decoder, rows: list[Row], spans: list[tuple[int, int]], positions: list[Tensor]
           ) -> tuple[Tensor, Tensor, Tensor, Tensor, list[int]]:
    """Embeddings, segments, validity and positions of positions ``[start, end)`` of every row, padded at the
    start to the longest span; returns the pad widths too."""
    B, W = len(rows), max(e - s for s, e in spans)
    ids = torch.full((B, W), dec.rspec.pad_id, dtype=torch.long)
    segs = torch.full((B, W), Segment.PAD, dtype=torch.long)
    valid = torch.zeros((B, W), dtype=torch.long)
    three = positions[0].ndim == 2
    pos = torch.zeros((3, B, W) if three else (B, W), dtype=torch.long)
    pads = []
    for b, (r, (s, e)) in enumerate(zip(rows, spans)):
        off = W - (e - s)
        pads.append(off)
        rid = torch.tensor(r.ids[s:e], dtype=torch.long)
        slots = [p - s for p in r.z_at if s <= p < e]
        if slots:
            rid[torch.tensor(slots, dtype=torch.long)] = dec.rspec.placeholder_id
        ids[b, off:] = rid
        segs[b, off:] = torch.tensor(r.segs[s:e])
        valid[b, off:] = 1
        if three:
            pos[:, b, off:] = positions[b][:, s:e]
        else:
            pos[b, off:] = positions[b][s:e]
    with torch.no_grad():
        embeds = dec.parts.embed(ids.to(dec.device)).clone()
    for b, (r, (s, e)) in enumerate(zip(rows, spans)):
        off = pads[b] - s
        if r.image_embeds is not None and Segment.IMAGE in r.segs[s:e]:
            first = r.segs[:s].count(Segment.IMAGE)  # image features before the span
            cols = (segs[b, pads[b]:] == Segment.IMAGE).nonzero()[:, 0]
            embeds[b, (cols + pads[b]).to(embeds.device)] = r.image_embeds[first:first + len(cols)].to(
                embeds.device, embeds.dtype)
        for p, z in r.z_at.items():
            if s <= p < e:
                embeds[b, p + off] = z.to(dec.device, embeds.dtype)
    return embeds, segs, valid, pos, pads


def _gather_args(want: list[list[int]], read: list[list[int]], col: Any) -> tuple[Any, Any]:
    gather = logits_at = None
    if any(want):
        gather = (torch.tensor([b for b, ps in enumerate(want) for _ in ps], dtype=torch.long),
                  torch.tensor([col(b, p) for b, ps in enumerate(want) for p in ps], dtype=torch.long))
    if any(read):
        logits_at = (torch.tensor([b for b, ps in enumerate(read) for _ in ps], dtype=torch.long),
                     torch.tensor([col(b, p) for b, ps in enumerate(read) for p in ps], dtype=torch.long))
    return gather, logits_at


def prefill_shared(dec: Decoder, rows: list[Row], group: Sequence[Any],
                   gather_extra: Sequence[Sequence[int]] | None = None, read_logits: bool = True,
                   shared: bool = False, budget: int = 0) -> _Prefill:
    """Prefill ``rows`` (``group[i]``: row ``i``'s group) with one shared prefix per group, and return the
    loop's start state, as :meth:`Decoder._prefill` does for the rows prefilled one by one (``gather_extra``:
    positions gathered too, their logits read unless ``read_logits=False``).

    With ``shared=False`` the prefix's cache is copied once per row (:func:`fork_cache`, transformers'
    ``DynamicCache``: the reference). With ``shared=True`` every row attends to its group's one copy
    (:class:`~latentprobe.engine.prefix_cache.SharedPrefixCache`, its suffix blocks preallocated for the rest
    of the prefix and ``budget`` decode steps); the returned column segments and mask then cover the
    suffix columns only.

    Parameters
    ----------
    dec : Decoder
        The runner's decoder.
    rows : list[Row]
        The rows to prefill.
    group : Sequence[Any]
        ``group[i]``: row ``i``'s group (rows of a group share a prefix).
    gather_extra : Sequence[Sequence[int]] | None
        Per row, further positions to gather.
    read_logits : bool
        Read the logits at the gathered positions.
    shared : bool
        One copy of each group's prefix cache, attended by all its rows (``False``: one copy per row).
    budget : int
        ``shared`` only: decode steps to preallocate the suffix blocks for.

    Returns
    -------
    _Prefill
        What :meth:`Decoder.finish_prefill` returns, for the loop to continue from.
    """
    keys = list(dict.fromkeys(group))
    members = {k: [i for i, g in enumerate(group) if g == k] for k in keys}
    common = {k: shared_length([rows[i] for i in members[k]]) for k in keys}
    want, read = dec._wanted(rows, None, gather_extra, read_logits)
    positions, deltas = _positions(dec, rows)
    # 1. one prefix per group (its first row's first positions), gathering what any of its rows reads there
    heads = [rows[members[k][0]] for k in keys]
    p_spans = [(0, common[k]) for k in keys]
    p_want = [sorted({p for i in members[k] for p in want[i] if p < common[k]}) for k in keys]
    p_read = [sorted({p for i in members[k] for p in read[i] if p < common[k]}) for k in keys]
    cache = new_cache(dec.model)
    g_pre: list[dict[int, Gathered]] = [{} for _ in keys]
    out = None
    if max(e for _, e in p_spans) > 0:
        embeds, segs, valid, pos, pads = _embed(dec, heads, p_spans, [positions[members[k][0]] for k in keys])
        gather, logits_at = _gather_args(p_want, p_read, lambda b, p: p + pads[b])
        out = dec.forward(embeds, dec.attention(segs, valid, segs.shape[1]), pos.to(dec.device), cache, gather, [],
                          layers=dec.capture_layers, logits_at=logits_at, untraced=True)
        g_pre = dec.gathered_from(out, p_want, p_read)
    else:
        segs = torch.zeros((len(keys), 0), dtype=torch.long)
        valid = torch.zeros((len(keys), 0), dtype=torch.long)
    # 2. fork: one copy of its group's prefix per row, then each row's own rest as one chunk (a row with no rest
    # gets a chunk of padding and keeps its prefix's last outputs)
    gi = torch.tensor([keys.index(g) for g in group], dtype=torch.long)
    h_last, logits_last = (out.h_last[gi.to(out.h_last.device)], out.logits_last[gi.to(out.logits_last.device)]) \
        if max(e for _, e in p_spans) > 0 else (None, None)
    spans = [(common[g], len(r.ids)) for r, g in zip(rows, group)]
    width = max(e - s for s, e in spans)
    if shared:
        layers = [(la.keys, la.values) for la in cache.layers] if cache.get_seq_length() > 0 else []
        cache = SharedPrefixCache(layers, [segs.shape[1] - e for _, e in p_spans], gi, segs, width + budget,
                                  dec.mask_rule, dec.parts.n_layers, dec.device)
        col_segs, col_mask = segs[gi][:, :0], valid[gi][:, :0]
    else:
        if cache.get_seq_length() > 0:
            cache = fork_cache(cache, gi.to(dec.device))
        col_segs, col_mask = segs[gi], valid[gi]
    g_rest: list[dict[int, Gathered]] = [{} for _ in rows]
    if width > 0:
        embeds, c_segs, c_valid, pos, pads = _embed(dec, rows, spans, positions)
        col_segs = torch.cat([col_segs, c_segs], dim=1)
        col_mask = torch.cat([col_mask, c_valid], dim=1)
        s_want = [[p for p in want[i] if p >= spans[i][0]] for i in range(len(rows))]
        s_read = [[p for p in read[i] if p >= spans[i][0]] for i in range(len(rows))]
        gather, logits_at = _gather_args(s_want, s_read, lambda b, p: p - spans[b][0] + pads[b])
        patches = dec._prefix_patches(rows, [pads[b] - spans[b][0] for b in range(len(rows))])
        with attached(cache, dec.parts.layers):
            out = dec.forward(embeds, dec.attention(col_segs, col_mask, embeds.shape[1], cache), pos.to(dec.device),
                              cache, gather, patches, layers=dec.capture_layers, logits_at=logits_at, untraced=True)
        g_rest = dec.gathered_from(out, s_want, s_read)
        rest = [i for i, (s, e) in enumerate(spans) if e > s]
        if len(rest) == len(rows):
            h_last, logits_last = out.h_last, out.logits_last
        else:  # rows with a rest take this chunk's outputs, the others keep their prefix's
            h_last, logits_last = h_last.clone(), logits_last.clone()
            h_last[rest], logits_last[rest] = out.h_last[rest], out.logits_last[rest]
    gathered = []
    for i, g in enumerate(group):
        pre = g_pre[keys.index(g)]
        mine = {p: pre[p] for p in want[i] if p < spans[i][0]}
        mine.update(g_rest[i])
        gathered.append(mine)
    return dec.finish_prefill(rows, gathered, h_last, logits_last, cache, col_segs, col_mask,
                              torch.tensor([len(r.ids) for r in rows]), deltas)
