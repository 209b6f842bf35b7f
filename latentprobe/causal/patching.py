"""Activation patching at any position group x layer, from counterfactual sources (:func:`patch`).

The residual stream of the base run (the output of decoder layer ``l - 1``, residual layer ``l``) is
overwritten at one *position group* by the source run's residual at the matching positions, and the
answer is read in one of the three intervention modes (:mod:`latentprobe.engine.modes`). Position groups:

* ``image``: image placeholder tokens (segment ``IMAGE``);
* ``question``: prompt text tokens (segment ``TEXT`` inside the prompt: the question and any template text);
* ``markers``: the open and close markers (and tokens forced after the close marker);
* ``latents``: the latent slots (residual layer 0 is the fed vector itself);
* ``answer``: the recorded answer tokens.

Matching: the ``i``-th position of a group in the base run takes the ``i``-th position of the same
group in the source run. Groups of different lengths are refused unless ``align="end"`` (the last
``min(n_base, n_source)`` positions of each are matched).

Where a mode regenerates a group (``propagate`` regenerates latents, markers after the first latent and the
answer; ``redecode`` the answer), positions outside the mode's recorded prefix cannot be written before
they exist: those cells are left out and listed in ``config["skipped"]``; only ``latents`` in
``propagate`` is patched while it is generated (every step, at the same layer). Route patching
(``routes=True``, redecode): ``image|latents_frozen`` patches the image tokens while the latents' residuals
at every layer are held at the base run's values; ``latents|image_frozen`` patches the latents while the image
tokens are held at the base run's values.

Patched rows of one example share the prefill of the positions before the first patched one with the
mode's control (:func:`latentprobe.engine.fork.prefill_shared`), as in
:meth:`~latentprobe.engine.LatentRunner.intervene_many`: one copy of that prefix's KV cache, attended by every
row (:class:`~latentprobe.engine.prefix_cache.SharedPrefixCache`; models with a sliding window copy it per row). Every batch holds the mode's control, and the
source's states are read from a batch of the source's controls laid out exactly as the patched batch (same
rows, same shared prefix), so self-patching (source = base) changes nothing, to the bit, in float32. The
cost: about two forward passes (three with route cells) per batch of ``max_batch - 1`` cells.

What it does not prove: a flip says the patched states carry information the answer uses *given the rest of
the run held at the base values*; a cell with no flip can still matter jointly with another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from latentprobe.causal.common import MODES, _first_lp, _kl
from latentprobe.causal.patch_schema import PATCH_ROWS
from latentprobe.causal.patch_stats import PatchResult, summarize_patching
from latentprobe.engine import modes as M
from latentprobe.engine.fork import shared_length
from latentprobe.engine.loop import GenerationConfig
from latentprobe.engine.many import check_prefix_cache, prefill_and_decode
from latentprobe.engine.patching import InterventionMode
from latentprobe.engine.prefix_cache import supports_shared
from latentprobe.engine.decoding import config_from_record
from latentprobe.errors import InputError
from latentprobe.interventions import Intervention
from latentprobe.perturbations import InputSet, Perturbation
from latentprobe.trace import ExampleTrace, LatentTrace, Segment

if TYPE_CHECKING:  # pragma: no cover
    from latentprobe.engine import LatentRunner

__all__ = ["GROUPS", "ROUTES", "patch", "patch_rows", "group_positions"]

#: The position groups, in table order.
GROUPS = ("image", "question", "markers", "latents", "answer")
#: The route-patching conditions (redecode).
ROUTES = ("image|latents_frozen", "latents|image_frozen")


def group_positions(e: ExampleTrace, group: str) -> list[int]:
    """Positions of one position group in a recorded example.

    Parameters
    ----------
    e : ExampleTrace
        The recorded example.
    group : str
        One of :data:`GROUPS`.

    Returns
    -------
    list[int]

    Examples
    --------
    >>> import torch
    >>> from latentprobe.trace import ExampleTrace
    >>> e = ExampleTrace(index=0, example_id="a", input_ids=torch.arange(6), segments=torch.tensor([0, 1, 2, 3, 4, 5]),
    ...                  prompt_len=2, latent_positions=torch.tensor([3]), z=torch.zeros(1, 4),
    ...                  h_src=torch.zeros(1, 4), hidden=torch.zeros(1, 2, 4), answer_start=5,
    ...                  answer_ids=torch.tensor([5]), answer_logprobs=torch.zeros(1), answer_text="x", finished=True)
    >>> [group_positions(e, g) for g in GROUPS]
    [[1], [0], [2, 4], [3], [5]]
    """
    segs = e.segments.tolist()
    if group == "image":
        return [p for p, s in enumerate(segs) if s == Segment.IMAGE]
    if group == "question":
        return [p for p in range(e.prompt_len) if segs[p] == Segment.TEXT]
    if group == "markers":
        return [p for p, s in enumerate(segs) if s in (Segment.OPEN, Segment.CLOSE)]
    if group == "latents":
        return e.latent_positions.tolist()
    if group == "answer":
        return list(range(e.answer_start, e.answer_start + int(e.answer_ids.numel())))
    raise InputError(f"position group {group!r}; use one of {list(GROUPS)}.")


class _SourceLatents(Intervention):
    """Writes the source run's ``values[step, layer]`` (``[K, L+1, d]``; layer 0: its fed vector) at a latent step
    (internal)."""

    name = "source_latents"

    def __init__(self, values: Tensor) -> None:
        self.values = values

    def apply(self, z: Tensor, step: int, example: Any, layer: int = 0) -> Tensor:
        return z.clone() if self.values.ndim < 3 else self.values[step, layer].to(z.dtype)  # empty: a placeholder

    def to_config(self) -> dict[str, Any]:
        return {"type": "source_latents"}


def _prefix_end(e: ExampleTrace, mode: InterventionMode) -> int:
    """First position a mode regenerates (everything before it is fed as recorded)."""
    if mode is InterventionMode.REPLAY:
        return e.seq_len
    if mode is InterventionMode.REDECODE or not e.latent_positions.numel():
        return e.answer_start
    return int(e.latent_positions[0])


def _match(base: list[int], src: list[int], align: str | None, where: str) -> tuple[list[int], list[int]]:
    if len(base) == len(src):
        return base, src
    if align == "end":
        n = min(len(base), len(src))
        return base[len(base) - n:], src[len(src) - n:]
    raise InputError(f"{where}: the base run has {len(base)} positions in this group and the source run {len(src)}; "
                     "patching matches the i-th position of each, so they must agree. Pass align='end' to match the "
                     "last min(n_base, n_source) positions, or choose pairs whose groups have the same length.")


def _resolve_sources(runner: LatentRunner, inputs: InputSet, perturbation: Any, kw: dict[str, Any],
                     indices: Sequence[int] | None = None) -> tuple[LatentTrace, LatentTrace, list[str]]:
    """The base trace, the source trace (one source example per base example, same order) and the source ids;
    ``indices``: only those base examples (sources still drawn from the whole ``inputs``)."""
    idx = list(range(len(inputs))) if indices is None else [int(i) for i in indices]
    if isinstance(perturbation, Perturbation):
        base = runner.run(**inputs.select(idx).run_kwargs(), **kw)
        pin = perturbation.bind(inputs).apply(inputs, idx)
        src = runner.run(**pin.run_kwargs(), **kw)
        ids = [f"{perturbation.name}:{inputs.example_ids[i]}" for i in idx]
        return base, src, ids
    if isinstance(perturbation, Mapping):
        pairs = {str(k): str(v) for k, v in perturbation.items()}
        known = set(inputs.example_ids)
        missing = [i for kv in pairs.items() for i in kv if i not in known]
        if missing:
            raise InputError(f"pairs name example ids {missing[:5]} not in inputs.example_ids; map each base id to the "
                             "id of its source, both in the inputs.")
        mine = {inputs.example_ids[i] for i in idx}
        pairs = {k: v for k, v in pairs.items() if k in mine}
        need = [i for i, e in enumerate(inputs.example_ids) if e in mine or e in set(pairs.values())]
        base = runner.run(**inputs.select(need).run_kwargs(), **kw)
        by_id = {e.example_id: e for e in base.examples}
        keep = [e for e in base.examples if e.example_id in pairs]
        ids = [pairs[e.example_id] for e in keep]
        return (LatentTrace(keep, base.spec, base.config), LatentTrace([by_id[i] for i in ids], base.spec, base.config),
                ids)
    raise InputError(f"perturbation={type(perturbation).__name__}: give a latentprobe.perturbations.Perturbation "
                     "(e.g. an X -> Z perturbation) or a pairs mapping {example id: source example id}.")


def _forward(runner: Any, e: ExampleTrace, rows: list, extra: list[list[int]], mode: InterventionMode,
             cfg: GenerationConfig, proc: Any = None, shared: bool = True) -> tuple[list[ExampleTrace], list[dict[int, Any]]]:
    """Prefill (shared prefix) and, except in replay, decode ``rows`` of example ``e``; the finished examples
    and what each row's prefill gathered."""
    dec, tok = runner._decoder, runner.tokenizer
    pre = prefill_and_decode(dec, rows, [0] * len(rows), extra, mode, cfg, proc,
                             shared and supports_shared(dec.parts.layers))
    if mode is InterventionMode.REPLAY:
        return M.replay_finish(dec, tok, [e] * len(rows), rows, pre.gathered), pre.gathered
    return M.resume_finish(dec, tok, rows, pre.gathered, mode), pre.gathered


def _states(runner: Any, e: ExampleTrace, mode: InterventionMode, want: list[int], n_rows: int, cut: int,
            cfg: GenerationConfig, proc: Any = None, shared: bool = True) -> list[tuple[dict[int, Tensor], Tensor]]:
    """Per row of a batch of ``n_rows`` unpatched controls of ``e`` whose shared prefill stops at ``cut`` (the layout
    of the patched batch): residuals ``[L+1, d]`` at ``want`` positions, and the latents' ``[K, L+1, d]``. Row ``j``
    feeds condition ``j``, so self-patching writes back exactly what the control computes (same shapes, same
    row)."""
    rows, extra = [], []
    for _ in range(n_rows):
        r, ex = _rows(runner._decoder, e, mode, None, [], 0)
        r.prefix_cut = cut
        rows.append(r)
        extra.append(sorted(set(ex) | {p for p in want if p < len(r.ids)}))
    done, gathered = _forward(runner, e, rows, extra, mode, cfg, proc, shared)
    return [({p: g[p].residual for p in want if p in g}, _latent_values(d)) for d, g in zip(done, gathered)]


def _latent_values(d: ExampleTrace) -> Tensor:
    """``[K, L+1, d]``: the residuals at the latent slots, with layer 0 the fed vector itself (the decoder's input
    there can differ: GPT-2 adds position embeddings)."""
    out = d.hidden.clone()
    if out.shape[0]:
        out[:, 0] = d.z.to(out.dtype)
    return out


def _rows(dec: Any, e: ExampleTrace, mode: InterventionMode, fn: Any, steps: list[int], layer: int) -> tuple[Any, list]:
    if mode is InterventionMode.REPLAY:
        rs, ex = M.replay_rows(dec, [e], [steps], (layer,), fn)
        return rs[0], ex[0]
    r = M.resume_rows(dec, [e], [steps], (layer,), fn, mode, False)[0]
    return r, sorted(r.z_at)


def _conditions(e: ExampleTrace, s: ExampleTrace, mode: InterventionMode, groups: Sequence[str], layers: list[int],
                routes: bool, align: str | None, skipped: list[dict[str, Any]]) -> list[tuple[str, int, dict]]:
    """``(group, layer, plan)`` of one example in one mode; ``plan`` maps ``"patch"``/``"freeze"`` to position pairs."""
    end = _prefix_end(e, mode)
    out = []
    names = list(groups) + (list(ROUTES) if routes and mode is InterventionMode.REDECODE else [])
    for g in names:
        pg, frozen = (g.split("|")[0], "latents" if g.startswith("image") else "image") if "|" in g else (g, None)
        where = f"example {e.example_id!r}, group {g!r}, mode {mode.value!r}"
        bp, sp = _match(group_positions(e, pg), group_positions(s, pg), align, where)
        steps_mode = pg == "latents"  # latents go through the engine's per-step patches (layer 0: the fed vector)
        if not bp:
            skipped.append({"example_id": e.example_id, "mode": mode.value, "group": g, "reason": "no positions"})
            continue
        if not steps_mode and max(bp) >= end:
            skipped.append({"example_id": e.example_id, "mode": mode.value, "group": g,
                            "reason": f"the mode regenerates positions >= {end}"})
            continue
        if steps_mode and len(bp) != e.latent_positions.numel():
            skipped.append({"example_id": e.example_id, "mode": mode.value, "group": g, "reason": "latent counts differ"})
            continue
        fz = group_positions(e, frozen) if frozen else []
        for layer in layers:
            if layer == 0 and pg != "latents":
                continue  # residual layer 0 of a token is its embedding: patch the input instead
            out.append((g, layer, {"patch": list(zip(bp, sp)), "freeze": fz, "steps": steps_mode}))
    return out


def _score(row: ExampleTrace, ref: ExampleTrace, src: ExampleTrace, gold: str | None) -> dict[str, Any]:
    T = PATCH_ROWS
    lp, rlp = _first_lp(row), _first_lp(ref)
    ref_tok = int(ref.answer_ids[0]) if ref.answer_ids.numel() else None
    src_tok = int(src.answer_ids[0]) if src.answer_ids.numel() else None

    def at(d: Tensor | None, t: int | None) -> float:
        return float(d[t]) if d is not None and t is not None else np.nan

    def corr(a: str) -> float:
        return np.nan if gold is None else float(a.strip() == str(gold).strip())

    flip = row.answer_text != ref.answer_text
    return {T.ANSWER: row.answer_text, T.REF_ANSWER: ref.answer_text, T.SOURCE_ANSWER: src.answer_text, T.GOLD: gold,
            T.CORRECT: corr(row.answer_text), T.REF_CORRECT: corr(ref.answer_text), T.FLIP: flip,
            T.TO_SOURCE: flip and row.answer_text == src.answer_text,
            T.CLEAN_LOGPROB: at(lp, ref_tok), T.REF_CLEAN_LOGPROB: at(rlp, ref_tok),
            T.SOURCE_LOGPROB: at(lp, src_tok), T.REF_SOURCE_LOGPROB: at(rlp, src_tok), T.KL: _kl(ref, row)}


def _run_mode(runner: Any, base: LatentTrace, src: LatentTrace, mode: InterventionMode, groups: Sequence[str],
              layers: list[int], routes: bool, align: str | None, max_batch: int, skipped: list,
              proc: Any = None, shared: bool = True) -> list[list]:
    """Per example: ``[(group, layer, n_positions, patched example, its batch's control)]``, the control first (group
    ``"none"``)."""
    dec = runner._decoder
    cfg = config_from_record(base.config, max_new_tokens=None, seed=None)
    zero = torch.zeros(0)
    out = []
    for e, s in zip(base.examples, src.examples):
        todo = _conditions(e, s, mode, groups, layers, routes, align, skipped)
        results: list = []
        per = max(1, max_batch - 1)
        for c0 in range(0, max(len(todo), 1), per):  # every batch holds the control: cells are compared within a layout
            chunk = [("none", -1, None)] + todo[c0:c0 + per]
            def build(s_st: list | None, b_st: list | None) -> tuple[list, list]:
                rows, extra = [], []
                for j, (g, layer, pl) in enumerate(chunk):
                    fn = None
                    if pl is not None and pl["steps"]:
                        fn = _SourceLatents(zero if s_st is None else s_st[j][1])
                    r, ex = _rows(dec, e, mode, fn, list(range(len(pl["patch"]))) if fn else [], max(layer, 0))
                    if pl is not None:  # placeholders first: where the shared prefill stops is known before the values
                        r.position_patches = _plan_patches(pl, layer, None if s_st is None else s_st[j][0],
                                                           None if b_st is None else b_st[j][0], runner.n_layers)
                    rows.append(r)
                    extra.append(ex)
                return rows, extra

            cut = shared_length(build(None, None)[0])
            need = sorted({sp for _, _, pl in chunk if pl is not None and not pl["steps"] for _, sp in pl["patch"]})
            s_st = _states(runner, s, mode, need, len(chunk), cut, cfg, proc, shared)
            fz = sorted({p for _, _, pl in chunk if pl is not None for p in pl["freeze"]})
            b_st = _states(runner, e, mode, fz, len(chunk), cut, cfg, proc, shared) if fz else [({}, zero)] * len(chunk)
            rows, extra = build(s_st, b_st)
            done, _ = _forward(runner, e, rows, extra, mode, cfg, proc, shared)
            results += [(g, layer, 0 if pl is None else len(pl["patch"]), d, done[0])
                        for j, ((g, layer, pl), d) in enumerate(zip(chunk, done)) if j > 0 or c0 == 0]
        out.append(results)
    return out


def _plan_patches(pl: dict, layer: int, s_states: dict | None, b_states: dict | None,
                  n_layers: int) -> dict[int, dict[int, Tensor]]:
    """``{layer: {position: vector}}`` of one condition: the source's states, and frozen positions at every layer
    (``None`` states: placeholders of the same positions)."""
    pp: dict[int, dict[int, Tensor]] = {}
    none = torch.zeros(0)
    for p in pl["freeze"]:
        for lf in range(1, n_layers + 1):
            pp.setdefault(lf, {})[p] = none if b_states is None else b_states[p][lf]
    for bp, sp in ([] if pl["steps"] else pl["patch"]):
        pp.setdefault(layer, {})[bp] = none if s_states is None else s_states[sp][layer]
    return pp


def patch(runner: LatentRunner, inputs: InputSet, perturbation: Perturbation | Mapping[str, str], *,
          positions: str | Sequence[str] = "all", layers: Sequence[int] | None = None,
          modes: str | Sequence[str] = MODES, routes: bool = True, align: str | None = None,
          max_new_tokens: int = 32, batch_size: int = 8, max_batch: int = 32, seed: int = 0,
          n_boot: int = 2000, ci: float = 0.95, logits_processor: Any = None,
          prefix_cache: str = "shared", indices: Sequence[int] | None = None) -> PatchResult:
    """Activation patching from counterfactual sources, at every position group x residual layer x mode.

    Parameters
    ----------
    runner : LatentRunner
        The model (its decoder must record every residual layer: the default ``capture_layers="all"``).
    inputs : InputSet
        The base inputs (gold answers score ``correct``).
    perturbation : Perturbation or Mapping[str, str]
        The source of each base example: a perturbation (e.g.
        :class:`latentprobe.toy.perturbations.Counterfactual`; the source is the perturbed input), or a pairs
        mapping ``{base example id: source example id}`` within ``inputs`` (only the mapped ids are patched).
    positions : "all" or sequence of str
        Position groups (:data:`GROUPS`).
    layers : sequence of int, optional
        Residual layers (default ``1..L``; 0 is allowed for ``latents``, the fed vector).
    modes : str or sequence of str
        Intervention modes.
    routes : bool
        Add the route conditions (:data:`ROUTES`, redecode only).
    align : {None, "end"}
        How groups of different lengths are matched (``None`` refuses them).
    max_new_tokens, batch_size, seed : int
        Settings of the base and source runs.
    max_batch : int
        Conditions per forward pass.
    n_boot : int
        Bootstrap resamples of continuous intervals.
    ci : float
        Nominal coverage.
    logits_processor : LogitsProcessor, optional
        Applied in the base and source runs and in every regenerated token (e.g. ``ForceOpen`` on an untrained
        model).
    prefix_cache : {"shared", "copied"}
        How a batch holds its rows' common prefix, as in :meth:`~latentprobe.engine.LatentRunner.intervene_many`:
        one KV cache attended by every row (default), or a copy per row (the reference).
    indices : sequence of int, optional
        Patch only these examples of ``inputs`` (their sources still come from the whole input set: a
        perturbation is bound to all of ``inputs``, and a pairs mapping may name a source outside them). A study
        runs its examples unit by unit this way (:func:`patch_rows`).

    Returns
    -------
    PatchResult
        ``.table`` (:class:`~latentprobe.causal.patch_schema.PATCH_ROWS`), ``.summary``
        (:class:`~latentprobe.causal.patch_schema.PATCH_SUMMARY`), ``.config`` (``skipped``: cells a mode
        could not patch, and why).

    Raises
    ------
    InputError
        An unknown group or mode, a layer out of range, unmatched group lengths, or pairs naming unknown ids.

    Examples
    --------
    >>> from latentprobe import toy
    >>> from latentprobe.causal import patch
    >>> from latentprobe.toy.perturbations import Counterfactual, toy_inputs
    >>> m = toy.load("bypass")
    >>> inp = toy_inputs(m.examples("test", n=4))
    >>> res = patch(m.runner(), inp, Counterfactual(), positions=["latents"], layers=[1], modes=["redecode"],
    ...             routes=False, n_boot=200)
    >>> bool(res.table.query("position_group == 'latents'")["flip"].any())  # bypass: the answer ignores latents
    False
    """
    table, config = patch_rows(runner, inputs, perturbation, positions=positions, layers=layers, modes=modes,
                               routes=routes, align=align, max_new_tokens=max_new_tokens, batch_size=batch_size,
                               max_batch=max_batch, seed=seed, logits_processor=logits_processor,
                               prefix_cache=prefix_cache, indices=indices)
    summary = summarize_patching(table, n_boot=n_boot, seed=seed, ci=ci)
    return PatchResult(table=table, summary=summary, config={**config, "n_boot": n_boot, "ci": ci})


def patch_rows(runner: LatentRunner, inputs: InputSet, perturbation: Perturbation | Mapping[str, str], *,
               positions: str | Sequence[str] = "all", layers: Sequence[int] | None = None,
               modes: str | Sequence[str] = MODES, routes: bool = True, align: str | None = None,
               max_new_tokens: int = 32, batch_size: int = 8, max_batch: int = 32, seed: int = 0,
               logits_processor: Any = None, prefix_cache: str = "shared",
               indices: Sequence[int] | None = None) -> tuple[Any, dict[str, Any]]:
    """The rows of :func:`patch` (:class:`~latentprobe.causal.patch_schema.PATCH_ROWS`) and its configuration,
    without the summary: what a study stores unit by unit (a unit's ``indices``), summarising once at the end.

    Parameters
    ----------
    runner, inputs, perturbation, positions, layers, modes, routes, align, max_new_tokens, batch_size, max_batch, seed, logits_processor, prefix_cache, indices
        As in :func:`patch`.

    Returns
    -------
    tuple of (pandas.DataFrame, dict)
        The rows, and the configuration (``skipped``: the cells a mode could not patch, and why).

    Raises
    ------
    InputError
        As :func:`patch`, and for an index out of range.
    """
    if indices is not None:
        bad = [i for i in indices if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < len(inputs)]
        if bad:
            raise InputError(f"indices {bad[:5]}: give positions of examples in inputs (0..{len(inputs) - 1}).")
    groups = list(GROUPS) if positions == "all" else [positions] if isinstance(positions, str) else list(positions)
    bad = [g for g in groups if g not in GROUPS]
    if bad:
        raise InputError(f"positions={bad}: position groups are {list(GROUPS)} (or 'all').")
    mode_list = [InterventionMode.parse(m) for m in ([modes] if isinstance(modes, str) else modes)]
    L = int(runner.n_layers)
    layer_list = list(range(1, L + 1)) if layers is None else sorted({int(l) for l in layers})
    if any(not 0 <= l <= L for l in layer_list) or not layer_list:
        raise InputError(f"layers={layer_list}: residual layers are 0..{L} (0 = the fed latent, i = output of "
                         "decoder layer i-1).")
    if align not in (None, "end"):
        raise InputError(f"align={align!r}; use None (refuse groups of different lengths) or 'end'.")
    check_prefix_cache(prefix_cache)
    kw = {"max_new_tokens": max_new_tokens, "batch_size": batch_size, "seed": seed, "progress": False,
          "logits_processor": logits_processor}
    base, src, src_ids = _resolve_sources(runner, inputs, perturbation, kw, indices)
    gold = dict(zip(inputs.example_ids, inputs.gold)) if inputs.gold is not None else {}
    runner._record(None, None)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    T = PATCH_ROWS
    for mode in mode_list:
        per = _run_mode(runner, base, src, mode, groups, layer_list, routes, align, max_batch, skipped,
                        logits_processor, prefix_cache == "shared")
        for e, s, sid, res in zip(base.examples, src.examples, src_ids, per):
            for g, layer, n, d, ref in res:
                rows.append({T.EXAMPLE_ID: e.example_id, T.SOURCE_ID: sid, T.MODE: mode.value, T.POSITION_GROUP: g,
                             T.LAYER: layer, T.N_POSITIONS: n, **_score(d, ref, s, gold.get(e.example_id))})
    config = {"analysis": "patching", "positions": groups, "layers": layer_list, "modes": [m.value for m in mode_list],
              "routes": bool(routes), "align": align, "max_new_tokens": max_new_tokens, "seed": seed,
              "logits_processor": logits_processor is not None,
              "source": perturbation.to_config() if isinstance(perturbation, Perturbation) else "pairs",
              "skipped": skipped, "prefix_cache": prefix_cache}
    return T.frame(rows), config
