"""The logit lens at latent positions: a trace's residuals read through the model's final norm and unembedding.

The readout of a residual ``h`` (residual layer ``l`` at position ``p``) is ``log_softmax(lm_head(norm(h)))``:
the distribution over the token at ``p + 1`` the model would give if the rest of the network did nothing
(nostalgebraist 2020, "interpreting GPT: the logit lens"). At the last layer it is the model's own next-token
distribution, which is the check that the lens reads the right tensor (``tests/readouts/test_lens.py``).
CODI's authors read their latents the same way, through ``lm_head`` of the last hidden state before the
projection (``zhenyi4/codi`` ``probe_latent_token.py`` at 9a13e128).

Residuals come from the trace where it recorded them (latent positions; prompt positions captured with
``capture_positions``); other positions (markers, answer tokens) are read from one teacher-forced forward
through the runner's own engine with the recorded latents fed (the replay prefill), so nothing is generated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from latentprobe.display import SummarizedResult
from latentprobe.errors import InputError, StepOutOfRangeError
from latentprobe.readouts.tables import LENS_CELLS, LENS_COMMITMENT, LENS_ROWS, LENS_TRAJECTORY, TOP
from latentprobe.trace import ExampleTrace, LatentTrace, Segment

__all__ = ["LensResult", "lens", "lens_logprobs", "POSITION_GROUPS", "HEADS"]

#: Position groups the lens reads (see :func:`lens`).
POSITION_GROUPS = ("latents", "open", "close", "first_answer", "answer", "last_prompt")
#: How the final-norm output reaches ``lm_head`` (see :func:`lens`).
HEADS = ("model", "none", "projection")
_RESERVED = (TOP, "answer", "gold")


@dataclass(frozen=True, repr=False)
class LensResult(SummarizedResult):
    """What :func:`lens` read.

    Parameters
    ----------
    table : pandas.DataFrame
        :class:`~latentprobe.readouts.tables.LENS_ROWS`: per cell (example, position, layer) its top-k tokens
        (``target == "top"``) and the token of every target, each with its log-probability and rank.
    cells : pandas.DataFrame
        :class:`~latentprobe.readouts.tables.LENS_CELLS`: per cell the entropy, the top-1 token, the
        log-probability of the token the run had next, and the KL from the last layer's readout at the same
        position (``kl_to_last``: the logit lens's column of a tuned-lens comparison).
    commitment : pandas.DataFrame
        :class:`~latentprobe.readouts.tables.LENS_COMMITMENT`: per example, the first latent step and layer at
        which the lens's top-1 is the run's own answer's first token.
    trajectory : pandas.DataFrame
        :class:`~latentprobe.readouts.tables.LENS_TRAJECTORY`: per target, step and layer, the median rank
        over examples (the rank-trajectory heatmap's data).
    config : dict
        The settings (positions, layers, top_k, head, where the residuals came from).

    Notes
    -----
    A readout says what the unembedding makes of a residual, not what the model uses: intermediate layers are
    not trained to be read by ``lm_head`` (a low rank there may be a basis mismatch, which a tuned lens
    corrects), and a latent that decodes to the answer need not cause it (test that with ``z_to_y``).
    """

    table: pd.DataFrame
    cells: pd.DataFrame
    commitment: pd.DataFrame
    trajectory: pd.DataFrame
    config: dict[str, Any] = field(default_factory=dict)

    def target(self, name: str = "answer", group: str = "latents") -> pd.DataFrame:
        """The rows scoring one target in one position group.

        Parameters
        ----------
        name : str
            ``"answer"``, ``"gold"`` or a user-given target's name.
        group : str
            A position group.

        Returns
        -------
        pandas.DataFrame
            :class:`~latentprobe.readouts.tables.LENS_ROWS` rows.
        """
        t = self.table
        return t[(t["target"] == name) & (t["position_group"] == group)].reset_index(drop=True)


def lens_logprobs(runner: Any, h: Float[Tensor, "n d"], *, head: str = "none",
                  headed: Sequence[bool] | None = None) -> Float[Tensor, "n vocab"]:
    """The lens readout of residuals: ``log_softmax(lm_head(g(norm(h))))`` in float32.

    Parameters
    ----------
    runner : LatentRunner
        The model's runner (its final norm, ``lm_head`` and the family's head or projection).
    h : Tensor
        ``[n, d]`` residuals (any residual layer).
    head : str
        ``"none"``: ``g`` is the identity. ``"model"``: ``g`` is the spec's head (LVR's ``lvr_head``) on the rows
        ``headed`` marks, as the model itself reads them. ``"projection"``: ``g`` is the family's latent map on
        every row (CODI's projection, LVR's head): the fed latent read as if it were a final-norm output.
    headed : sequence of bool, optional
        For ``head="model"``: the rows the spec's head runs on (default none).

    Returns
    -------
    Tensor
        ``[n, vocab]`` log-probabilities (the full ``lm_head`` width), on the CPU.

    Examples
    --------
    >>> from latentprobe import toy
    >>> tm = toy.load("mediated")
    >>> runner = tm.runner()
    >>> trace = runner.run(tm.prompts(tm.examples("test", 2)), tm.images(tm.examples("test", 2)), progress=False)
    >>> lens_logprobs(runner, trace[0].hidden[:, -1]).shape[0] == trace[0].num_latents
    True
    """
    if head not in HEADS:
        raise InputError(f"lens: head={head!r}; use one of {', '.join(HEADS)}.")
    parts, dec = runner.parts, runner._decoder
    w = parts.lm_head.weight
    with torch.no_grad():
        x = parts.norm(h.to(w.device, w.dtype))
        fn = None
        if head == "projection":
            fn = dec.head if dec.head is not None else dec.projection
            if fn is None:
                raise InputError(f"lens(head='projection'): spec {runner.spec.name!r} has no head or projection "
                                 "module; use head='model' or 'none'.")
        elif head == "model" and dec.head is not None and headed is not None and any(headed):
            fn = dec.head
        if fn is not None:
            rows = torch.ones(x.shape[0], dtype=torch.bool) if head == "projection" else torch.tensor(list(headed))
            p = next(fn.parameters(), None) if isinstance(fn, torch.nn.Module) else None
            y = fn(x[rows].to(p.device, p.dtype) if p is not None else x[rows])
            x = x.clone()
            x[rows.to(x.device)] = y.to(x.device, x.dtype)
        logits = parts.lm_head(x).float()
    return torch.log_softmax(logits, dim=-1).cpu()


# ---------------------------------------------------------------------------------------------- positions
def _positions(e: ExampleTrace, group: str) -> list[tuple[int, int]]:
    """``(step, position)`` pairs of one position group in one example."""
    segs = e.segments.tolist()
    n_ans = int(e.answer_ids.numel())
    if group == "latents":
        return list(enumerate(e.latent_positions.tolist()))
    if group == "open":
        return list(enumerate(p for p, s in enumerate(segs) if s == Segment.OPEN))
    if group == "close":  # the marker itself, not tokens forced after it
        return list(enumerate(p for p, s in enumerate(segs)
                              if s == Segment.CLOSE and p > 0 and segs[p - 1] in (Segment.LATENT, Segment.OPEN)))
    if group == "first_answer":
        return [(0, e.answer_start)] if n_ans else []
    if group == "answer":
        return [(j, e.answer_start + j) for j in range(n_ans)]
    return [(-1, e.prompt_len - 1)]  # last_prompt


def _recorded_layers(trace: LatentTrace, n_res: int) -> list[int]:
    cl = trace.config.get("capture_layers", "all")
    return list(range(n_res)) if cl == "all" else [int(l) for l in cl]


def _check_layers(layers: Sequence[int] | None, recorded: list[int], n_res: int) -> list[int]:
    if layers is None:
        return list(recorded)
    if isinstance(layers, (str, bytes)) or any(isinstance(l, bool) or not isinstance(l, (int, np.integer))
                                               for l in layers):
        raise InputError(f"lens: layers={layers!r}; give residual layer numbers (0..{n_res - 1}) or None.")
    out = sorted({int(l) % n_res if -n_res <= int(l) < 0 else int(l) for l in layers})
    bad = [l for l in out if not 0 <= l < n_res]
    if bad or not out:
        raise StepOutOfRangeError(f"lens: layers {bad or '[]'} out of range: residual layers are 0..{n_res - 1} "
                                  "(0 = the fed vector, i = output of decoder layer i-1).")
    return out


def _teacher_forced(runner: Any, exs: list[ExampleTrace], want: list[list[int]], layers: list[int],
                    batch_size: int, prompt_only: bool = False) -> list[dict[int, Tensor]]:
    """Residuals ``[len(layers), d]`` at the wanted positions, from the replay prefill of each recorded
    sequence (recorded latents fed; one forward per batch; nothing generated). ``prompt_only``: prefill the
    prompts alone, the run's own first forward (the same batches give the same numbers)."""
    from latentprobe.engine.loop import GenerationConfig
    from latentprobe.engine.modes import replay_rows

    dec = runner._decoder
    saved = (dec.trace_dtype, dec.capture_layers)
    dec.trace_dtype, dec.capture_layers = None, tuple(layers)
    out: list[dict[int, Tensor]] = []
    try:
        for i in range(0, len(exs), batch_size):
            chunk, chunk_want = exs[i:i + batch_size], want[i:i + batch_size]
            rows, _ = replay_rows(dec, chunk, [[] for _ in chunk], (0,), None)
            if prompt_only:
                for r, e in zip(rows, chunk):
                    n = e.prompt_len
                    r.ids, r.segs, r.z_at = r.ids[:n], r.segs[:n], {p: z for p, z in r.z_at.items() if p < n}
            got = dec.run(rows, GenerationConfig(max_new_tokens=1), None, gather_extra=chunk_want, decode=False,
                          read_logits=False)
            out.extend({p: g[p].residual for p in ps} for g, ps in zip(got, chunk_want))
    finally:
        dec.trace_dtype, dec.capture_layers = saved
    return out


def _residuals(runner: Any, trace: LatentTrace, groups: Sequence[str], layers: list[int], batch_size: int
               ) -> tuple[list[list[tuple[str, int, int, Tensor]]], str]:
    """Per example, ``(group, step, position, [len(layers), d])`` for every wanted position, and the source."""
    n_res = runner.n_layers + 1
    recorded = _recorded_layers(trace, n_res)
    have = all(l in recorded for l in layers)
    idx = [recorded.index(l) for l in layers] if have else []
    cells: list[list[tuple[str, int, int, Tensor | None]]] = []
    missing: list[list[int]] = []
    for e in trace:
        mine: list[tuple[str, int, int, Tensor | None]] = []
        caps = e.captured_positions.tolist() if e.captured_positions is not None else []
        for g in groups:
            for step, p in _positions(e, g):
                res = None
                if have and g == "latents":
                    res = e.hidden[step, idx]
                elif have and p in caps and e.captured_hidden is not None:
                    res = e.captured_hidden[caps.index(p), idx]
                mine.append((g, step, p, res))
        cells.append(mine)
        missing.append(sorted({p for _, _, p, r in mine if r is None}))
    source = "trace"
    if any(missing):
        source = "trace + teacher-forced forward" if any(r is not None for m in cells for *_, r in m) else \
            "teacher-forced forward"
        got: list[dict[int, Tensor]] = [{} for _ in missing]
        for prompt in (True, False):  # prompt positions from the prompts' prefill, the rest from the whole sequence
            part = [[p for p in m if (p < e.prompt_len) == prompt] for m, e in zip(missing, trace)]
            todo = [i for i, m in enumerate(part) if m]
            if todo:
                res = _teacher_forced(runner, [trace[i] for i in todo], [part[i] for i in todo], layers, batch_size,
                                      prompt_only=prompt)
                for i, g in zip(todo, res):
                    got[i].update(g)
        for i, g in enumerate(got):
            cells[i] = [(gr, s, p, g[p] if r is None else r) for gr, s, p, r in cells[i]]
    return cells, source  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------- targets
def _token_of(tokenizer: Any, value: Any, where: str) -> int:
    """The first token id of a target: an int id, a list of ids, or a string (tokenised without special tokens)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, np.integer)) for v in value):
        return int(value[0])
    if isinstance(value, str) and value != "":
        ids = tokenizer(value, add_special_tokens=False)["input_ids"]
        if ids:
            return int(ids[0])
    raise InputError(f"lens: {where}: target value {value!r} gives no token; give a non-empty string, a token "
                     "id or a list of ids.")


def _per_example(values: Any, trace: LatentTrace, name: str) -> list[Any]:
    """One value per example (``None``: no target there) from a sequence in trace order or a mapping by id."""
    if isinstance(values, Mapping):
        return [values.get(e.example_id) for e in trace]
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) != len(trace):
        raise InputError(f"lens: target {name!r}: give one value per example ({len(trace)}, in the trace's order) "
                         "or a dict {example_id: value}.")
    return list(values)


def _targets(runner: Any, trace: LatentTrace, gold: Any, targets: Mapping[str, Any] | None) -> list[dict[str, int]]:
    """Per example, ``{target name: token id}``: the run's own answer, the gold, and the user's targets."""
    if targets is not None and not isinstance(targets, Mapping):
        raise InputError(f"lens: targets={type(targets).__name__}; give a dict {{name: values per example}}.")
    named: dict[str, list[Any]] = {}
    if gold is not None:
        named["gold"] = _per_example(gold, trace, "gold")
    for name, values in (targets or {}).items():
        if not isinstance(name, str) or not name or name in _RESERVED:
            raise InputError(f"lens: target name {name!r}: give a non-empty name other than {', '.join(_RESERVED)}.")
        named[name] = _per_example(values, trace, name)
    out = []
    for i, e in enumerate(trace):
        mine = {"answer": int(e.answer_ids[0])} if e.answer_ids.numel() else {}
        for name, vals in named.items():
            if vals[i] is not None:
                mine[name] = _token_of(runner.tokenizer, vals[i], f"target {name!r}, example {e.example_id!r}")
        out.append(mine)
    return out


# ---------------------------------------------------------------------------------------------- the readout
def lens(runner: Any, trace: LatentTrace, *, positions: Sequence[str] = ("latents",), layers: Sequence[int] | None = None,
         top_k: int = 5, gold: Any = None, targets: Mapping[str, Any] | None = None, head: str = "model",
         batch_size: int = 8) -> LensResult:
    """Read a trace's residuals through the model's final norm and unembedding (the logit lens).

    Parameters
    ----------
    runner : LatentRunner
        The runner that recorded ``trace`` (or one on the same model and spec).
    trace : LatentTrace
        The run to read.
    positions : sequence of str
        Position groups: ``"latents"`` (every latent slot; step = latent step), ``"open"`` / ``"close"`` (the
        markers; step = the marker's index), ``"first_answer"`` (the answer's first token), ``"answer"`` (every
        answer token; step = its index), ``"last_prompt"`` (step -1). The readout at a position is the
        distribution over the *next* token: the close marker's readout is the answer's first token's
        distribution.
    layers : sequence of int, optional
        Residual layers (0 = the fed vector, ``i`` = output of decoder layer ``i-1``; negative counts from the
        last); default the layers the trace recorded.
    top_k : int
        Top tokens kept per cell.
    gold : sequence or dict, optional
        The gold answer per example (string, token id or ids; in trace order or ``{example_id: value}``); its first
        token is the ``"gold"`` target. Tokenised without special tokens: mind a leading space on BPE vocabularies.
    targets : dict, optional
        Further targets ``{name: values per example}`` (intermediate results, say), read like ``gold``.
    head : str
        ``"model"`` (default): what ``lm_head`` reads in the model, the spec's head included where it runs (LVR's
        ``lvr_head`` at latent positions); ``"none"``: the plain logit lens everywhere; ``"projection"``: through
        the family's latent map first (CODI's projection, LVR's head) at every position.
    batch_size : int
        Sequences per teacher-forced forward (positions the trace did not record). Prompt positions are read from
        the prompts' prefill alone: with the run's own ``batch_size`` (and all its examples) that is the run's
        first forward, number for number.

    Returns
    -------
    LensResult

    Raises
    ------
    InputError
        An unknown position group or head, a bad ``top_k``, or targets that do not match the examples.
    StepOutOfRangeError
        Layers out of range.

    Examples
    --------
    >>> from latentprobe import readouts, toy
    >>> tm = toy.load("mediated")
    >>> ex = tm.examples("test", 3)
    >>> runner = tm.runner()
    >>> trace = runner.run(tm.prompts(ex), tm.images(ex), progress=False)
    >>> res = readouts.lens(runner, trace, positions=("latents", "close"), top_k=3)
    >>> sorted(res.table.position_group.unique()), int(res.table.layer.max()) == runner.n_layers
    (['close', 'latents'], True)
    >>> list(res.commitment.columns[:3])
    ['example_id', 'answer_token_id', 'committed']
    """
    from latentprobe.validate import positive_int

    positive_int(top_k, "top_k", where="lens")
    positive_int(batch_size, "batch_size", where="lens")
    groups = [positions] if isinstance(positions, str) else list(positions)
    bad = [g for g in groups if g not in POSITION_GROUPS]
    if bad or not groups:
        raise InputError(f"lens: positions {bad or '[]'}: use some of {', '.join(POSITION_GROUPS)}.")
    if head not in HEADS:
        raise InputError(f"lens: head={head!r}; use one of {', '.join(HEADS)}.")
    n_res = runner.n_layers + 1
    layers = _check_layers(layers, _recorded_layers(trace, n_res), n_res)
    tgt = _targets(runner, trace, gold, targets)
    cells, source = _residuals(runner, trace, list(dict.fromkeys(groups)), layers, batch_size)
    names: dict[int, str] = {}

    def text(t: int) -> str:
        if t not in names:
            names[t] = runner.tokenizer.decode([t])
        return names[t]

    headed_segs = {Segment.LATENT} | ({Segment.OPEN} if runner.spec.head == "open_and_latent" else set())
    rows, cell_rows = [], []
    for e, mine, tg in zip(trace, cells, tgt):
        if not mine:
            continue
        ids, segs = e.input_ids.tolist(), e.segments.tolist()
        h = torch.stack([r.float() for *_, r in mine])  # [m, L, d]
        m, L = h.shape[0], h.shape[1]
        headed = [segs[p] in headed_segs for _, _, p, _ in mine for _ in range(L)]
        lp = lens_logprobs(runner, h.reshape(m * L, -1), head=head, headed=headed).reshape(m, L, -1)
        k = min(top_k, lp.shape[-1])
        top_v, top_i = lp.topk(k, dim=-1)
        ent = -(lp.exp() * lp).nan_to_num().sum(-1)
        kl = None
        if layers[-1] == runner.n_layers:  # KL(final || layer): how far each layer's readout is from the model's
            fin = lp[:, -1:]
            kl = (fin.exp() * (fin - lp)).nan_to_num().sum(-1).clamp(min=0.0)
        tids = torch.tensor(list(tg.values()), dtype=torch.long)
        t_lp = lp[..., tids] if len(tids) else None
        t_rank = (lp[..., None, :] > t_lp[..., None]).sum(-1) + 1 if t_lp is not None else None
        for c, (g, step, p, _) in enumerate(mine):
            nxt = ids[p + 1] if p + 1 < len(ids) else -1
            for j, layer in enumerate(layers):
                base = {"example_id": e.example_id, "position_group": g, "step": step, "layer": layer, "position": p}
                for r in range(k):
                    t = int(top_i[c, j, r])
                    rows.append({**base, "token_id": t, "logprob": float(top_v[c, j, r]), "rank": r + 1,
                                 "target": TOP, "token": text(t)})
                for q, (name, t) in enumerate(tg.items()):
                    rows.append({**base, "token_id": t, "logprob": float(t_lp[c, j, q]), "rank": int(t_rank[c, j, q]),
                                 "target": name, "token": text(t)})
                cell_rows.append({**base, "entropy": float(ent[c, j]), "top1_token_id": int(top_i[c, j, 0]),
                                  "top1_logprob": float(top_v[c, j, 0]), "next_token_id": nxt,
                                  "next_logprob": float(lp[c, j, nxt]) if nxt >= 0 else float("nan"),
                                  "kl_to_last": float(kl[c, j]) if kl is not None else float("nan")})
    table, cells_t = LENS_ROWS.frame(rows), LENS_CELLS.frame(cell_rows)
    config = {"positions": groups, "layers": layers, "top_k": top_k, "head": head, "source": source,
              "targets": sorted({n for t in tgt for n in t})}
    return LensResult(table, cells_t, commitment(table, cells_t, trace), trajectory(table), config)


def commitment(table: pd.DataFrame, cells: pd.DataFrame, trace: LatentTrace) -> pd.DataFrame:
    """Early commitment per example: the first latent (step, then layer) whose lens top-1 is the answer token.

    Parameters
    ----------
    table, cells : pandas.DataFrame
        A :class:`LensResult`'s ``table`` and ``cells``.
    trace : LatentTrace
        The run read.

    Returns
    -------
    pandas.DataFrame
        :class:`~latentprobe.readouts.tables.LENS_COMMITMENT`, one row per example.
    """
    lat = cells[cells["position_group"] == "latents"]
    out = []
    for e in trace:
        ans = int(e.answer_ids[0]) if e.answer_ids.numel() else -1
        mine = lat[(lat["example_id"] == e.example_id) & (lat["top1_token_id"] == ans)].sort_values(["step", "layer"])
        hit = ans >= 0 and len(mine) > 0
        out.append({"example_id": e.example_id, "answer_token_id": ans, "committed": bool(hit),
                    "first_step": int(mine["step"].iloc[0]) if hit else -1,
                    "first_layer": int(mine["layer"].iloc[0]) if hit else -1, "n_latents": e.num_latents})
    return LENS_COMMITMENT.frame(out)


def trajectory(table: pd.DataFrame) -> pd.DataFrame:
    """Median rank, mean log-probability and top-1 rate of every target per (position group, step, layer).

    Parameters
    ----------
    table : pandas.DataFrame
        A :class:`LensResult`'s ``table``.

    Returns
    -------
    pandas.DataFrame
        :class:`~latentprobe.readouts.tables.LENS_TRAJECTORY`.
    """
    t = table[table["target"] != TOP]
    if t.empty:
        return LENS_TRAJECTORY.frame([])
    keys = ["position_group", "target", "step", "layer"]
    agg = t.groupby(keys, sort=True).agg(median_rank=("rank", "median"), mean_logprob=("logprob", "mean"),
                                          top1_rate=("rank", lambda r: float((r == 1).mean())),
                                          n=("example_id", "nunique")).reset_index()
    return LENS_TRAJECTORY.frame(agg)
