"""Attribution patching: the whole layer x position map of patching effects from one backward pass.

Patching cell ``c = (layer, position)`` of a clean run with the counterfactual run's residual changes a
metric ``m`` of the answer by ``m(h_clean with h[c] := h_corrupt[c]) - m(h_clean)``. Exact patching
costs one forward per cell; attribution patching estimates every cell at once to first order,

    effect(c) ~= (h_corrupt[c] - h_clean[c]) . dm/dh[c]  (evaluated at the clean run),

from one clean forward with gradients, one counterfactual forward and one backward pass (Nanda 2023,
"Attribution Patching: Activation Patching At Industrial Scale"; Syed, Rager and Conmy 2023,
"Attribution Patching Outperforms Automated Circuit Discovery", arXiv 2310.10348). TransformerLens's
demo ``demos/Attribution_Patching_Demo.ipynb`` (TransformerLensOrg/TransformerLens, read at commit
37e5e18369028d6066c5ab0bbfed9600c05025ec) computes the mirror image for the residual stream,
``corrupted_grad_residual * (clean_residual - corrupted_residual)`` summed over ``d_model``: gradients on the
corrupted run, estimating the patch of clean activations *into the corrupted run* (denoising). Here the
gradients are taken on the clean run and the counterfactual residual is patched *into the clean run*
(noising), which is what the exact check (``verify_top=``) measures.

Scope (what the forward is, and where gradients flow)
-----------------------------------------------------
Every run is one **teacher-forced forward** over the recorded sequence of the example up to its first
answer token: prompt (text and image tokens), open marker, latents, close marker. The metric reads the
logits at the last of these positions (the distribution of the first answer token), so positions from
the first answer token on cannot change it and are not cells. **Latents are fixed inputs**: the vector
fed at latent slot ``p`` is the recorded ``z_p``, not recomputed from ``h_{p-1}``, so gradients do not
flow through the latent loop. The map estimates the *replay-mode* effect of a patch (later latents as
recorded, :meth:`LatentRunner.intervene` with ``mode="replay"``); the exact check
(``verify_top=``) measures that same quantity. An effect that reaches the answer only by changing the
later latents (propagate mode) is not in the map.

The counterfactual run is the runner's own generation on the perturbed inputs; its cells must line up with
the clean run's: the same length before the answer and the same segment (text, image, open, latent,
close) at every position, else :class:`~latentprobe.errors.LayoutMismatchError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor

from latentprobe import schema as S
from latentprobe.causal.attribution_units import run_units
from latentprobe.causal.teacher_forced import _forward, _prepare_pair, _rows
from latentprobe.engine.forward import new_cache
from latentprobe.engine.prefix_cache import supports_shared
from latentprobe.errors import InputError, LayoutMismatchError
from latentprobe.perturbations import InputSet, Perturbation
from latentprobe.trace import ExampleTrace, Segment

if TYPE_CHECKING:  # pragma: no cover
    from latentprobe.engine.runner import LatentRunner

__all__ = ["AttributionResult", "attribution_patching", "logprob_difference", "POSITION_GROUPS"]

#: Position groups of a cell (``Segment`` names); ``"gen"`` is text the model wrote before opening latent mode.
POSITION_GROUPS = tuple(Segment.NAMES[s] for s in (Segment.TEXT, Segment.IMAGE, Segment.OPEN, Segment.LATENT,
                                                  Segment.CLOSE, Segment.GEN))

Metric = Callable[[Tensor, Tensor, Tensor], Tensor]


def logprob_difference(logits: Float[Tensor, "b vocab"], clean_ids: Int[Tensor, "b"],
                       counterfactual_ids: Int[Tensor, "b"]) -> Float[Tensor, "b"]:
    """The default metric: ``log p(clean answer) - log p(counterfactual answer)`` of the first answer token.

    Parameters
    ----------
    logits : Float[Tensor, "b vocab"]
        Logits at the first answer position of each row.
    clean_ids, counterfactual_ids : Int[Tensor, "b"]
        First answer token of the clean and of the counterfactual run.

    Returns
    -------
    Float[Tensor, "b"]

    Examples
    --------
    >>> import torch
    >>> float(logprob_difference(torch.tensor([[0.0, 0.0]]), torch.tensor([0]), torch.tensor([1])))
    0.0
    """
    lp = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
    rows = torch.arange(lp.shape[0], device=lp.device)
    return lp[rows, clean_ids.to(lp.device)] - lp[rows, counterfactual_ids.to(lp.device)]


@dataclass(frozen=True)
class AttributionResult:
    """What :func:`attribution_patching` returns.

    ``table`` holds one row per example x layer x position (:class:`latentprobe.schema.ATTRIBUTION`), with
    the exact patching effect where it was checked (``verified``); ``verify`` those rows only. ``spearman``
    is the rank correlation of estimate and exact effect over the checked cells, ``spearman_changed`` the
    same over the checked cells whose residual differs between the runs (cells the perturbation does not
    reach have estimate and effect exactly 0, and agree trivially), ``spearman_abs`` the rank correlation of
    ``|estimate|`` and ``|effect|`` (does the map find the cells that matter, whatever their sign). The
    signed correlation is sensitive to sign errors on cells of tiny effect: where many cells are exactly 0
    (no path to the answer), a cell estimated at -0.1 whose exact effect is +0.05 moves across that whole
    tied block of ranks. ``timing`` holds the seconds of the map
    and of the check. A high correlation says the first-order map ranks cells as exact patching does on
    these inputs; it does not say a cell is *used* in any other sense than this metric's change.

    Parameters
    ----------
    table, verify, dropped : pandas.DataFrame
        The map, its checked cells, the examples left out (``example_id``, ``reason``).
    spearman, spearman_changed, spearman_abs : float
        Rank correlations (NaN without a check).
    timing : dict[str, float]
        ``{"map_s": ..., "verify_s": ...}``.
    config : dict[str, Any]
        The arguments.
    """

    table: pd.DataFrame
    verify: pd.DataFrame
    dropped: pd.DataFrame
    spearman: float
    spearman_changed: float
    spearman_abs: float
    timing: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> pd.DataFrame:
        """One row (:class:`latentprobe.schema.ATTRIBUTION_SUMMARY`): agreement and cost of the map."""
        A, M = S.ATTRIBUTION, S.ATTRIBUTION_SUMMARY
        return M.frame([{M.N_CELLS: len(self.table), M.N_VERIFIED: int(self.table[A.VERIFIED].sum()),
                         M.SPEARMAN: self.spearman, M.SPEARMAN_CHANGED: self.spearman_changed,
                         M.SPEARMAN_ABS: self.spearman_abs, M.MAP_SECONDS: float(self.timing.get("map_s", np.nan)),
                         M.VERIFY_SECONDS: float(self.timing.get("verify_s", np.nan))}])

    @classmethod
    def from_tables(cls, table: pd.DataFrame, summary: pd.DataFrame, dropped: pd.DataFrame,
                    config: dict[str, Any] | None = None) -> "AttributionResult":
        """The result rebuilt from its stored tables.

        Parameters
        ----------
        table, summary, dropped : pandas.DataFrame
            :class:`~latentprobe.schema.ATTRIBUTION`, :class:`~latentprobe.schema.ATTRIBUTION_SUMMARY` and
            :class:`~latentprobe.schema.STATUS` frames.
        config : dict, optional
            The stored configuration.

        Returns
        -------
        AttributionResult
        """
        M = S.ATTRIBUTION_SUMMARY
        row = summary.iloc[0] if len(summary) else {}
        get = (lambda c: float(row[c]) if c in row else float("nan"))
        return cls(table=table, verify=table[table[S.ATTRIBUTION.VERIFIED]].reset_index(drop=True), dropped=dropped,
                   spearman=get(M.SPEARMAN), spearman_changed=get(M.SPEARMAN_CHANGED), spearman_abs=get(M.SPEARMAN_ABS),
                   timing={"map_s": get(M.MAP_SECONDS), "verify_s": get(M.VERIFY_SECONDS)}, config=dict(config or {}))


# --------------------------------------------------------------------------- pairs and cells
def _layout(e: ExampleTrace) -> str:
    segs = e.segments[:e.answer_start].tolist()
    runs: list[list[Any]] = []
    for s in segs:
        if runs and runs[-1][0] == s:
            runs[-1][1] += 1
        else:
            runs.append([s, 1])
    return ", ".join(f"{Segment.NAMES[s]} x{k}" for s, k in runs)


def _check_layout(e: ExampleTrace, o: ExampleTrace) -> None:
    if e.answer_start != o.answer_start or not torch.equal(e.segments[:e.answer_start], o.segments[:o.answer_start]):
        raise LayoutMismatchError(
            f"example {e.example_id!r}: the clean run ({_layout(e)}; answer at {e.answer_start}) and the "
            f"counterfactual run ({_layout(o)}; answer at {o.answer_start}) do not line up position by position, "
            "so their cells cannot be paired. Use a perturbation that keeps the layout (same prompt length, image "
            "size and number of latents: e.g. toy.Counterfactual, or a Custom change of one token), or leave the "
            "example out of the inputs."
        )


def _pairs(clean: Any, cf: Any, default_metric: bool, name: str = "counterfactual",
           answers: Mapping[str, tuple[int, int]] | None = None) -> tuple[list[tuple[ExampleTrace, ExampleTrace]], list[dict]]:
    kept, dropped = [], []
    for e, o in zip(clean, cf):
        reason = None
        given = answers is not None and e.example_id in answers
        if not given and (e.answer_ids.numel() == 0 or o.answer_ids.numel() == 0):
            reason = "no_answer"
        elif default_metric and len(set(_answer_pair(e, o, answers))) == 1:
            reason = "same_answer"
        if reason is None:
            _check_layout(e, o)
            kept.append((e, o))
        else:
            T = S.STATUS
            dropped.append({T.EXAMPLE_ID: e.example_id, T.CONDITION: name, T.REASON: reason,
                            T.N_LATENTS_CLEAN: e.num_latents, T.N_LATENTS_OTHER: o.num_latents, T.CHUNK: 0})
    return kept, dropped


def _answer_pair(e: ExampleTrace, o: ExampleTrace, answers: Mapping[str, tuple[int, int]] | None) -> tuple[int, int]:
    if answers is not None and e.example_id in answers:
        a, b = answers[e.example_id]
        return int(a), int(b)
    return int(e.answer_ids[0]), int(o.answer_ids[0])


def _metric_values(metric: Metric, logits: Tensor, pairs: Sequence[tuple[ExampleTrace, ExampleTrace]],
                   answers: Mapping[str, tuple[int, int]] | None = None) -> Tensor:
    cid = torch.tensor([_answer_pair(e, o, answers)[0] for e, o in pairs])
    oid = torch.tensor([_answer_pair(e, o, answers)[1] for e, o in pairs])
    m = metric(logits, cid, oid)
    if not isinstance(m, Tensor) or tuple(m.shape) != (len(pairs),):
        got = tuple(m.shape) if isinstance(m, Tensor) else type(m).__name__
        raise InputError(f"metric {metric!r} returned {got} for a batch of {len(pairs)} rows; it must map logits "
                         f"[b, vocab], clean ids [b] and counterfactual ids [b] to one value per row, a tensor [b].")
    return m


def _map_batch(runner: LatentRunner, pairs: list[tuple[ExampleTrace, ExampleTrace]], layers: list[int],
               metric: Metric, answers: Mapping[str, tuple[int, int]] | None = None) -> tuple[Tensor, Tensor, Tensor, list[int]]:
    """Attribution ``[b, layers, t]``, changed mask, clean metric ``[b]`` and pad offsets of one batch.

    Columns before the first input that differs in any row (``start``) hold the same residuals in both runs
    (attention is causal), so their cells are exactly 0 and need no gradient: the clean forward runs them once
    without gradients into a KV cache, and only the columns from ``start`` on run with gradients, are
    backpropagated through, and run again with the counterfactual inputs, on the same cached keys and values."""
    # both runs line up position by position (_check_layout): the counterfactual rows reuse mask and positions
    rows_c = _rows([e for e, _ in pairs])
    prep_c, prep_o = _prepare_pair(runner, rows_c, _rows([o for _, o in pairs]))
    T = prep_c[0].shape[1]
    start = _shared_columns(runner, prep_c, prep_o)
    cache = new_cache(runner.model) if start > 0 else None
    if cache is not None:
        with torch.no_grad():
            last = _forward(runner, [], [], prepared=prep_c, cache=cache, cols=(0, start))[0]
        if start >= T:  # the inputs do not differ: every cell is exactly 0
            m = _metric_values(metric, last, pairs, answers)
            zero = torch.zeros(len(pairs), len(layers), T)
            return zero, zero.bool(), m.float().cpu(), list(prep_c[3])
    cols = (start, T) if cache is not None else None
    logits, clean, offs = _forward(runner, [], layers, grad=True, prepared=prep_c, cache=cache, cols=cols)
    m = _metric_values(metric, logits, pairs, answers)
    grads = torch.autograd.grad(m.sum(), clean)
    with torch.no_grad():
        if cache is not None:  # back to the shared columns (a negative count removes columns, transformers 4 and 5)
            cache.crop(start - T)
        _, corr, _ = _forward(runner, [], layers, prepared=prep_o, cache=cache, cols=cols)
        up = torch.promote_types(clean[0].dtype, torch.float32)  # bf16/fp16 models: products in fp32
        diff = [(c.to(up) - h.detach().to(up)) for c, h in zip(corr, clean)]
        first = start if cache is not None else 0  # the columns run (those before are exactly 0)
        attr = torch.zeros(len(pairs), len(layers), T, dtype=up)
        changed = torch.zeros(len(pairs), len(layers), T, dtype=torch.bool)
        attr[..., first:] = torch.stack([(d * g.to(up)).sum(-1) for d, g in zip(diff, grads)], dim=1).cpu()
        changed[..., first:] = torch.stack([(d != 0).any(-1) for d in diff], dim=1).cpu()
    return attr, changed, m.detach().float().cpu(), offs


#: Shared columns are run apart only when they are at least this share of the sequence: the extra pass reads every
#: weight once more, which costs more than it saves when few columns are shared (SmolLM2 on CPU, 3 of 14 columns
#: shared: 3.29 forward-pass equivalents split, 3.10 not; ``benchmarks/attribution_patching.py``).
SHARED_MIN_FRACTION = 0.25


def _shared_columns(runner: LatentRunner, prep_c: Any, prep_o: Any) -> int:
    """How many leading columns the two runs' inputs (embeddings and positions) share in every row; 0 where the
    model's cache cannot be cropped (a sliding-window layer) or where fewer than :data:`SHARED_MIN_FRACTION` of
    the columns are shared."""
    if not supports_shared(runner.parts.layers):
        return 0
    e_c, _, p_c, _ = prep_c
    e_o, _, p_o, _ = prep_o
    differs = (e_c != e_o).any(-1).any(0)
    pd_ = (p_c != p_o)
    differs |= (pd_.any(0).any(0) if pd_.dim() == 3 else pd_.any(0)).to(differs.device)
    hit = torch.nonzero(differs)
    start = int(hit[0, 0]) if len(hit) else int(differs.shape[0])
    return start if start >= SHARED_MIN_FRACTION * differs.shape[0] else 0


def _map(runner: LatentRunner, pairs: list[tuple[ExampleTrace, ExampleTrace]], layers: list[int], groups: set[str],
         metric: Metric, batch_size: int, answers: Mapping[str, tuple[int, int]] | None = None) -> pd.DataFrame:
    """The map over ``pairs``, batch by batch (:class:`latentprobe.schema.ATTRIBUTION` rows, not yet verified)."""
    parts = []
    for s in range(0, len(pairs), batch_size):
        batch = pairs[s:s + batch_size]
        attr, changed, m, offs = _map_batch(runner, batch, layers, metric, answers)
        parts.append(_cell_rows(batch, layers, groups, attr, changed, m, offs))
    return S.ATTRIBUTION.frame(pd.concat(parts, ignore_index=True) if parts else [])


def _cell_rows(pairs: list[tuple[ExampleTrace, ExampleTrace]], layers: list[int], groups: set[str], attr: Tensor,
               changed: Tensor, m: Tensor, offs: list[int]) -> pd.DataFrame:
    """Cell rows of one batch, built as whole columns (one frame per batch, not per example)."""
    A = S.ATTRIBUTION
    names = np.array([Segment.NAMES[s] for s in sorted(Segment.NAMES)], dtype=object)
    lay = np.asarray(layers, dtype=np.int64)
    ex, pos_all, seg_all, step_all, cols_all, b_all = [], [], [], [], [], []
    for b, (e, _) in enumerate(pairs):
        T = e.answer_start
        segs = e.segments[:T].numpy()
        pos = np.arange(T)[np.isin(names[segs + 1], list(groups))]  # NAMES keys run from -1 (pad)
        step = np.full(T, -1, dtype=np.int64)
        lat = e.latent_positions.numpy()
        step[lat[lat < T]] = np.arange(len(lat))[lat < T]
        ex.append(np.full(len(pos), b))
        pos_all.append(pos)
        seg_all.append(segs[pos])
        step_all.append(step[pos])
        cols_all.append(offs[b] + pos)
    if not pairs:
        return S.ATTRIBUTION.frame([])
    b_idx, pos, segs, step, cols = (np.concatenate(x) for x in (ex, pos_all, seg_all, step_all, cols_all))
    # layer-major within an example: [example][layer][position]
    order = np.concatenate([np.flatnonzero(b_idx == b) for b in range(len(pairs))])
    n = np.bincount(b_idx, minlength=len(pairs))
    rows_b = np.concatenate([np.repeat(b, n[b] * len(lay)) for b in range(len(pairs))])
    rows_l = np.concatenate([np.repeat(lay, n[b]) for b in range(len(pairs))])
    sel = np.concatenate([np.tile(order[b_idx[order] == b], len(lay)) for b in range(len(pairs))])
    li = {l: i for i, l in enumerate(layers)}
    li_rows = np.vectorize(li.__getitem__, otypes=[np.int64])(rows_l) if len(rows_l) else rows_l
    a = attr.double().numpy()[rows_b, li_rows, cols[sel]]
    c = changed.numpy()[rows_b, li_rows, cols[sel]]
    ids = np.array([e.example_id for e, _ in pairs], dtype=object)
    return pd.DataFrame({
        A.EXAMPLE_ID: ids[rows_b], A.LAYER: rows_l, A.POSITION_GROUP: names[segs[sel] + 1],
        A.POSITION: pos[sel].astype(np.int64), A.STEP: step[sel], A.ATTRIBUTION: a, A.CHANGED: c, A.VERIFIED: False,
        A.EFFECT: np.nan, A.CLEAN_METRIC: m.double().numpy()[rows_b]})


def _exact(runner: LatentRunner, pairs: dict[str, tuple[ExampleTrace, ExampleTrace]], cells: pd.DataFrame,
           metric: Metric, batch_size: int, answers: Mapping[str, tuple[int, int]] | None = None) -> np.ndarray:
    """Exact patching effect of each cell (one patched forward per cell, ``batch_size`` cells a batch): the
    clean sequence teacher-forced with that one residual replaced by the counterfactual run's."""
    A = S.ATTRIBUTION
    recs = list(cells[[A.EXAMPLE_ID, A.LAYER, A.POSITION]].itertuples(index=False, name=None))
    effects = np.full(len(recs), np.nan)
    for start in range(0, len(recs), batch_size):
        chunk = recs[start:start + batch_size]
        ids = list(dict.fromkeys(eid for eid, _, _ in chunk))
        need = sorted({int(layer) for _, layer, _ in chunk})
        with torch.no_grad():
            _, corr, coffs = _forward(runner, _rows([pairs[i][1] for i in ids]), need)
        # rows: one unpatched row per example (the reference), then one row per cell
        rows_pairs = [pairs[i] for i in ids] + [pairs[eid] for eid, _, _ in chunk]
        rows = _rows([e for e, _ in rows_pairs])
        T = max(len(r.ids) for r in rows)
        patch: dict[int, list[tuple[int, int, Tensor]]] = {}
        for k, (eid, layer, pos) in enumerate(chunk):
            j = ids.index(eid)
            v = corr[need.index(int(layer))][j, coffs[j] + int(pos)]
            r = len(ids) + k
            patch.setdefault(int(layer), []).append((r, T - len(rows[r].ids) + int(pos), v))
        packed = {l: (torch.tensor([r for r, _, _ in it]), torch.tensor([c for _, c, _ in it]),
                      torch.stack([v for _, _, v in it])) for l, it in patch.items()}
        with torch.no_grad():
            logits, _, _ = _forward(runner, rows, [], patch=packed)
            m = _metric_values(metric, logits, rows_pairs, answers).float().cpu()
        for k, (eid, _, _) in enumerate(chunk):
            effects[start + k] = float(m[len(ids) + k] - m[ids.index(eid)])
    return effects


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(spearmanr(a, b).statistic)


# --------------------------------------------------------------------------- the analysis
def attribution_patching(runner: LatentRunner, inputs: InputSet, perturbation: Perturbation, *,
                         metric: Metric | None = None, layers: Sequence[int] | None = None,
                         positions: Sequence[str] | None = None, verify_top: int | str = 0,
                         answers: Mapping[str, tuple[int, int]] | None = None, batch_size: int = 8,
                         max_new_tokens: int = 8, seed: int = 0, logits_processor: Any = None,
                         out_dir: str | os.PathLike | None = None, overwrite: bool = False,
                         progress: bool = False) -> AttributionResult:
    """Attribution patching over every layer x position (x latent step) of clean runs, towards a counterfactual.

    The clean inputs and ``perturbation``'s counterfactual inputs are run (generation, as
    :func:`x_to_z` does); then per batch of examples: one clean teacher-forced forward with gradients, one
    counterfactual forward and one backward give every cell's estimate (see the module docstring for the
    formula and the scope: latents are fixed inputs, so the map estimates replay-mode patching).

    Parameters
    ----------
    runner : LatentRunner
        The model.
    inputs : InputSet
        The clean inputs.
    perturbation : Perturbation
        Gives each example's counterfactual input; it must keep the sequence layout.
    metric : callable or None
        ``metric(logits [b, vocab], clean_ids [b], counterfactual_ids [b]) -> [b]`` on the logits of the
        first answer position (``clean_ids``/``counterfactual_ids``: the runs' first answer tokens). Default
        :func:`logprob_difference`; with it, examples whose two runs start their answers with the same token
        are left out (``dropped``, reason ``same_answer``): the metric is then 0 whatever is patched.
    layers : sequence of int or None
        Residual layers (0 = input of decoder layer 0 .. ``n_layers``); default all.
    positions : sequence of str or None
        Position groups kept (:data:`POSITION_GROUPS`); default all before the first answer token.
    verify_top : int or "all"
        Check the ``k`` cells of largest ``|attribution|`` (pooled over examples) by exact patching, or every
        cell with ``"all"``; 0 checks none.
    answers : mapping or None
        ``{example_id: (clean_token_id, counterfactual_token_id)}``: the tokens the metric compares for those
        examples (e.g. the gold answers' first tokens), instead of the two runs' first answer tokens.
    batch_size : int
        Examples per batch of the map; cells per batch of the check.
    max_new_tokens, seed, logits_processor
        Generation of the two runs (:meth:`LatentRunner.run`).
    out_dir : path, optional
        Store every unit (``batch_size`` examples of the map, then of the check) as it finishes, under this
        folder: a stopped run resumes at the next unit (:mod:`latentprobe.causal.attribution_units`).
    overwrite : bool
        Discard the units stored in ``out_dir`` and start again.
    progress : bool
        Progress bars over the units.

    Returns
    -------
    AttributionResult

    Raises
    ------
    LayoutMismatchError
        When an example's two runs do not line up position by position.
    InputError
        For an unknown layer, position group, ``verify_top`` or a metric of the wrong shape.

    Examples
    --------
    >>> from latentprobe import toy
    >>> from latentprobe.causal import attribution_patching
    >>> tm = toy.load("mediated")
    >>> inputs = toy.toy_inputs(tm.examples("test", 2))
    >>> res = attribution_patching(tm.runner(), inputs, toy.Counterfactual(seed=0), verify_top=10)
    >>> len(res.verify), sorted(res.table.position_group.unique())
    (10, ['close', 'image', 'latent', 'open', 'text'])
    """
    if not isinstance(inputs, InputSet):
        raise InputError(f"inputs must be a latentprobe.perturbations.InputSet, got {type(inputs).__name__}.")
    if not isinstance(perturbation, Perturbation):
        raise InputError(f"perturbation must be a latentprobe.perturbations.Perturbation, got "
                         f"{type(perturbation).__name__}; wrap a callable in perturbations.Custom(fn, name=...).")
    n_res = int(runner.n_layers) + 1
    layers = list(range(n_res)) if layers is None else sorted({int(l) for l in layers})
    bad = [l for l in layers if not 0 <= l < n_res]
    if bad or not layers:
        raise InputError(f"layers {bad or '[]'} out of range: residual layers are 0..{n_res - 1} (0 = the input of "
                         "decoder layer 0).")
    groups = set(POSITION_GROUPS if positions is None else [positions] if isinstance(positions, str) else positions)
    if not groups or groups - set(POSITION_GROUPS):
        raise InputError(f"positions={positions!r}: give position groups among {POSITION_GROUPS}.")
    if not (verify_top == "all" or (isinstance(verify_top, (int, np.integer)) and not isinstance(verify_top, bool)
                                    and verify_top >= 0)):
        raise InputError(f"verify_top={verify_top!r}; give a number of cells >= 0 or 'all'.")
    if metric is not None and not callable(metric):
        raise InputError(f"metric={metric!r} is not callable; give logits, clean_ids, counterfactual_ids -> [b].")
    if int(batch_size) < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}.")
    fn: Metric = logprob_difference if metric is None else metric
    p = perturbation.bind(inputs)
    kw = dict(max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed, logits_processor=logits_processor)
    table, dropped, timing, n_pairs = run_units(
        runner, inputs, p, layers=layers, groups=groups, metric=fn, default_metric=metric is None,
        verify_top=verify_top, answers=answers, batch_size=int(batch_size), kw=kw, out_dir=out_dir,
        overwrite=overwrite, progress=progress, work=(_pairs, _map, _exact))
    A = S.ATTRIBUTION
    verify = table[table[A.VERIFIED]].reset_index(drop=True)
    ch = verify[verify[A.CHANGED]]
    res = AttributionResult(
        table=table, verify=verify, dropped=dropped,
        spearman=_spearman(verify[A.ATTRIBUTION].to_numpy(), verify[A.EFFECT].to_numpy()),
        spearman_changed=_spearman(ch[A.ATTRIBUTION].to_numpy(), ch[A.EFFECT].to_numpy()),
        spearman_abs=_spearman(verify[A.ATTRIBUTION].abs().to_numpy(), verify[A.EFFECT].abs().to_numpy()),
        timing=timing,
        config={"perturbation": p.name, "layers": layers, "positions": sorted(groups), "verify_top": verify_top,
                "metric": getattr(fn, "__name__", repr(fn)), "batch_size": int(batch_size),
                "max_new_tokens": int(max_new_tokens), "seed": int(seed), "n_pairs": n_pairs,
                "out_dir": None if out_dir is None else str(out_dir)},
    )
    return res
