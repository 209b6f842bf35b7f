"""Attention flow at latent positions: where each latent, the close marker and the answer tokens look.

For every recorded example, one teacher-forced forward over its whole recorded sequence (latents fed
as recorded, the runner's mask rule applied, the model's own attention implementation kept: sdpa or
flash, no switch to eager) computes the attention probabilities of the chosen query rows only
(:mod:`latentprobe.readouts._rows`), from the queries and keys the model itself passes to its attention
function (after RoPE, Qwen2.5-VL's multimodal sections included), with its mask, scaling and grouped-query
layout. The rows are summed over regions of the sequence (the first position, image tokens, question text,
system prompt, earlier latents, markers, generated text, the query itself), with their entropy and their top attended
positions.

What it does not prove: attention mass is where a head reads from, not what it reads or whether the
read matters; a head can attend to a position and write nothing useful (an attention sink), and
information can reach a position through earlier positions that attended to it. Causal claims need the
interventions (``z_to_y``, ``decompose``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from latentprobe import readout_schema as schema
from latentprobe.display import SummarizedResult
from latentprobe.engine.forward import new_cache
from latentprobe.engine.modes import _row_from_example, check_trace
from latentprobe.engine.protocol import ProtocolState
from latentprobe.errors import InputError, ModelStructureError, StepOutOfRangeError
from latentprobe.readouts._rows import attention_modules, capture_rows
from latentprobe.trace import ExampleTrace, LatentTrace, Segment

__all__ = ["attention", "attention_rows", "AttentionResult", "query_positions", "key_regions", "QUERY_GROUPS",
           "REGIONS"]

#: Query groups, in display order: each latent slot, each open and close marker, each answer position, the
#: last prompt position.
QUERY_GROUPS: tuple[str, ...] = ("latents", "open", "close", "answer", "last_prompt")
#: Regions of the keys, in display order (every key a query can see is in exactly one). ``first`` is position 0
#: alone, where many heads park their attention (an attention sink), so that it does not swell the region it
#: belongs to.
REGIONS: tuple[str, ...] = ("first", "system", "question", "image", "markers", "latents", "generated", "self")

Regions = Callable[[ExampleTrace], Mapping[str, Sequence[int]]]


@dataclass(frozen=True, repr=False)
class AttentionResult(SummarizedResult):
    """Attention flow from chosen query positions, per example, layer and head.

    Parameters
    ----------
    table : pandas.DataFrame
        :class:`latentprobe.schema.ATTENTION_MASS`: mass per example, query group, step, layer, head and
        region (``head`` -1: the mean over heads, with ``average_heads=True``).
    entropy : pandas.DataFrame
        :class:`latentprobe.schema.ATTENTION_ENTROPY`: entropy (nats) of each row, with the query's position.
    top : pandas.DataFrame
        :class:`latentprobe.schema.ATTENTION_TOP`: the ``top_k`` attended positions of each row.
    config : dict
        The settings (query groups, layers, heads, top_k).
    """

    table: pd.DataFrame
    entropy: pd.DataFrame
    top: pd.DataFrame
    config: dict[str, Any] = field(default_factory=dict)

    def region_means(self) -> pd.DataFrame:
        """Mean mass per query group, step and region over examples, layers and heads (what the bars show).

        Returns
        -------
        pandas.DataFrame
            Columns ``query_group, step, region, mass``.
        """
        t = self.table
        if t.empty:
            return pd.DataFrame({"query_group": [], "step": [], "region": [], "mass": []})
        return t.groupby(["query_group", "step", "region"], sort=False, as_index=False)["mass"].mean()


def query_positions(example: ExampleTrace,
                    groups: Sequence[str] = ("latents", "close", "answer")) -> list[tuple[str, int, int]]:
    """The query rows of one example: ``(query_group, step, position)`` in sequence order per group.

    ``latents``: each latent slot (step = latent index). ``open`` / ``close``: each open / close marker (step =
    its segment). ``answer``: each position of the recorded answer (step 0 holds the first answer token; the
    first answer token itself is predicted at the position before it, usually the close marker).
    ``last_prompt``: the last prompt position (step 0).

    Parameters
    ----------
    example : ExampleTrace
        A recorded example.
    groups : sequence of str
        Names from :data:`QUERY_GROUPS`.

    Returns
    -------
    list of tuple
    """
    bad = [g for g in groups if g not in QUERY_GROUPS]
    if bad or isinstance(groups, str):
        raise InputError(f"queries={groups!r}: query groups are {', '.join(QUERY_GROUPS)} (a list of them).")
    segs = example.segments.tolist()
    out: list[tuple[str, int, int]] = []
    for g in groups:
        if g == "latents":
            out += [(g, k, int(p)) for k, p in enumerate(example.latent_positions.tolist())]
        elif g in ("open", "close"):
            code = Segment.OPEN if g == "open" else Segment.CLOSE
            starts = [p for p, s in enumerate(segs) if s == code and (p == 0 or segs[p - 1] != code)]
            out += [(g, k, p) for k, p in enumerate(starts)]
        elif g == "answer":
            out += [(g, i, p) for i, p in enumerate(range(example.answer_start, example.seq_len))]
        else:
            out.append((g, 0, example.prompt_len - 1))
    return out


def _system_end(ids: list[int], prompt_len: int, tokenizer: Any) -> int:
    """End of a ChatML system turn (``<|im_start|>system ... <|im_start|>``), 0 when the prompt has none."""
    vocab = tokenizer.get_vocab() if tokenizer is not None else {}
    start = vocab.get("<|im_start|>")
    if start is None:
        return 0
    marks = [p for p in range(prompt_len) if ids[p] == start]
    if len(marks) < 2:
        return 0
    head = tokenizer.decode(ids[marks[0] + 1:min(marks[0] + 3, marks[1])])
    return marks[1] if head.strip().startswith("system") else 0


def key_regions(example: ExampleTrace, *, tokenizer: Any = None, marker_ids: Sequence[int] = (),
                regions: Regions | None = None) -> np.ndarray:
    """The region of every position of ``example`` (an index into :data:`REGIONS`), before "self" and "later".

    First: position 0 (an attention sink in most models; the toys' first question token). System prompt: a ChatML
    system turn at the start of the prompt (from ``<|im_start|>system`` to the next ``<|im_start|>``). Markers: the
    open and close markers and the ids in ``marker_ids`` (the image's ``<|vision_start|>`` / ``<|vision_end|>``).
    Image: image-token positions. Latents: latent slots. Generated: text generated after the prompt (before the
    open marker, and the answer). Question: the rest of the prompt (the user turn and its template tokens).
    ``regions(example) -> {region: positions}`` overrides any of them.

    Parameters
    ----------
    example : ExampleTrace
        A recorded example.
    tokenizer : optional
        The model's tokenizer (finds a ChatML system turn).
    marker_ids : sequence of int
        Further token ids counted as markers.
    regions : callable, optional
        Positions to put in named regions (names from :data:`REGIONS`).

    Returns
    -------
    numpy.ndarray
        ``[seq]`` int region codes.
    """
    ids, segs = example.input_ids.tolist(), example.segments.tolist()
    code = {name: i for i, name in enumerate(REGIONS)}
    out = np.full(len(ids), code["question"], dtype=np.int64)
    sys_end = _system_end(ids, example.prompt_len, tokenizer)
    marks = set(int(m) for m in marker_ids)
    for p, s in enumerate(segs):
        if s == Segment.IMAGE:
            out[p] = code["image"]
        elif s in (Segment.OPEN, Segment.CLOSE) or ids[p] in marks:
            out[p] = code["markers"]
        elif s == Segment.LATENT:
            out[p] = code["latents"]
        elif s == Segment.GEN or p >= example.prompt_len:
            out[p] = code["generated"]
        elif p < sys_end:
            out[p] = code["system"]
    out[0] = code["first"]
    for name, ps in (regions(example) if regions is not None else {}).items():
        if name not in code or name == "self":
            raise InputError(f"regions({example.example_id!r}) names region {name!r}; use one of "
                             f"{', '.join(r for r in REGIONS if r != 'self')}.")
        out[list(ps)] = code[name]
    return out


def attention_rows(runner: Any, example: ExampleTrace, positions: Sequence[int], *,
                   layers: Sequence[int] | None = None) -> dict[int, Tensor]:
    """Attention probabilities of the query rows at ``positions`` of one recorded example, per decoder layer.

    One forward over the recorded sequence (latents as recorded, the runner's mask rule), with the model's
    own attention implementation; only the chosen rows are computed.

    Parameters
    ----------
    runner : LatentRunner
        The runner that recorded the example (same model and spec).
    example : ExampleTrace
        The example.
    positions : sequence of int
        Query positions (``0 .. seq_len - 1``).
    layers : sequence of int, optional
        Decoder layers (0-based; default all).

    Returns
    -------
    dict[int, Tensor]
        ``layer -> [heads, len(positions), seq_len]`` float32 probabilities on the CPU.

    Examples
    --------
    >>> from latentprobe import toy
    >>> tm = toy.load("blind")
    >>> ex = tm.examples("test", 1)
    >>> runner = tm.runner()
    >>> trace = runner.run(tm.prompts(ex), tm.images(ex), max_new_tokens=16, progress=False)
    >>> e = trace[0]
    >>> rows = attention_rows(runner, e, e.latent_positions.tolist())
    >>> image = e.positions_of(1)  # Segment.IMAGE
    >>> float(rows[0][:, :, image].sum())   # blind: latents never attend to the image
    0.0
    """
    got: dict[int, Tensor] = {}
    wanted = _each_layer(runner, example, positions, layers, lambda layer, probs: got.__setitem__(layer, probs.cpu()))
    return {l: got.get(l, torch.zeros(0, 0, example.seq_len)) for l in wanted}


def _layers(runner: Any, layers: Sequence[int] | None) -> list[int]:
    n_layers = runner.parts.n_layers
    wanted = list(range(n_layers)) if layers is None else sorted({int(l) for l in layers})
    bad = [l for l in wanted if not 0 <= l < n_layers]
    if bad or not wanted:
        raise StepOutOfRangeError(f"layers {bad or '[]'}: decoder layers are 0..{n_layers - 1}.")
    return wanted


def _each_layer(runner: Any, example: ExampleTrace, positions: Sequence[int], layers: Sequence[int] | None,
                sink: Callable[[int, Tensor], None]) -> list[int]:
    """One forward over the recorded sequence; ``sink(layer, [heads, n, seq] float32)`` as each layer runs (on the
    layer's device: nothing of another layer is kept). Returns the layers."""
    wanted = _layers(runner, layers)
    pos = [int(p) for p in positions]
    badp = [p for p in pos if not 0 <= p < example.seq_len]
    if badp:
        raise StepOutOfRangeError(f"example {example.example_id!r} has {example.seq_len} positions; "
                                  f"query positions {badp} are out of range.")
    if not pos:
        return wanted
    dec = runner._decoder
    row = _row_from_example(example, example.seq_len, ProtocolState())
    embeds, mask, pos_ids, _, _ = dec.embed_prefix([row])
    segs = torch.tensor(row.segs, dtype=torch.long)[None]
    attn = dec.attention(segs, mask, embeds.shape[1])
    seen: set[int] = set()

    def each(layer: int, probs: Tensor) -> None:
        seen.add(layer)
        sink(layer, probs[0].detach().float())

    with capture_rows(runner.model, attention_modules(runner.parts.layers), torch.tensor(pos), each, set(wanted)):
        dec.forward(embeds, attn, pos_ids, new_cache(runner.model), None, [], logits=False, untraced=True)
    missing = sorted(set(wanted) - seen)
    if missing:
        raise ModelStructureError(
            f"{type(runner.model).__name__}: decoder layers {missing} never called the transformers attention "
            "interface (ALL_ATTENTION_FUNCTIONS), so their attention rows cannot be read; attention readouts need "
            "attention modules of transformers 5 (GPT-2, Llama, Qwen2, Qwen2.5-VL, ...).")
    return wanted


def _n_heads(runner: Any) -> int | None:
    cfg = getattr(runner.model, "config", None)
    text = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    n = getattr(text, "num_attention_heads", None) or getattr(text, "n_head", None)
    return None if n is None else int(n)


def _marker_ids(runner: Any) -> list[int]:
    cfgs = [getattr(runner.model, "config", None)]
    ids = {getattr(c, name, None) for c in cfgs for name in ("vision_start_token_id", "vision_end_token_id")}
    return sorted(int(i) for i in ids if i is not None)


def _token_names(example: ExampleTrace, tokenizer: Any) -> list[str]:
    toks = tokenizer.convert_ids_to_tokens(example.input_ids.tolist()) if tokenizer is not None else \
        [str(i) for i in example.input_ids.tolist()]
    segs = example.segments.tolist()
    k = 0
    for p, s in enumerate(segs):
        if s == Segment.LATENT:
            toks[p] = f"<latent {k}>"
            k += 1
    return [str(t) for t in toks]


def attention(runner: Any, trace: LatentTrace, *, queries: Sequence[str] = ("latents", "close", "answer"),
              layers: Sequence[int] | None = None, heads: Sequence[int] | None = None, top_k: int = 5,
              average_heads: bool = False, regions: Regions | None = None, progress: bool = False) -> AttentionResult:
    """Attention mass from chosen query positions to regions of the sequence, per layer and head.

    Parameters
    ----------
    runner : LatentRunner
        The runner that recorded ``trace``.
    trace : LatentTrace
        The recorded run.
    queries : sequence of str
        Query groups (:data:`QUERY_GROUPS`): ``"latents"``, ``"open"``, ``"close"``, ``"answer"``, ``"last_prompt"``.
    layers : sequence of int, optional
        Decoder layers (0-based; layer ``i`` reads residual layer ``i``). Default all.
    heads : sequence of int, optional
        Query heads kept (default all).
    top_k : int
        Attended positions kept per row in ``top``.
    average_heads : bool
        One row per layer with the mean over the kept heads (``head`` -1) instead of one per head.
    regions : callable, optional
        ``example -> {region: positions}``: positions to put in named regions (see :func:`key_regions`).
    progress : bool
        A progress bar over the examples.

    Returns
    -------
    AttentionResult

    Raises
    ------
    InputError
        An unknown query group, a head out of range, an empty trace or one recorded on a model of another width.
    StepOutOfRangeError
        A layer out of range.

    Examples
    --------
    On the shipped ``bypass`` toy the answer never attends to the latents (its mask rule):

    >>> from latentprobe import toy, readouts
    >>> tm = toy.load("bypass")
    >>> ex = tm.examples("test", 2)
    >>> runner = tm.runner()
    >>> trace = runner.run(tm.prompts(ex), tm.images(ex), max_new_tokens=16, progress=False)
    >>> res = readouts.attention(runner, trace, queries=("answer",))
    >>> list(res.table.columns)
    ['example_id', 'query_group', 'step', 'layer', 'head', 'region', 'mass']
    >>> float(res.table.query("region == 'latents'")["mass"].max())
    0.0
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise InputError(f"top_k={top_k!r}: give a non-negative integer.")
    groups = tuple(queries)
    if isinstance(queries, str) or [g for g in groups if g not in QUERY_GROUPS]:
        raise InputError(f"queries={queries!r}: query groups are {', '.join(QUERY_GROUPS)} (a list of them).")
    check_trace(trace, runner.parts.hidden_size)
    _layers(runner, layers)
    H = _n_heads(runner)
    if heads is not None and H is not None and [h for h in heads if not 0 <= int(h) < H]:
        raise InputError(f"heads {[h for h in heads if not 0 <= int(h) < H]}: the model has {H} query heads "
                         f"(0..{H - 1}).")
    tokenizer = getattr(runner, "tokenizer", None)
    markers = _marker_ids(runner)
    mass_rows: list[dict[str, Any]] = []
    ent_rows: list[dict[str, Any]] = []
    top_rows: list[dict[str, Any]] = []
    items = list(trace)
    if progress:
        from tqdm.auto import tqdm
        items = tqdm(items, desc="attention")
    for e in items:
        qs = query_positions(e, groups)
        if not qs:
            continue
        base = key_regions(e, tokenizer=tokenizer, marker_ids=markers, regions=regions)
        onehot = _region_onehot(qs, base, e.seq_len)
        names = _token_names(e, tokenizer)

        def sink(layer: int, probs: Tensor, e: ExampleTrace = e, qs: list = qs, base: np.ndarray = base,
                 onehot: Tensor = onehot, names: list[str] = names) -> None:
            _summarise(e, qs, layer, probs, base, onehot, heads, average_heads, top_k, names, mass_rows, ent_rows,
                       top_rows)

        _each_layer(runner, e, [p for _, _, p in qs], layers, sink)
    cfg = {"queries": list(groups), "layers": None if layers is None else [int(l) for l in layers],
           "heads": None if heads is None else [int(h) for h in heads], "top_k": top_k, "average_heads": average_heads}
    return AttentionResult(schema.ATTENTION_MASS.frame(mass_rows), schema.ATTENTION_ENTROPY.frame(ent_rows),
                           schema.ATTENTION_TOP.frame(top_rows), cfg)


def _region_onehot(qs: list[tuple[str, int, int]], base: np.ndarray, T: int) -> Tensor:
    """``[n, T, regions]``: 1 where key t of query row j is in the region (the query itself is ``self``; keys after
    it get no mass under a causal mask and are left out)."""
    self_code = REGIONS.index("self")
    onehot = torch.zeros(len(qs), T, len(REGIONS))
    for j, (_, _, p) in enumerate(qs):
        codes = torch.as_tensor(base.copy())
        codes[p] = self_code
        keep = torch.arange(T) <= p
        onehot[j, torch.arange(T)[keep], codes[keep]] = 1.0
    return onehot


def _summarise(e: ExampleTrace, qs: list[tuple[str, int, int]], layer: int, probs: Tensor, base: np.ndarray,
               onehot: Tensor, heads: Sequence[int] | None, average: bool, top_k: int, names: list[str],
               mass_rows: list[dict[str, Any]], ent_rows: list[dict[str, Any]], top_rows: list[dict[str, Any]]) -> None:
    """Region masses, entropies and top positions of one layer's rows (``[heads, n, T]``), appended to the lists."""
    T = e.seq_len
    H = probs.shape[0]
    hs = list(range(H)) if heads is None else [int(h) for h in heads]
    bad = [h for h in hs if not 0 <= h < H]
    if bad:
        raise InputError(f"heads {bad}: the model has {H} query heads (0..{H - 1}).")
    p_sel = probs[hs]
    if average:
        p_sel, hs = p_sel.mean(0, keepdim=True), [-1]
    mass = torch.einsum("hnt,ntr->hnr", p_sel, onehot.to(p_sel.device)).cpu()
    ent = (-(p_sel * torch.where(p_sel > 0, p_sel.log(), torch.zeros((), device=p_sel.device))).sum(-1)).cpu()
    k = min(top_k, T)
    tw, ti = (t.cpu() for t in p_sel.topk(k, dim=-1)) if k else (p_sel[..., :0].cpu(), p_sel[..., :0].long().cpu())
    for hi, h in enumerate(hs):
        for j, (g, step, p) in enumerate(qs):
            head = {"example_id": e.example_id, "query_group": g, "step": step, "layer": layer, "head": h}
            for r, region in enumerate(REGIONS):
                mass_rows.append({**head, "region": region, "mass": float(mass[hi, j, r])})
            ent_rows.append({**head, "position": p, "entropy": float(ent[hi, j])})
            for rank in range(k):
                kp = int(ti[hi, j, rank])
                top_rows.append({**head, "rank": rank, "key_position": kp, "token": names[kp],
                                 "region": "self" if kp == p else REGIONS[int(base[kp])],
                                 "weight": float(tw[hi, j, rank])})
