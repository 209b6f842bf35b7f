"""Mediation: total, natural direct and natural indirect effects of an input change on the answer,
with the latents as mediator (:func:`decompose`, :func:`summarize_mediation`)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from latentprobe import schema as S
from latentprobe import stats as _stats
from latentprobe.causal.common import (
    _chunks, _effect_row, _gold_list, _gold_token_id, _open, _outcome, _pair_reason, _run, _run_units, _status,
    kept_counts,
    check_analysis_args, check_answers, check_golds, check_scorer, scored, scorer_fingerprint, scoring_examples,
    unreadable,
)
from latentprobe.causal.results import MediationResult
from latentprobe.errors import InputError
from latentprobe.fingerprint import (
    callable_fingerprint, inputs_fingerprint, perturbation_fingerprint, runner_fingerprint,
)
from latentprobe.interventions import Replace
from latentprobe.perturbations import InputSet, Perturbation
from latentprobe.schema import EFFECT_KINDS, EFFECT_NAMES, KEPT

if TYPE_CHECKING:
    from latentprobe.engine.loop import LogitsProcessor
    from latentprobe.scoring import Scorer
    from latentprobe.engine import LatentRunner

__all__ = ["decompose", "summarize_mediation"]


_CONDITIONS = (("clean", "clean", "clean"), ("treated", "treated", "treated"),
               ("direct", "treated", "clean"), ("indirect", "clean", "treated"))


def decompose(runner: LatentRunner, inputs: InputSet, treatment: Perturbation, *,
              gold: Sequence[str | None] | Mapping[str, str] | None = None, against: str = "clean",
              outcome: str = "correct", out_dir: str | os.PathLike | None = None, n_boot: int = 2000, ci: float = 0.95,
              seed: int = 0, chunk_size: int = 16, batch_size: int = 8, max_new_tokens: int = 16,
              logits_processor: LogitsProcessor | None = None, scorer: str | Scorer | Callable[..., Any] | None = "exact",
              gold_prefix: str = "", overwrite: bool = False, progress: bool = True,
              name: str = "mediation") -> MediationResult:
    """Total, natural direct and natural indirect effect of ``treatment`` on the answer, through Z.

    Four conditions per example (:func:`latentprobe.stats.mediation_effects`):

    * clean    ``(x,  Z(x))``: the clean run, answer re-decoded from its own latents;
    * treated  ``(x', Z(x'))``: the perturbed run, answer re-decoded from its own latents;
    * direct   ``(x', Z(x))``: the perturbed run's prefix with its latents replaced by the clean
      ones (``redecode`` with ``Replace([n, K, d])``);
    * indirect ``(x,  Z(x'))``: the clean run's prefix with the perturbed latents.

    ``TE = E[y_treated - y_clean]``, ``NDE = E[y_direct - y_clean]``, ``NIE = E[y_indirect -
    y_clean]``. All four answers are produced by ``redecode`` runs, so the effects are not
    confounded by differences between free generation and re-decoding. Examples count only when
    both runs entered latent mode with the same number of latents (latents are swapped step by
    step) and a gold answer is known.

    Parameters
    ----------
    treatment : Perturbation
        The input change ``x -> x'`` (e.g. :class:`~latentprobe.perturbations.Counterfactual`).
    gold : optional
        Gold answers aligned with ``inputs``, or ``{example_id: gold}`` / an InputSet matched by example id
        (every id of ``inputs``, no other). Default: ``inputs.gold``.
    against : ``"clean"`` (default) or ``"treated"``
        Outcomes are measured against the *clean* gold answer by default, in all four conditions:
        a negative TE then means the change of input moves the model away from the clean input's
        answer. ``"treated"`` uses the perturbed inputs' gold (e.g. the counterfactual answer).
    outcome : ``"correct"`` (default) or ``"gold_logprob"``
        Per-example outcome: correctness (TE, NDE, NIE get Tango's paired score interval and score-test p) or
        the first-token log-probability of the gold answer.
    scorer : str, Scorer or callable
        How an answer is scored, as in :func:`~latentprobe.causal.z_to_y` (default ``"exact"``);
        a :class:`~latentprobe.scoring.ChoiceScorer` reads each example's options from
        ``inputs.meta`` (``meta["options"]``). Rows record ``parsed`` and ``parse_method``; an
        unreadable answer keeps ``correct`` NaN and counts as wrong in the effects (see
        :func:`summarize_mediation`).
    out_dir, overwrite, seed, n_boot, ci, chunk_size, batch_size, max_new_tokens, logits_processor
        As in :func:`~latentprobe.causal.x_to_z`; ``gold_prefix`` as in :func:`~latentprobe.causal.z_to_y`.
    runner : LatentRunner
        The runner.
    inputs : InputSet
        The clean inputs (with gold answers, or ``gold``).
    gold_prefix : str
        As in :func:`~latentprobe.causal.z_to_y`.
    progress : bool
        Show progress bars.
    name : str
        Name of the analysis (its folder under ``out_dir``).

    Returns
    -------
    MediationResult

    Examples
    --------
    In the ``mediated`` toy every effect of the image runs through the latents (NDE 0):

    >>> from latentprobe import toy
    >>> from latentprobe.causal import decompose
    >>> tm = toy.load("mediated")
    >>> inputs = toy.toy_inputs(tm.examples("test", 8))
    >>> med = decompose(tm.runner(), inputs, toy.Counterfactual(seed=0), n_boot=200, progress=False)
    >>> effects = med.summary.set_index("effect").estimate
    >>> float(effects["NDE"]), bool(effects["NIE"] < -0.5)
    (0.0, True)
    """
    if outcome not in ("correct", "gold_logprob"):
        raise InputError(f"outcome={outcome!r}; use 'correct' or 'gold_logprob'.")
    if against not in ("clean", "treated"):
        raise InputError(f"against={against!r}; use 'clean' or 'treated'.")
    scorer = check_scorer(scorer)
    if not isinstance(treatment, Perturbation):
        raise InputError(f"treatment must be a Perturbation, got {type(treatment).__name__}.")
    check_analysis_args(n_boot=n_boot, seed=seed, confidence=ci, chunk_size=chunk_size, batch_size=batch_size,
                        max_new_tokens=max_new_tokens)
    n = len(inputs)
    if n == 0:
        raise InputError("the InputSet is empty.")
    treatment = treatment.bind(inputs)
    chunks = _chunks(n, chunk_size)
    if against == "clean":
        golds = _gold_list(gold if gold is not None else inputs.gold, inputs.example_ids)
        if golds is None:
            raise InputError("no gold answers: pass gold=... or give the InputSet gold answers.")
    else:
        golds = None if gold is None else _gold_list(gold, inputs.example_ids)
    examples = scoring_examples(inputs.example_ids, inputs)
    check_golds(scorer, golds, examples)
    sweep_cfg = {
        "analysis": "mediation", "inputs": inputs_fingerprint(inputs), "n": n, "runner": runner_fingerprint(runner),
        "treatment": perturbation_fingerprint(treatment), "against": against,
        "gold": None if golds is None else hashlib.sha1(json.dumps(golds).encode()).hexdigest()[:16],
        "seed": int(seed), "chunk_size": int(chunk_size), "batch_size": int(batch_size),
        "max_new_tokens": int(max_new_tokens), "logits_processor": callable_fingerprint(logits_processor, what="logits processor"),
        "scorer": scorer_fingerprint(scorer),
        "gold_prefix": gold_prefix,
    }
    config = {**sweep_cfg, "outcome": outcome, "n_boot": int(n_boot), "ci": float(ci), "out_dir": None if out_dir is None else str(out_dir),
              "conditions": {c: {"x": x, "z": z} for c, x, z in _CONDITIONS}, "decode": "redecode (all four conditions)"}
    rows_store = _open(out_dir, name, sweep_cfg, ("example_id",), overwrite)
    status_store = _open(out_dir, f"{name}_status", sweep_cfg, ("example_id",), overwrite)
    tok = runner.tokenizer
    tname = treatment.name

    def unit(c: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        idx = chunks[c]
        sub = inputs.select(idx)
        tsub = treatment.apply(inputs, idx)
        if against == "treated":
            g_chunk = [golds[i] for i in idx] if golds is not None else list(tsub.gold or [None] * len(idx))
        else:
            g_chunk = [golds[i] for i in idx]
        kw = dict(max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed, logits_processor=logits_processor)
        clean = _run(runner, sub, **kw)
        check_answers(clean, f"decompose, chunk {c}: the clean run")
        treated = _run(runner, tsub, **kw)
        status, kept = [], []
        for j, (ec, et) in enumerate(zip(clean, treated)):
            reason = _pair_reason(ec.num_latents, et.num_latents, "treated")
            if reason == KEPT and g_chunk[j] is None:
                reason = S.NO_GOLD
            status.append(_status(ec.example_id, tname, reason, ec.num_latents, et.num_latents, c))
            if reason == KEPT:
                kept.append(j)
        by_k: dict[int, list[int]] = {}
        for j in kept:
            by_k.setdefault(clean[j].num_latents, []).append(j)
        results: dict[int, dict[str, Any]] = {}
        ikw = dict(mode="redecode", max_batch=2 * batch_size, max_new_tokens=max_new_tokens,
                   logits_processor=logits_processor, seed=seed, progress=False)
        for kk, js in sorted(by_k.items()):
            ct, tt = clean.select(js), treated.select(js)
            zc = torch.stack([e.z for e in ct])
            zt = torch.stack([e.z for e in tt])
            # each input's no-op control and its swapped latents share one prefill (runner.intervene_many); a
            # control that provably equals the run is the run itself
            outs = {**runner.intervene_many(ct, {"indirect": Replace(zt)}, control="clean", **ikw),
                    **runner.intervene_many(tt, {"direct": Replace(zc)}, control="treated", **ikw)}
            for pos, j in enumerate(js):
                results[j] = {cond: outs[cond][pos] for cond in outs}
        recs, R = [], S.MEDIATION_ROWS
        for j in kept:
            g = g_chunk[j]
            gid = _gold_token_id(tok, g, gold_prefix)
            for cond, x, z in _CONDITIONS:
                e = results[j][cond]
                o = _outcome(e, g, gid, scorer, examples[idx[j]])
                recs.append({R.EXAMPLE_ID: clean[j].example_id, R.CHUNK: c, R.CONDITION: cond, R.X: x, R.Z: z,
                             R.ANSWER: e.answer_text, R.GOLD: g, R.CORRECT: o[R.CORRECT], R.PARSED: o[R.PARSED],
                             R.PARSE_METHOD: o[R.PARSE_METHOD], R.GOLD_LOGPROB: o[R.GOLD_LOGPROB],
                             R.N_LATENTS: e.num_latents})
        return R.frame(recs), S.STATUS.frame(status)

    _run_units(rows_store, status_store, list(range(len(chunks))), unit, desc=name, progress=progress)
    rows = S.MEDIATION_ROWS.frame(rows_store.results())
    status = S.STATUS.frame(status_store.results())
    dropped = status[status[S.STATUS.REASON] != KEPT].reset_index(drop=True)
    summary, effects, prop, note, extra_drop = summarize_mediation(rows, outcome=outcome, n_boot=n_boot, seed=seed,
                                                                   ci=ci,
                                                                   treatment=tname, return_details=True)
    if len(extra_drop):
        dropped = pd.concat([dropped, S.STATUS.frame([_status(e, tname, f"no_{outcome}_value", -1, -1, -1)
                                                      for e in extra_drop])], ignore_index=True)
    kept = kept_counts(status, [tname], n)[tname]
    kept["n_kept"] -= len(extra_drop)
    if len(extra_drop):
        kept[f"no_{outcome}_value"] = len(extra_drop)
    config["kept"] = kept
    return MediationResult(rows=rows, summary=summary, dropped=dropped, config=config, effects=effects,
                           proportion_mediated=prop, proportion_note=note)


def summarize_mediation(rows: pd.DataFrame, *, outcome: str = "correct", n_boot: int = 2000, seed: int = 0,
                        ci: float = 0.95, treatment: str = "", return_details: bool = False) -> Any:
    """TE, NDE, NIE (paired bootstrap, shared resamples), interaction, proportion mediated and the
    four condition means, from mediation rows (columns ``example_id, condition`` and the outcome).

    An answer that has a gold but could not be read (``correct`` NaN, ``parse_method`` set) counts
    as wrong (0) with ``outcome="correct"``: an input change that makes the model refuse or babble
    is an effect on correctness, not a reason to drop the example. The column ``n_unparseable``
    counts the examples behind each row with an unreadable answer in any condition the row
    compares (TE: clean or treated; NDE: clean or direct; NIE: clean or indirect; interaction:
    any of the four; a level: that condition). Examples missing an outcome in any condition
    (e.g. no first-token distribution for ``"gold_logprob"``) are left out. With ``return_details`` the
    result is ``(summary, effects, proportion_mediated, proportion_note, left_out_example_ids)``. With ``outcome="correct"`` each effect is a paired
    difference of 0/1 outcomes (Tango's interval; its method text names the discordant counts
    and McNemar's exact p). The proportion mediated ``NIE / TE`` is reported only when
    TE's interval excludes 0; its interval is the percentile interval of ``mean(NIE) / mean(TE)``
    over the same resamples (resamples with ``mean(TE) == 0`` are left out and counted in the note).

    Parameters
    ----------
    rows : pd.DataFrame
        Mediation rows.
    outcome : str
        ``"correct"`` or ``"gold_logprob"``.
    treatment : str
        The treatment's name, recorded in the table.
    return_details : bool
        Also return the details (see above).
    n_boot : int
        Bootstrap resamples.
    seed : int
        Seed of the resamples.
    ci : float
        Confidence level of the intervals.

    Returns
    -------
    pandas.DataFrame or tuple
        The summary table, or the tuple above.
    """
    check_analysis_args(n_boot=n_boot, seed=seed, confidence=ci)
    if outcome not in ("correct", "gold_logprob"):
        raise InputError(f"outcome={outcome!r}; use 'correct' or 'gold_logprob'.")
    R, T = S.MEDIATION_ROWS, S.MEDIATION_SUMMARY
    col = R.CORRECT if outcome == "correct" else R.GOLD_LOGPROB
    if rows.empty:
        empty = T.empty()
        res = (empty, {}, float("nan"), "no examples", [])
        return res if return_details else empty
    rows = rows.assign(_unread=unreadable(rows).astype(np.float64))
    if outcome == "correct":
        rows = rows.assign(**{R.CORRECT: scored(rows)})
    conds = [c for c, _, _ in _CONDITIONS]
    order = list(dict.fromkeys(rows[R.EXAMPLE_ID]))
    pivot = dict(index=R.EXAMPLE_ID, columns=R.CONDITION, aggfunc="first", dropna=False, sort=False)
    wide = rows.pivot_table(values=col, **pivot).reindex(index=order, columns=conds)
    unread_wide = rows.pivot_table(values="_unread", **pivot).reindex(index=order, columns=conds).fillna(0.0)
    ok = np.isfinite(wide.to_numpy(np.float64)).all(axis=1)
    missing = [e for e, good in zip(order, ok) if not good]
    w = wide[ok]
    y = {c: w[c].to_numpy(np.float64) for c in w.columns}
    u = {c: unread_wide[ok][c].to_numpy(np.float64) > 0 for c in conds}

    def n_unread(*cs: str) -> int:
        return int(np.logical_or.reduce([u[c] for c in cs]).sum())
    kw = dict(n_boot=n_boot, seed=seed, confidence=ci)
    out: list[dict[str, Any]] = []
    effects: dict[str, _stats.Effect] = {}
    if len(w) == 0:
        empty = T.empty()
        res = (empty, {}, float("nan"), "no example has the outcome in all four conditions", missing)
        return res if return_details else empty
    kind = "tango" if outcome == "correct" else "studentized"
    te, nde, nie = _stats.mediation_effects(y["clean"], y["treated"], y["direct"], y["indirect"], method=kind, **kw)
    pairs = {"TE": (te, "treated"), "NDE": (nde, "direct"), "NIE": (nie, "indirect")}
    for nm, (eff, cond) in pairs.items():
        if outcome == "correct":
            mc = _stats.mcnemar_exact(y["clean"].astype(bool), y[cond].astype(bool))
            eff = dataclasses.replace(eff, method=eff.method + f" (clean vs {cond}: b={mc.b}, c={mc.c})")
        effects[nm] = eff
    inter_vals = y["treated"] - y["direct"] - y["indirect"] + y["clean"]
    effects["interaction"] = dataclasses.replace(
        _stats.bootstrap_ci(inter_vals, name="interaction", method="studentized", **kw),
        note=("TE - NDE - NIE: non-zero when X and Z interact (the decomposition is then not additive)"
              + ("; " + _stats.small_sample_note(len(inter_vals)) if _stats.small_sample_note(len(inter_vals)) else "")))
    compared = {"TE": ("clean", "treated"), "NDE": ("clean", "direct"), "NIE": ("clean", "indirect"),
                "interaction": tuple(conds)}
    effect_kind, ratio_kind, level_kind = EFFECT_KINDS
    for nm in EFFECT_NAMES:
        out.append(_effect_row(effects[nm], **{T.EFFECT: nm, T.KIND: effect_kind,
                                               T.N_UNPARSEABLE: n_unread(*compared[nm])}))
    # proportion mediated
    if te.excludes_zero:
        prop = float(nie.estimate / te.estimate)
        d_te = y["treated"] - y["clean"]
        d_nie = y["indirect"] - y["clean"]
        ratios = []
        for idx in _stats.resample_indices(len(d_te), n_boot, seed):
            m_te = d_te[idx].mean(axis=1)
            m_nie = d_nie[idx].mean(axis=1)
            good = m_te != 0
            ratios.append(m_nie[good] / m_te[good])
        r = np.concatenate(ratios)
        alpha = 1.0 - ci
        lo, hi = (np.quantile(r, [alpha / 2, 1 - alpha / 2]) if r.size else (np.nan, np.nan))
        pnote = "NIE / TE (TE's interval excludes 0)"
        if r.size < n_boot:
            pnote += f"; {n_boot - r.size} resamples with mean TE = 0 left out"
        out.append({T.EFFECT: "proportion_mediated", T.KIND: ratio_kind, T.ESTIMATE: prop, T.CI_LOW: float(lo),
                    T.CI_HIGH: float(hi), T.N: len(d_te), T.P_VALUE: np.nan,
                    T.METHOD: ("ratio of means over paired percentile bootstrap resamples "
                               f"({int(round(ci * 100))}% CI, n_boot={n_boot})"),
                    T.NOTE: pnote, T.N_UNPARSEABLE: n_unread("clean", "treated", "indirect")})
    else:
        prop = float("nan")
        pnote = (f"TE's {int(round(ci * 100))}% interval [{te.ci_low:.4g}, {te.ci_high:.4g}] includes 0: "
                 "the proportion mediated is undefined")
        out.append({T.EFFECT: "proportion_mediated", T.KIND: ratio_kind, T.ESTIMATE: np.nan, T.CI_LOW: np.nan,
                    T.CI_HIGH: np.nan, T.N: len(w), T.P_VALUE: np.nan, T.METHOD: "", T.NOTE: pnote,
                    T.N_UNPARSEABLE: n_unread("clean", "treated", "indirect")})
    for cond in conds:
        out.append(_effect_row(_stats.bootstrap_ci(y[cond], name=f"mean_{cond}",
                                                    method="wilson" if outcome == "correct" else "studentized", **kw),
                               **{T.EFFECT: f"mean_{cond}", T.KIND: level_kind, T.N_UNPARSEABLE: n_unread(cond)}))
    frame = T.frame([{**r, T.OUTCOME: outcome, T.TREATMENT: treatment} for r in out])
    if return_details:
        return frame, effects, prop, pnote, missing
    return frame
