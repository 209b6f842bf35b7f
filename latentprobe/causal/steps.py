"""Step structure: how the latent steps depend on one another and on what the answer reads (:func:`step_influence`).

Conditions, each compared example by example with the clean trace:

* ``influence``: ``do(z_i)`` for every step ``i`` in ``propagate`` mode (latent ``i`` replaced, latents
  ``i+1..K-1`` and the answer generated again from the state before latent ``i``), and the change of
  every ``z_j`` (``one_minus_cos``, ``rel_l2``) and of the answer (``flip``, ``gold_logprob_change``,
  ``correct``). The default ``do`` is a **swap**: latent ``i`` of another example (a seeded derangement of
  the kept examples), a value the model produces at that step, so the change stays in distribution;
  ``intervention="noise"`` is a random direction with the latent's own norm
  (:class:`~latentprobe.interventions.ReplaceNoise`), or pass any intervention. Entries with ``j < i`` are
  exactly 0: those latents are the recorded prefix, and ``one_minus_cos`` is computed as
  ``||a/|a| - b/|b|||^2 / 2`` (equal to ``1 - cos``), which is exactly 0 for equal vectors in any precision.
* ``early_exit``: the span is closed after ``k`` latents (the slots of steps ``k..K-1`` are removed,
  the markers and everything before stay) and the answer is decoded again (``redecode``). ``k = K`` is the
  clean sequence itself, so it reproduces the clean trace.
* ``count``: the run continued from the clean prefix with the family's latent count set to ``K'``
  (:attr:`LatentSpec.num_latents`: the fixed count of ``stop="fixed"``/``"quota"`` families such as
  CODI, LVR's quota decoding and the toys; the cap of ``"end_token"``/``"similarity"`` ones), in ``propagate``
  mode with the budget grown by ``K' - K``. ``K' = K`` is the propagate control, which reproduces the clean
  trace. Families whose slots are in the prompt (``open_mode="prompt"``, Coconut) are refused: there the count
  is the prompt's.
* ``oracle``: every latent replaced by another run's (``oracle=``: a trace of the same examples, e.g. the
  run of a counterfactual input; or ``{example_id: tensor [K, d]}``), answer re-decoded. ``moved`` says,
  where the oracle run's answer differs from the clean one, whether the answer became the oracle's.
  LVR's annotated-region features and Mirage's helper-image tokens are not read from the data here: build
  those vectors and pass them as the mapping.
* ``format_only``: markers and slots kept, every latent replaced by the input embedding of the token the
  sequence holds at latent slots (the spec's slot token, else the placeholder id): the format of latent
  reasoning without its content. It sits next to ``no_latents`` (the slots removed, markers kept:
  :class:`~latentprobe.interventions.NoLatents`). This is our definition; the Token Replacement Test
  (arXiv 2605.21642) names the condition, and its exact replacement could not be checked here.

Examples are those of the trace's most common latent count (:func:`~latentprobe.trace.modal_latent_count`).
Intervals: :func:`~latentprobe.stats.one_sample_ci` for every metric (Wilson for 0/1 ones), and
:func:`~latentprobe.stats.paired_difference_ci` of ``correct`` against the clean run (``accuracy_change``).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from latentprobe import schema_steps as T
from latentprobe.causal.common import (
    _gold_list, _gold_token_id, _score, check_analysis_args, check_golds, check_scorer, scoring_examples,
)
from latentprobe.display import SummarizedResult
from latentprobe.errors import InputError, InterventionError
from latentprobe.interventions import Intervention, Replace, ReplaceNoise, Swap
from latentprobe.perturbations import derangement
from latentprobe.stats import one_sample_ci, paired_difference_ci
from latentprobe.trace import LatentTrace
from latentprobe.validate import positive_int

if TYPE_CHECKING:  # pragma: no cover
    from latentprobe.engine import LatentRunner

__all__ = ["StepResult", "step_influence", "step_rows", "latent_distances", "early_exit_trace", "with_latent_count"]


def latent_distances(a: Tensor, b: Tensor) -> tuple[float, float]:
    """``(1 - cos, relative L2)`` of two vectors, both exactly 0 when they are equal.

    ``1 - cos`` is computed as ``||a/|a| - b/|b|||^2 / 2`` and the relative L2 as ``|a - b| / |a|``, in the
    vectors' own dtype promoted to at least float32; a zero ``a`` gives NaN.

    Parameters
    ----------
    a, b : Tensor
        The clean and the intervened vector.

    Returns
    -------
    tuple[float, float]

    Examples
    --------
    >>> import torch
    >>> latent_distances(torch.ones(3), torch.ones(3))
    (0.0, 0.0)
    >>> round(latent_distances(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0]))[0], 6)
    1.0
    """
    dt = torch.promote_types(torch.promote_types(a.dtype, b.dtype), torch.float32)
    a, b = a.to(dt), b.to(dt)
    na, nb = a.norm(), b.norm()
    if float(na) == 0:
        return float("nan"), float("nan")
    if float(nb) == 0:
        return float("nan"), 1.0
    return float(0.5 * (a / na - b / nb).pow(2).sum()), float((a - b).norm() / na)


def early_exit_trace(trace: LatentTrace, k: int) -> LatentTrace:
    """``trace`` with every example's latent span closed after ``k`` latents (later slots removed).

    What follows the removed slots (the close marker, the answer) moves up; the kept latents, their
    hidden states and everything before them are unchanged. Re-decode the answer with
    ``runner.intervene(early, None, mode="redecode")``. ``k`` at least an example's count leaves it as it is.

    Parameters
    ----------
    trace : LatentTrace
    k : int
        Latents kept (0 keeps the markers only).

    Returns
    -------
    LatentTrace

    Examples
    --------
    >>> from latentprobe import toy
    >>> tm = toy.load("mediated")
    >>> trace = tm.run(tm.examples("test", 2))
    >>> [e.num_latents for e in early_exit_trace(trace, 2)]
    [2, 2]
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise InputError(f"early_exit_trace: k={k!r}: give the number of latents kept, an integer >= 0.")
    out = []
    for e in trace.examples:
        if e.num_latents <= k:
            out.append(e)
            continue
        gone = set(e.latent_positions[k:].tolist())
        keep = torch.tensor([p for p in range(e.seq_len) if p not in gone], dtype=torch.long)
        shift = sum(1 for p in gone if p < e.answer_start)
        cap = e.captured_positions
        out.append(e.replace(input_ids=e.input_ids[keep], segments=e.segments[keep],
                             latent_positions=e.latent_positions[:k], z=e.z[:k], h_src=e.h_src[:k],
                             hidden=e.hidden[:k], answer_start=e.answer_start - shift,
                             meta={**e.meta, "early_exit": int(k)},
                             captured_positions=cap))
    return LatentTrace(tuple(out), trace.spec, dict(trace.config))


def with_latent_count(runner: LatentRunner, num_latents: int) -> LatentRunner:
    """A copy of ``runner`` (same model, tokenizer, projection, mask rule, head) whose spec runs ``num_latents``.

    Parameters
    ----------
    runner : LatentRunner
    num_latents : int
        The new :attr:`~latentprobe.spec.LatentSpec.num_latents` (``min_latents`` is capped to it).

    Returns
    -------
    LatentRunner

    Examples
    --------
    >>> from latentprobe import toy
    >>> tm = toy.load("mediated")
    >>> with_latent_count(tm.runner(), 2).spec.num_latents
    2
    """
    positive_int(num_latents, "num_latents", hint="with_latent_count: the number of latents to run", error=InputError)
    spec = runner.spec
    spec = dataclasses.replace(spec, num_latents=int(num_latents), min_latents=min(spec.min_latents, int(num_latents)))
    alt = copy.copy(runner)
    alt.spec = spec
    alt.rspec = spec.resolve(runner.tokenizer, vocab_size=runner.parts.vocab_size)
    dec = copy.copy(runner._decoder)
    dec.rspec = dec._eos_spec = alt.rspec
    alt._decoder = dec
    return alt


@dataclass(frozen=True, eq=False, repr=False)
class StepResult(SummarizedResult):
    """Result of :func:`step_influence`.

    Attributes
    ----------
    table : DataFrame
        :class:`~latentprobe.schema_steps.STEP_ROWS`: one row per example x condition x step x target step x
        metric.
    summary : DataFrame
        :class:`~latentprobe.schema_steps.STEP_SUMMARY`: estimates with calibrated intervals.
    config : dict
        The arguments, the kept examples and ``num_latents`` (K).
    """

    table: pd.DataFrame
    summary: pd.DataFrame
    config: dict

    def matrix(self, metric: str = "one_minus_cos", answer_metric: str = "flip") -> pd.DataFrame:
        """The K x K influence matrix (rows: step ``i`` intervened on; columns: ``z_j``) plus an answer column.

        Parameters
        ----------
        metric : str
            ``"one_minus_cos"`` or ``"rel_l2"``: the mean change of ``z_j`` over examples.
        answer_metric : str
            ``"flip"``, ``"gold_logprob_change"`` or ``"correct"``: the mean of the answer column.

        Returns
        -------
        DataFrame
            Index ``i``; columns ``z_0 .. z_{K-1}`` and ``answer``.
        """
        t = self.table[self.table.condition == "influence"]
        k = int(self.config["num_latents"])
        z = t[(t.metric == metric) & (t.target_step >= 0)].groupby(["step", "target_step"]).value.mean()
        a = t[(t.metric == answer_metric) & (t.target_step == -1)].groupby("step").value.mean()
        m = pd.DataFrame(np.nan, index=pd.Index(range(k), name="step"), columns=[f"z_{j}" for j in range(k)] + ["answer"])
        for (i, j), v in z.items():
            m.loc[int(i), f"z_{int(j)}"] = v
        for i, v in a.items():
            m.loc[int(i), "answer"] = v
        return m


def _ints(values: Any, name: str) -> list[int]:
    """``values`` as a list of integers, or :class:`InputError` naming the argument."""
    ok = isinstance(values, (list, tuple, range)) and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values)
    if not ok:
        raise InputError(f"step_influence: {name}={values!r}: give a list of integers (latent counts).")
    return [int(v) for v in values]


def _do(intervention: Any, sub: LatentTrace, seed: int) -> Intervention:
    if isinstance(intervention, str):
        if intervention == "swap":
            if len(sub) < 2:
                raise InterventionError("step_influence: intervention='swap' needs at least 2 examples with the "
                                        "modal latent count; give more examples or intervention='noise'.")
            return Swap(sub, tuple(int(j) for j in derangement(len(sub), seed)))
        if intervention == "noise":
            return ReplaceNoise(seed=seed)
        raise InputError(f"step_influence: intervention={intervention!r}; use 'swap', 'noise' or an Intervention.")
    return intervention


def _oracle_values(oracle: Any, sub: LatentTrace, k: int) -> tuple[Tensor, list[str | None]]:
    """The oracle latents ``[n, K, d]`` in the order of ``sub`` and the oracle run's answers (``None`` if unknown)."""
    if isinstance(oracle, LatentTrace):
        by_id = {e.example_id: e for e in oracle.examples}
        zs = {i: by_id[i].z for i in by_id}
        answers = {i: by_id[i].answer_text for i in by_id}
    elif isinstance(oracle, Mapping):
        zs, answers = {str(i): torch.as_tensor(v) for i, v in oracle.items()}, {}
    else:
        raise InputError(
            f"step_influence: oracle={type(oracle).__name__}: give a LatentTrace of the same examples (e.g. the run of "
            "their counterfactual inputs) or {example_id: tensor [K, d]}. LVR region features and Mirage helper-image "
            "tokens are not read from the data by latentprobe: compute them per example and pass the mapping.")
    missing = [i for i in sub.example_ids if i not in zs]
    bad = [i for i in sub.example_ids if i in zs and tuple(zs[i].shape) != (k, sub[0].z.shape[-1])]
    if missing or bad:
        raise InputError(f"step_influence: the oracle lacks examples {missing[:5]} or has latents of another shape "
                         f"for {bad[:5]} (each needs [{k}, {sub[0].z.shape[-1]}]); run the oracle on the same examples "
                         "with the same latent count.")
    return torch.stack([zs[i].float() for i in sub.example_ids]), [answers.get(i) for i in sub.example_ids]


class _Rows:
    """Collects the long table; ``answer`` writes one example's answer metrics against the clean run."""

    def __init__(self, clean: LatentTrace, golds: list[str | None], gids: list[int | None], scorer: Any,
                 examples: list[Any]) -> None:
        self.clean, self.golds, self.gids, self.scorer, self.examples = clean, golds, gids, scorer, examples
        self.recs: list[dict[str, Any]] = []

    def add(self, eid: str, cond: str, step: int, target: int, metric: str, value: float) -> None:
        self.recs.append({"example_id": eid, "condition": cond, "step": int(step), "target_step": int(target),
                          "metric": metric, "value": float(value)})

    def _glp(self, e: Any, n: int) -> float:
        lp, gid = e.first_token_logprobs, self.gids[n]
        return float(lp.double()[gid]) if lp is not None and gid is not None and 0 <= gid < lp.numel() else np.nan

    def _correct(self, e: Any, n: int) -> float:
        if self.golds[n] is None:
            return np.nan
        c = _score(e.answer_text, self.golds[n], self.scorer, self.examples[n])[0]
        return 0.0 if np.isnan(c) else c  # an unreadable answer counts as wrong (as in z_to_y)

    def answer(self, out: LatentTrace, cond: str, step: int = -1, moved_to: list[str | None] | None = None) -> None:
        for n, (c, e) in enumerate(zip(self.clean.examples, out.examples)):
            eid = c.example_id
            self.add(eid, cond, step, -1, "flip", float(e.answer_text != c.answer_text))
            self.add(eid, cond, step, -1, "n_latents", e.num_latents)
            d = self._glp(e, n) - self._glp(c, n)
            if np.isfinite(d):
                self.add(eid, cond, step, -1, "gold_logprob_change", d)
            if self.golds[n] is not None:
                self.add(eid, cond, step, -1, "correct", self._correct(e, n))
            if moved_to is not None and moved_to[n] is not None and moved_to[n] != c.answer_text:
                self.add(eid, cond, step, -1, "moved", float(e.answer_text == moved_to[n]))

    def latents(self, out: LatentTrace, cond: str, step: int) -> None:
        for c, e in zip(self.clean.examples, out.examples):
            for j in range(min(c.num_latents, e.num_latents)):
                cos, l2 = latent_distances(c.z[j], e.z[j])
                self.add(c.example_id, cond, step, j, "one_minus_cos", cos)
                self.add(c.example_id, cond, step, j, "rel_l2", l2)


def _summarize(table: pd.DataFrame, *, ci: float, n_boot: int, seed: int) -> pd.DataFrame:
    recs = []
    clean_correct = table[(table.condition == "clean") & (table.metric == "correct")].set_index("example_id").value
    keys = ["condition", "step", "target_step", "metric"]
    for (cond, step, target, metric), g in table.groupby(keys, sort=False):
        v = g.value.to_numpy(dtype=float)
        v = v[np.isfinite(v)]
        if not len(v) or metric == "n_latents" or cond == "clean":  # clean rows: the reference of accuracy_change
            continue
        if metric == "correct":
            before = clean_correct.reindex(g.example_id).to_numpy(dtype=float)
            iv, metric = paired_difference_ci(before, g.value.to_numpy(dtype=float), level=ci, seed=seed,
                                              n_boot=n_boot), "accuracy_change"
        else:
            iv = one_sample_ci(v, level=ci, seed=seed, n_boot=n_boot)
        recs.append({"condition": cond, "step": step, "target_step": target, "metric": metric,
                     "estimate": iv.estimate, "ci_low": iv.low, "ci_high": iv.high, "n": iv.n,
                     "p_value": np.nan if iv.p_value is None else iv.p_value, "method": iv.method, "note": iv.note})
    return T.STEP_SUMMARY.frame(recs) if recs else T.STEP_SUMMARY.empty()


def _influence_runs(runner: LatentRunner, sub: LatentTrace, do: Intervention, k: int,
                    batch_size: int) -> list[LatentTrace]:
    """``do(z_i)`` in propagate mode for every step ``i``, as ``runner.intervene(sub, do, steps=[i],
    mode="propagate")`` gives each, run as one sweep (:func:`latentprobe.engine.many.run_many`): the K conditions
    of ``batch_size`` examples per batch, each example's prompt prefilled once and its KV cache shared by the K
    rows; condition ``i`` feeds latents ``0..i-1`` as recorded."""
    from latentprobe.engine import modes
    from latentprobe.engine.many import run_many

    imode, fns, layers, cfg, _ = runner._setup(sub, [do], None, (0,), "propagate", None, batch_size, False, None)
    by_step = [[e.check_steps([i]) for e in sub.examples] for i in range(k)]
    res = run_many(runner._decoder, runner.tokenizer, sub.examples, by_step[0], fns * k, layers, imode, cfg, None,
                   False, max(1, batch_size) * k, chosen_by=by_step)
    return [LatentTrace(tuple(r), sub.spec, modes.result_config(sub, imode, fns[0], [i], layers, False))
            for i, r in enumerate(res)]


def step_influence(runner: LatentRunner, trace: LatentTrace, *, intervention: str | Intervention = "swap",
                   gold: Any = None, early_exit: bool | Sequence[int] = True, counts: Sequence[int] = (),
                   oracle: LatentTrace | Mapping[str, Tensor] | None = None, format_only: bool = True,
                   no_latents: bool = True, influence: bool = True, scorer: Any = "exact", gold_prefix: str = "", seed: int = 0,
                   n_boot: int = 2000, ci: float = 0.95, batch_size: int = 8,
                   indices: Sequence[int] | None = None) -> StepResult:
    """The step -> step influence matrix and the step-structure conditions (see the module docs).

    Parameters
    ----------
    runner : LatentRunner
    trace : LatentTrace
        The clean run (``runner.run``); its examples with the most common latent count K are used.
    intervention : ``"swap"``, ``"noise"`` or Intervention
        ``do(z_i)`` of the influence matrix (applied at step ``i`` only, layer 0, ``propagate`` mode).
    gold : sequence, ``{example_id: gold}`` or InputSet, optional
        Gold answers (as in :func:`~latentprobe.causal.z_to_y`): adds ``gold_logprob_change`` and ``correct``.
    early_exit : bool or sequence of int
        Latent counts ``k`` after which the span is closed (``True``: ``1..K``; ``False``: none).
    counts : sequence of int
        Latent counts ``K'`` to run (``K`` itself reproduces the clean trace).
    oracle : LatentTrace or ``{example_id: tensor [K, d]}``, optional
        Latents of another run to inject at every step (the ``oracle`` condition).
    format_only, no_latents, influence : bool
        Run these conditions (``influence``: the K propagate runs of the matrix).
    scorer, gold_prefix
        As in :func:`~latentprobe.causal.z_to_y`.
    seed, n_boot, ci
        Seed of the swap and noise draws and of the bootstrap; resamples; interval level.
    batch_size : int
        Examples per forward pass (the influence runs hold all K conditions of each: ``batch_size x K`` rows).
    indices : sequence of int, optional
        Run only these examples of ``trace`` (K and the swap partners still come from the whole trace): a study
        runs its examples unit by unit this way (:func:`step_rows`).

    Returns
    -------
    StepResult
        ``.table`` (long), ``.summary`` (intervals), ``.matrix()`` (the K x K influence matrix + answer).

    Raises
    ------
    InputError
        Malformed arguments, or an oracle that does not match the examples.
    InterventionError
        No example entered latent mode, or a swap with fewer than 2 examples.

    Examples
    --------
    On the ``mediated`` toy, a swapped step changes every later latent and leaves earlier ones exactly alone:

    >>> from latentprobe import toy
    >>> from latentprobe.causal import step_influence
    >>> tm = toy.load("mediated")
    >>> runner = tm.runner()
    >>> trace = runner.run(**toy.toy_inputs(tm.examples("test", 6)).run_kwargs(), progress=False)
    >>> res = step_influence(runner, trace, early_exit=False, format_only=False, no_latents=False, n_boot=200)
    >>> m = res.matrix()
    >>> float(m.loc[2, "z_0"]), float(m.loc[2, "z_1"]), bool(m.loc[0, "z_3"] > 0)
    (0.0, 0.0, True)
    """
    check_analysis_args(n_boot=n_boot, seed=seed, batch_size=batch_size, confidence=ci)
    table, config = step_rows(runner, trace, intervention=intervention, gold=gold, early_exit=early_exit,
                              counts=counts, oracle=oracle, format_only=format_only, no_latents=no_latents,
                              influence=influence, scorer=scorer, gold_prefix=gold_prefix, seed=seed,
                              batch_size=batch_size, indices=indices)
    return StepResult(table, _summarize(table, ci=ci, n_boot=n_boot, seed=seed), {**config, "n_boot": int(n_boot),
                                                                                  "ci": float(ci)})


def step_rows(runner: LatentRunner, trace: LatentTrace, *, intervention: str | Intervention = "swap", gold: Any = None,
              early_exit: bool | Sequence[int] = True, counts: Sequence[int] = (),
              oracle: LatentTrace | Mapping[str, Tensor] | None = None, format_only: bool = True,
              no_latents: bool = True, influence: bool = True, scorer: Any = "exact", gold_prefix: str = "",
              seed: int = 0, batch_size: int = 8,
              indices: Sequence[int] | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """:func:`step_influence`'s rows (:class:`~latentprobe.schema_steps.STEP_ROWS`) and configuration, without the
    summary: what a study stores unit by unit (a unit's ``indices``; ``oracle`` needs only those examples).
    Arguments as in :func:`step_influence`; returns ``(rows, config)``."""
    if not isinstance(trace, LatentTrace):
        raise InputError(f"trace={type(trace).__name__}: step_influence takes the LatentTrace returned by runner.run().")
    selection = trace.latent_selection()
    kept, k = list(selection.indices), selection.num_latents
    if not kept:
        raise InterventionError("step_influence: no example of the trace entered latent mode; nothing to intervene on.")
    every = trace.select(kept)
    do = _do(intervention, every, seed)  # swap partners from every kept example, whichever examples run
    if indices is not None:
        bad = [i for i in indices if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < len(trace)]
        if bad:
            raise InputError(f"step_influence: indices {bad[:5]}: give positions of examples in the trace "
                             f"(0..{len(trace) - 1}).")
        mine = {int(i) for i in indices}
        pos = [j for j, i in enumerate(kept) if i in mine]
        kept = [kept[j] for j in pos]
        if isinstance(do, Swap) and do.source is every:
            do = Swap(every, tuple(do.mapping[j] for j in pos) if do.mapping is not None else None)
    sub = trace.select(kept)
    scorer = check_scorer(scorer)
    golds_all = _gold_list(gold, trace.example_ids)
    golds = [None] * len(kept) if golds_all is None else [golds_all[i] for i in kept]
    examples = scoring_examples(sub.example_ids, gold)
    check_golds(scorer, None if golds_all is None else golds, examples)
    gids = [_gold_token_id(runner.tokenizer, g, gold_prefix) for g in golds]
    exits = list(range(1, k + 1)) if early_exit is True else [] if early_exit is False else _ints(early_exit, "early_exit")
    counts = _ints(counts, "counts")
    if any(x < 0 or x > k for x in exits):
        raise InputError(f"step_influence: early_exit={list(exits)}: give latent counts in 0..{k} (K = {k}).")
    if runner.spec.open_mode == "prompt" and any(int(c) != k for c in counts):
        raise InputError(f"step_influence: counts={list(counts)}: spec {runner.spec.name!r} reads its latent slots from "
                         "the prompt (open_mode='prompt', as Coconut's), so the count is the number of slots the "
                         "prompts hold; build the prompts with K' slots, run them, and compare the two traces.")
    oracle_z = _oracle_values(oracle, sub, k) if oracle is not None and len(sub) else None
    kw = dict(batch_size=batch_size, progress=False)
    slot = runner.rspec.slot_id if runner.rspec.slot_id is not None else runner.rspec.placeholder_id
    config = {"analysis": "steps", "n": len(trace), "n_kept": len(selection.indices), "num_latents": k,
              "kept": selection.to_dict(), "intervention": intervention if isinstance(intervention, str)
              else type(intervention).__name__, "early_exit": exits, "counts": [int(c) for c in counts],
              "influence": bool(influence), "oracle": oracle is not None,
              "format_only_token": None if not format_only else int(slot), "seed": int(seed)}
    if not len(sub):  # none of these examples has the modal latent count
        return T.STEP_ROWS.empty(), config
    rows = _Rows(sub, golds, gids, scorer, examples)
    rows.answer(sub, "clean")
    for i, out in enumerate(_influence_runs(runner, sub, do, k, batch_size) if influence else []):
        rows.latents(out, "influence", i)
        rows.answer(out, "influence", i)
    for x in exits:
        rows.answer(runner.intervene(early_exit_trace(sub, x), None, mode="redecode", **kw), "early_exit", x)
    budget = int(sub.config.get("max_new_tokens", 32))
    for kk in counts:
        alt = with_latent_count(runner, int(kk))
        more = None if int(kk) <= k else budget + int(kk) - k
        out = alt.intervene(sub, None, mode="propagate", max_new_tokens=more, **kw)
        rows.latents(out, "count", int(kk))
        rows.answer(out, "count", int(kk))
    if oracle_z is not None:
        out = runner.intervene(sub, Replace(oracle_z[0]), mode="redecode", **kw)
        rows.answer(out, "oracle", moved_to=oracle_z[1])
    if format_only:
        vec = runner.parts.embed.weight[int(slot)].detach().float().cpu()
        rows.answer(runner.intervene(sub, Replace(vec), mode="redecode", **kw), "format_only")
    if no_latents:
        rows.answer(runner.intervene(sub, None, mode="redecode", drop_latents=True, **kw), "no_latents")
    return T.STEP_ROWS.frame(rows.recs), config
