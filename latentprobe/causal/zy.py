"""Z -> Y: does changing the latents change the answer? (:func:`z_to_y`, :func:`summarize_z_to_y`,
:func:`default_interventions`)"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from latentprobe import schema as S
from latentprobe import stats as _stats
from latentprobe.causal.common import (
    MODES, NO_GOLD, _accuracy_rows, _answer_sig, _chunks, _effect_row, _finite, _gold_list, _gold_token_id, _kl,
    _open, _outcome, _run_units, _score, _status,
    check_analysis_args, check_answers, check_golds, check_scorer, scorer_fingerprint, scoring_examples,
)
from latentprobe.causal.ood import changed_steps, flag_ood, ood_reference
from latentprobe.causal.results import ZYResult
from latentprobe.errors import InputError, InterventionError
from latentprobe.fingerprint import (
    callable_fingerprint, intervention_fingerprint, runner_fingerprint, trace_fingerprint,
)
from latentprobe.interventions import (
    AddNoise, GaussianReplace, MatchedDisplacement, MeanAblate, NoLatents, RepeatFirst, Replace, ReplaceNoise, RewriteSpan,
    Scale,
    Swap, Zero,
)
from latentprobe.perturbations import InputSet, derangement
from latentprobe.trace import LatentTrace

if TYPE_CHECKING:
    from latentprobe.engine.loop import LogitsProcessor
    from latentprobe.scoring import Scorer
    from latentprobe.engine import LatentRunner

__all__ = ["SUITE", "default_interventions", "z_to_y", "summarize_z_to_y", "ood_by_condition"]

#: The names of :func:`default_interventions` (the swaps only when at least two examples entered latent mode).
SUITE = ("shared_tensor", "add_noise", "replace_noise", "near_zero", "zero", "mean_ablate", "repeat_first",
         "no_latents", "random_direction", "swap", "swap_placebo")


def default_interventions(trace: LatentTrace, *, seed: int = 0) -> dict[str, Any]:
    """The full suite, built from ``trace`` (its examples with the latent count of
    :func:`~latentprobe.trace.modal_latent_count`: the most common non-zero count, ties to the largest).

    Paper: ``shared_tensor`` (one random vector, of the clean latents' mean norm, written into
    every latent of every example), ``add_noise`` (Gaussian noise of about the latent's own norm),
    ``replace_noise`` (:class:`~latentprobe.interventions.GaussianReplace`), ``near_zero`` (``Scale(1e-3)``).
    Wider: ``zero``, ``mean_ablate`` (per-step mean), ``swap`` (another example's latents, seeded
    derangement), ``repeat_first``, ``no_latents`` (:class:`~latentprobe.interventions.NoLatents`), ``random_direction``
    (``ReplaceNoise``: a random direction with the latent's norm) and ``swap_placebo``
    (:class:`~latentprobe.interventions.MatchedDisplacement`). Swaps need at least 2 usable examples and are left out
    otherwise. Index-based interventions (swaps) index ``trace``.

    Parameters
    ----------
    trace : LatentTrace
        The clean trace (sets the noise scales and the mean).
    seed : int
        Seed of the random interventions.

    Returns
    -------
    dict[str, Intervention]

    Examples
    --------
    >>> from latentprobe import toy
    >>> from latentprobe.causal import default_interventions
    >>> tm = toy.load("mediated")
    >>> trace = tm.run(tm.examples("test", 4))
    >>> sorted(default_interventions(trace))[:4]
    ['add_noise', 'mean_ablate', 'near_zero', 'no_latents']
    """
    kept = list(trace.latent_selection().indices)
    if not kept:
        raise InterventionError("no example of the trace entered latent mode; there is nothing to intervene on.")
    zs = torch.stack([trace[i].z.float() for i in kept])  # [n, K, d]
    d = zs.shape[-1]
    mean_norm = float(zs.norm(dim=-1).mean())
    rms = float(zs.pow(2).mean().sqrt())
    g = torch.Generator()
    g.manual_seed(int(seed) * 7919 + 17)
    v = torch.randn(d, generator=g)
    shared = v / v.norm() * mean_norm
    suite: dict[str, Any] = {
        "shared_tensor": Replace(shared),
        "add_noise": AddNoise(scale=1.0, seed=seed),
        "replace_noise": GaussianReplace(std=rms, seed=seed),
        "near_zero": Scale(1e-3),
        "zero": Zero(),
        "mean_ablate": MeanAblate(zs.mean(0)),
        "repeat_first": RepeatFirst(),
        "no_latents": NoLatents(),
        "random_direction": ReplaceNoise(seed=seed + 1),
    }
    if len(kept) >= 2:
        perm = derangement(len(kept), seed)
        mapping = list(range(len(trace)))
        for a, b in zip(kept, perm):
            mapping[a] = kept[b]
        suite["swap"] = Swap(trace, tuple(mapping))
        suite["swap_placebo"] = MatchedDisplacement(trace, tuple(mapping), seed=seed)
    return suite


def _for_chunk(iv: Any, orig_idx: list[int], n_trace: int) -> Any:
    """Re-express an index-based intervention for a chunk (whose examples are re-indexed from 0)."""
    if isinstance(iv, (Swap, MatchedDisplacement)):
        m = iv.mapping if iv.mapping is not None else tuple((i + 1) % len(iv.source) for i in range(n_trace))
        return dataclasses.replace(iv, mapping=tuple(int(m[i]) for i in orig_idx))
    if isinstance(iv, Replace) and isinstance(iv.value, Tensor) and iv.value.ndim == 3:
        return Replace(iv.value[orig_idx])
    return iv


def z_to_y(runner: LatentRunner, trace: LatentTrace, interventions: Mapping[str, Any] | None = None, *,
           modes: Sequence[str] = MODES, gold: Sequence[str | None] | Mapping[str, str] | InputSet | None = None,
           steps: Sequence[int] | None = None, layers: Sequence[int] = (0,), out_dir: str | os.PathLike | None = None,
           seed: int = 0, n_boot: int = 2000, ci: float = 0.95, chunk_size: int = 16, batch_size: int = 8,
           max_new_tokens: int | None = None, logits_processor: LogitsProcessor | None = None,
           scorer: str | Scorer | Callable[..., Any] | None = "exact",
           gold_prefix: str = "", overwrite: bool = False, progress: bool = True, name: str = "z_to_y") -> ZYResult:
    """How much does the answer change when the latents change?

    Every intervention is run in every mode on the examples of ``trace`` that entered latent mode
    with the trace's most common number of latents (ties to the largest:
    :func:`~latentprobe.trace.modal_latent_count`, the rule of ``trace.stack``), and compared example
    by example with the no-op control of the same mode (``intervention="none"``, see the module docs).
    ``config["kept"]`` counts the examples kept and those left out (no latents, another count).

    Parameters
    ----------
    runner : LatentRunner
    trace : LatentTrace
        The clean run (from ``runner.run``).
    interventions : ``{name: Intervention | callable}``, optional
        Default: :func:`default_interventions` (the paper's four and the wider suite). Callables
        receive examples re-indexed within a chunk: look data up by ``example.example_id``. Swaps
        and ``Replace([n, K, d])`` index ``trace`` and are remapped per chunk automatically.
        ``NoLatents`` runs in ``redecode`` mode only, and so does ``RewriteSpan`` (the span's tokens
        replaced, the answer decoded after it: :func:`latentprobe.engine.rewrite.rewrite_spans`).
    modes : sequence of ``"replay" | "propagate" | "redecode"``
        In replay the answer is teacher forced: ``answer`` holds the greedy predictions at the
        recorded answer positions and ``recorded_logprob`` scores the recorded answer. With every
        step intervened on (the default ``steps``) and an intervention that does not read the latent
        it replaces (``zero``, ``swap``, ``mean_ablate``, ``shared_tensor``, ``replace_noise``,
        ``repeat_first``: :data:`latentprobe.report.notes.INDEPENDENT_INTERVENTIONS`), propagate
        and redecode feed the same vector at every latent position and give the same answers: one
        measurement, reported twice (:data:`latentprobe.report.notes.PROPAGATE_REDECODE_NOTE`).
        Pass ``steps=[k]`` for propagate to ask what changing one latent does to the later ones.
    gold : sequence (aligned with ``trace``), ``{example_id: gold}`` or an InputSet, optional
        Without gold, accuracy metrics are NaN (flips, log-probs of nothing and KL remain). A mapping or an
        InputSet is matched by example id, in any order, and must hold every id of ``trace`` and no other
        (:class:`~latentprobe.errors.InputError` names the missing and unknown ids).
    steps, layers
        Latent steps to intervene on (default all) and residual layers to patch (default the fed z).
    scorer : str, Scorer or callable
        How an answer is scored against its gold (:func:`latentprobe.scoring.scorer_from_name`):
        ``"exact"`` (default; SQuAD-style normalised exact match), ``"choice"`` (the option letter
        read by :func:`latentprobe.scoring.parse_choice`; each example's options come from
        ``meta["options"]`` when ``gold`` is an InputSet, or from a
        ``ChoiceScorer(options_by_example={example_id: options})``), ``"numeric"`` (last number),
        ``"first_word"`` (first words; flips then compare the first answer token only), a
        :class:`~latentprobe.scoring.Scorer`, or a function ``(answer, gold, example) -> bool | None``.
        The scorer's ``example`` is ``{"example_id": ..., **meta}``. Rows record ``parsed`` and
        ``parse_method``; an answer that cannot be read keeps ``correct`` NaN and is counted as
        wrong in the accuracy metrics (see :func:`summarize_z_to_y`). Gold answers the scorer
        cannot score are refused before any run.
    gold_prefix : str
        Prepended to the gold answer before tokenising it for ``gold_logprob`` (e.g. ``" "`` for
        BPE vocabularies whose answers start with a space).
    out_dir, overwrite, seed, n_boot, ci, chunk_size, batch_size, logits_processor, progress, name
        As in :func:`~latentprobe.causal.x_to_z` (``seed`` also seeds the default suite's random draws);
        ``max_new_tokens`` defaults to the trace's.
    max_new_tokens : int | None
        Answer budget of ``propagate`` and ``redecode`` (default the trace's).

    Returns
    -------
    ZYResult
        Rows and summary also say how far each condition's fed latents are from the clean ones
        (:mod:`latentprobe.causal.ood`): ``ood_nn_ratio`` (distance to the nearest clean latent of
        another example at the same step, over the clean leave-one-out distance; the control about 1,
        ``swap`` 0), ``ood_norm_ratio`` and, in the summary, the flag ``ood``. The score needs layer 0
        among ``layers`` (the fed latents) and at least 2 kept examples; otherwise it is NaN.

    Examples
    --------
    Zeroing the ``mediated`` toy's latents destroys its answers (compared with the no-op control
    of the same mode):

    >>> from latentprobe import Zero, toy
    >>> from latentprobe.causal import z_to_y
    >>> tm = toy.load("mediated")
    >>> inputs = toy.toy_inputs(tm.examples("test", 8))
    >>> runner = tm.runner()
    >>> trace = runner.run(**inputs.run_kwargs(), max_new_tokens=8, progress=False)
    >>> zy = z_to_y(runner, trace, {"zero": Zero()}, modes=["redecode"], gold=inputs.gold, n_boot=200,
    ...             progress=False)
    >>> flips = zy.summary[(zy.summary.intervention == "zero") & (zy.summary.metric == "flip_rate")]
    >>> float(flips.estimate.iloc[0])
    1.0
    """
    check_analysis_args(n_boot=n_boot, seed=seed, confidence=ci, chunk_size=chunk_size, batch_size=batch_size,
                        max_new_tokens=max_new_tokens)
    if not isinstance(trace, LatentTrace):
        raise InputError(f"trace={type(trace).__name__}: z_to_y takes the LatentTrace returned by runner.run().")
    check_answers(trace, "z_to_y: the trace")
    modes = list(dict.fromkeys(modes))
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise InputError(f"modes {bad or modes} not understood; use a subset of {MODES}.")
    for arg, vals in (("steps", steps), ("layers", layers)):  # "all" would be read letter by letter
        if vals is not None and (isinstance(vals, (str, bytes)) or not hasattr(vals, "__iter__")):
            raise InputError(f"z_to_y: {arg}={vals!r}: give a list of integers (layers: the residual layers to patch).")
    scorer = check_scorer(scorer)
    ids = trace.example_ids
    golds_all = _gold_list(gold, ids)
    examples = scoring_examples(ids, gold)
    check_golds(scorer, golds_all, examples)
    selection = trace.latent_selection()
    kept, k = list(selection.indices), selection.num_latents
    dropped_recs = []
    for i, e in enumerate(trace):
        if e.num_latents == 0:
            dropped_recs.append(_status(e.example_id, "all", "not_entered", 0, 0, -1))
        elif e.num_latents != k:
            dropped_recs.append(_status(e.example_id, "all", "latent_count_not_modal", e.num_latents, e.num_latents, -1))
    dropped = S.STATUS.frame(dropped_recs)
    if interventions is None:
        interventions = default_interventions(trace, seed=seed) if kept else {}
    interventions = dict(interventions)
    if S.CONTROL_INTERVENTION in interventions:
        raise InputError(f"{S.CONTROL_INTERVENTION!r} is reserved for the no-op control; rename that intervention.")
    for nm, iv in interventions.items():
        intervention_fingerprint(iv)  # validates
    chunks = [[kept[j] for j in c] for c in _chunks(len(kept), chunk_size)] if kept else []
    sweep_cfg = {
        "analysis": "z_to_y", "trace": trace_fingerprint(trace), "n": len(trace), "runner": runner_fingerprint(runner),
        "interventions": {nm: intervention_fingerprint(iv) for nm, iv in interventions.items()}, "modes": modes,
        "gold": None if golds_all is None else hashlib.sha1(json.dumps(golds_all).encode()).hexdigest()[:16],
        "steps": None if steps is None else sorted({int(s) for s in steps}), "layers": sorted({int(l) for l in layers}),
        "seed": int(seed), "chunk_size": int(chunk_size), "batch_size": int(batch_size),
        "max_new_tokens": max_new_tokens, "logits_processor": callable_fingerprint(logits_processor, what="logits processor"),
        "scorer": scorer_fingerprint(scorer),
        "gold_prefix": gold_prefix, "columns": [str(c) for c in S.ZY_ROWS.COLUMNS],
    }
    config = {**sweep_cfg, "n_boot": int(n_boot), "ci": float(ci), "n_kept": len(kept), "num_latents": k,
              "kept": selection.to_dict(),
              "no_latents_modes": ["redecode"], "reference": "no-op control of the same mode",
              "out_dir": None if out_dir is None else str(out_dir)}
    store = _open(out_dir, name, sweep_cfg, ("example_id",), overwrite)
    tok = runner.tokenizer
    gids = None if golds_all is None else [_gold_token_id(tok, g, gold_prefix) for g in golds_all]
    ikw = dict(steps=steps, layers=tuple(layers), batch_size=batch_size, max_new_tokens=max_new_tokens,
               logits_processor=logits_processor, seed=seed, progress=False)
    swept: dict[tuple[int, str], dict[str, LatentTrace]] = {}
    R = S.ZY_ROWS
    # the out-of-distribution score of the fed latents (latentprobe.causal.ood): against every kept clean example
    ref = (ood_reference(torch.stack([trace[i].z.double() for i in kept]).numpy())
           if len(kept) >= 2 and 0 in {int(l) for l in layers} else None)
    ref_row = {oi: j for j, oi in enumerate(kept)}

    def ood(e: Any, oi: int, mode: str) -> tuple[float, float]:
        at = changed_steps(mode, steps, e.num_latents)
        if ref is None or not at:
            return np.nan, np.nan
        nn, nr = ref.score(e.z.double().numpy(), ref_row[oi])
        nn, nr = nn[at], nr[at]
        return (float(np.median(nn[np.isfinite(nn)])) if np.isfinite(nn).any() else np.nan,
                float(np.median(nr[np.isfinite(nr)])) if np.isfinite(nr).any() else np.nan)

    def sweep(c: int, mode: str) -> dict[str, LatentTrace]:
        # every intervention of a chunk and mode at once, on shared prefixes; the no-op control is the clean
        # trace itself where it provably equals it (runner.intervene_many)
        if (c, mode) not in swept:
            swept.clear()
            conds = {nm: _for_chunk(iv, chunks[c], len(trace)) for nm, iv in interventions.items()
                     if not isinstance(iv, (NoLatents, RewriteSpan))}
            swept[(c, mode)] = runner.intervene_many(
                trace.select(chunks[c]), conds, mode=mode, control=S.CONTROL_INTERVENTION, steps=steps, layers=tuple(layers),
                max_new_tokens=max_new_tokens, logits_processor=logits_processor, seed=seed,
                max_batch=batch_size * (len(conds) + 1), progress=False)
        return swept[(c, mode)]

    def unit(u: tuple[int, str, str]) -> tuple[pd.DataFrame, None]:
        c, mode, nm = u
        sub = trace.select(chunks[c])
        ref = sweep(c, mode)[S.CONTROL_INTERVENTION]
        if isinstance(interventions.get(nm), RewriteSpan):  # the span's tokens replaced, the answer decoded again
            from latentprobe.engine.rewrite import rewrite_spans

            out = rewrite_spans(runner, sub, interventions[nm], max_new_tokens=max_new_tokens, seed=seed,
                                logits_processor=logits_processor, batch_size=batch_size, progress=False)
        elif isinstance(interventions.get(nm), NoLatents):
            out = runner.intervene(sub, None, mode="redecode", drop_latents=True,
                                   **{**ikw, "steps": None, "layers": (0,)})
        else:
            out = sweep(c, mode)[nm]
        recs = []
        for j, (oi, e_clean, e_ref, e_out) in enumerate(zip(chunks[c], sub, ref, out)):
            g = None if golds_all is None else golds_all[oi]
            gid = None if gids is None else gids[oi]
            o, r = _outcome(e_out, g, gid, scorer, examples[oi]), _outcome(e_ref, g, gid, scorer, examples[oi])
            nn_ratio, norm_ratio = ood(e_out, oi, mode)
            recs.append({
                R.EXAMPLE_ID: e_clean.example_id, R.CHUNK: c, R.INTERVENTION: nm, R.MODE: mode,
                R.ANSWER: e_out.answer_text, R.REF_ANSWER: e_ref.answer_text, R.CLEAN_ANSWER: e_clean.answer_text,
                R.GOLD: g, R.CORRECT: o[R.CORRECT], R.REF_CORRECT: r[R.CORRECT],
                R.PARSED: o[R.PARSED], R.PARSE_METHOD: o[R.PARSE_METHOD], R.REF_PARSED: r[R.PARSED],
                R.REF_PARSE_METHOD: r[R.PARSE_METHOD],
                R.FLIP: _answer_sig(e_out, scorer) != _answer_sig(e_ref, scorer),
                R.CHANGED_VS_CLEAN: _answer_sig(e_out, scorer) != _answer_sig(e_clean, scorer),
                R.GOLD_LOGPROB: o[R.GOLD_LOGPROB], R.REF_GOLD_LOGPROB: r[R.GOLD_LOGPROB], R.KL: _kl(e_ref, e_out),
                R.RECORDED_LOGPROB: o[R.RECORDED_LOGPROB] if mode == "replay" else np.nan,
                R.REF_RECORDED_LOGPROB: r[R.RECORDED_LOGPROB] if mode == "replay" else np.nan,
                R.N_LATENTS: e_out.num_latents, R.OOD_NN_RATIO: nn_ratio, R.OOD_NORM_RATIO: norm_ratio,
            })
        return R.frame(recs), None

    units = []
    for c in range(len(chunks)):
        for mode in modes:
            units.append((c, mode, S.CONTROL_INTERVENTION))
            for nm, iv in interventions.items():
                if isinstance(iv, (NoLatents, RewriteSpan)) and mode != "redecode":
                    continue
                units.append((c, mode, nm))
    _run_units(store, None, units, unit, desc=name, progress=progress)
    rows = S.ZY_ROWS.frame(store.results())
    clean_correct, clean_unparseable = None, 0
    if golds_all is not None and kept:
        clean = [_score(trace[i].answer_text, golds_all[i], scorer, examples[i]) for i in kept]
        unread = [bool(np.isnan(c)) and m != NO_GOLD for c, _, m in clean]
        clean_unparseable = sum(unread)
        clean_correct = np.array([0.0 if u else c for u, (c, _, _) in zip(unread, clean)])
    summary = summarize_z_to_y(rows, n_boot=n_boot, seed=seed, ci=ci, clean_correct=clean_correct,
                               clean_unparseable=clean_unparseable, order=[S.CONTROL_INTERVENTION] + list(interventions))
    return ZYResult(rows=rows, summary=summary, dropped=dropped, config=config)


def summarize_z_to_y(rows: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0, ci: float = 0.95,
                     clean_correct: Sequence[float] | None = None, clean_unparseable: int = 0,
                     order: Sequence[str] | None = None) -> pd.DataFrame:
    """Summary of Z -> Y rows, per intervention x mode (long format, one row per metric).

    ``accuracy`` (Wilson interval of mean correctness), ``accuracy_change`` (intervened minus control,
    :func:`latentprobe.stats.binary_outcome_effect`: Tango's paired score interval and the p-value of the
    score test it inverts).
    An answer that has a gold but could not be read (``correct`` NaN, ``parse_method`` not
    ``"no_gold"``) counts as wrong in both, so an intervention that makes the model refuse or
    babble lowers accuracy instead of leaving the comparison; the column ``n_unparseable`` says
    how many answers behind the row were unreadable (this condition's for ``accuracy``, the
    condition's or its control's for ``accuracy_change``; 0 for the other metrics). Then
    ``flip_rate`` (Wilson interval), ``gold_logprob_change`` and ``recorded_logprob_change``
    (:func:`latentprobe.stats.paired_bootstrap_diff`: studentised bootstrap of the per-example
    differences), ``kl`` (studentised bootstrap; :func:`latentprobe.stats.bootstrap_ci`). Examples with a
    missing value (no gold, no first-token distribution) are left out of that metric only; ``n``
    says how many remain. ``clean_correct`` (1.0 / 0.0, unreadable answers as 0.0, NaN without
    gold) adds the original run's accuracy as ``intervention="none", mode="run"``, with
    ``clean_unparseable`` as its ``n_unparseable``. Every row of a condition carries its
    out-of-distribution score (:func:`ood_by_condition`: ``ood_nn_ratio``, ``ood_norm_ratio``, ``ood``;
    NaN and False for the original run's row). ``p_holm`` and ``p_bh`` adjust ``p_value`` over the
    intervention x mode cells of each metric (one family per metric; the no-op control and the
    original run are not in it): call an intervention's effect only when its ``p_holm`` (family-wise
    error) or ``p_bh`` (false discovery rate) is small.

    Parameters
    ----------
    rows : pd.DataFrame
        Z -> Y rows.
    clean_correct : Sequence[float] | None
        The original run's correctness per example (1.0 / 0.0, unreadable answers 0.0, NaN without gold).
    clean_unparseable : int
        Unreadable answers of the original run.
    order : Sequence[str] | None
        Interventions in the order shown (default: as they come).
    n_boot : int
        Bootstrap resamples.
    seed : int
        Seed of the resamples.
    ci : float
        Confidence level of the intervals.

    Returns
    -------
    pandas.DataFrame
    """
    check_analysis_args(n_boot=n_boot, seed=seed, confidence=ci)
    R, T = S.ZY_ROWS, S.ZY_SUMMARY
    out: list[dict[str, Any]] = []
    kw = dict(n_boot=n_boot, seed=seed, confidence=ci)
    prop = dict(kw, method="wilson")  # accuracy, flip rate: Wilson's interval
    cont = dict(kw, method="studentized")  # continuous outcomes, even when all 0 (a KL) or all 1

    def row(eff: _stats.Effect, metric: str, key: dict[str, str], n_unparseable: int = 0) -> dict[str, Any]:
        return _effect_row(eff, **key, **{T.METRIC: metric, T.N_UNPARSEABLE: n_unparseable})

    if clean_correct is not None:
        (cc,) = _finite(np.asarray(clean_correct, dtype=np.float64))
        if cc.size:
            out.append(row(_stats.bootstrap_ci(cc, name="accuracy", **prop), "accuracy",
                           {T.INTERVENTION: S.CONTROL_INTERVENTION, T.MODE: S.RUN_MODE}, int(clean_unparseable)))
    if not rows.empty:
        names = list(order) if order is not None else []
        names += [n for n in dict.fromkeys(rows[R.INTERVENTION]) if n not in names]
        for nm in names:
            for mode in MODES:
                g = rows[(rows[R.INTERVENTION] == nm) & (rows[R.MODE] == mode)]
                if g.empty:
                    continue
                key = {T.INTERVENTION: nm, T.MODE: mode}
                out += _accuracy_rows(g, lambda x, name: _stats.bootstrap_ci(x, name=name, **prop),
                                      lambda a, b, name: _stats.binary_outcome_effect(a, b, name=name, **kw), key)
                out.append(row(_stats.bootstrap_ci(g[R.FLIP].to_numpy(np.float64), name="flip_rate", **prop),
                               "flip_rate", key))
                a, b = _finite(g[R.GOLD_LOGPROB].to_numpy(np.float64), g[R.REF_GOLD_LOGPROB].to_numpy(np.float64))
                if a.size:
                    out.append(row(_stats.paired_bootstrap_diff(a, b, name="gold_logprob_change", **cont),
                                   "gold_logprob_change", key))
                (kl,) = _finite(g[R.KL].to_numpy(np.float64))
                if kl.size:
                    out.append(row(_stats.bootstrap_ci(kl, name="kl", **cont), "kl", key))
                a, b = _finite(g[R.RECORDED_LOGPROB].to_numpy(np.float64),
                               g[R.REF_RECORDED_LOGPROB].to_numpy(np.float64))
                if a.size:
                    out.append(row(_stats.paired_bootstrap_diff(a, b, name="recorded_logprob_change", **cont),
                                   "recorded_logprob_change", key))
    scores = ood_by_condition(rows)
    for r in out:
        r.update(scores.get((r[T.INTERVENTION], r[T.MODE]),
                            {T.OOD_NN_RATIO: np.nan, T.OOD_NORM_RATIO: np.nan, T.OOD: False}))
    return _adjusted(T.frame([{**r, T.P_HOLM: np.nan, T.P_BH: np.nan} for r in out]))


def ood_by_condition(rows: pd.DataFrame) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(intervention, mode): {ood_nn_ratio, ood_norm_ratio, ood}}`` of Z -> Y rows: the medians over the
    condition's examples and the flag of :func:`latentprobe.causal.ood.flag_ood`. A condition whose runs have
    no latent positions (``no_latents``) is out of distribution by construction (its ratios are NaN).

    Parameters
    ----------
    rows : pd.DataFrame
        Z -> Y rows (:class:`~latentprobe.schema.ZY_ROWS`).

    Returns
    -------
    dict[tuple[str, str], dict[str, Any]]
    """
    R, T = S.ZY_ROWS, S.ZY_SUMMARY
    out: dict[tuple[str, str], dict[str, Any]] = {}
    if rows.empty or R.OOD_NN_RATIO not in rows.columns:
        return out
    for (nm, mode), g in rows.groupby([R.INTERVENTION, R.MODE], sort=False):
        med = []
        for col in (R.OOD_NN_RATIO, R.OOD_NORM_RATIO):
            v = g[col].to_numpy(np.float64)
            med.append(float(np.median(v[np.isfinite(v)])) if np.isfinite(v).any() else np.nan)
        removed = bool((g[R.N_LATENTS] == 0).all())
        out[(str(nm), str(mode))] = {T.OOD_NN_RATIO: med[0], T.OOD_NORM_RATIO: med[1],
                                     T.OOD: removed or flag_ood(med[0], med[1])}
    return out


def _adjusted(summary: pd.DataFrame) -> pd.DataFrame:
    """Holm and BH columns: one family per metric over the intervention x mode cells (controls left out)."""
    T = S.ZY_SUMMARY
    cells = ~summary[T.INTERVENTION].isin([S.CONTROL_INTERVENTION]) & (summary[T.MODE] != S.RUN_MODE)
    if cells.any():
        adjusted = _stats.add_adjusted_columns(summary[cells], by=[T.METRIC], holm_col=T.P_HOLM, bh_col=T.P_BH)
        summary.loc[cells, [T.P_HOLM, T.P_BH]] = adjusted[[T.P_HOLM, T.P_BH]].to_numpy()
    return summary
