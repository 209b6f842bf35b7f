"""Shared parts of the causal analyses: stores, chunks, example status and the answer/outcome helpers
(gold answers, flips, log-probabilities, KL). Their fingerprints live in :mod:`latentprobe.fingerprint`,
their tables' columns in :mod:`latentprobe.schema`."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from torch import Tensor

from latentprobe.errors import EmptyAnswersError, InputError
from latentprobe.perturbations import InputSet
from latentprobe import schema as S
from latentprobe.schema import KEPT, NO_GOLD
from latentprobe.scoring import (
    ChoiceScorer, ExactScorer, FirstWordScorer, NumericScorer, Scorer, scorer_config, scorer_from_name,
)
from latentprobe.stats import Effect
from latentprobe.sweep import ResumableSweep
from latentprobe.trace import LatentTrace
from latentprobe import validate

if TYPE_CHECKING:
    from latentprobe.engine.inputs import CapturePositions
    from latentprobe.engine.loop import LogitsProcessor
    from transformers import PreTrainedTokenizerBase
    from latentprobe.engine import LatentRunner

__all__ = ["MODES", "PAPER_INTERVENTIONS", "BASELINE_SOURCES", "NO_GOLD"]

MODES = ("replay", "propagate", "redecode")
#: Names of the paper's four interventions in :func:`default_interventions`.
PAPER_INTERVENTIONS = ("shared_tensor", "add_noise", "replace_noise", "near_zero")
#: Prompt-token baselines of :func:`x_to_z`, compared at the same residual layers as the latents.
BASELINE_SOURCES = ("text_last", "text_mean", "image_mean", "prompt_last")

# --------------------------------------------------------------------------- stores and rows
def _open(out_dir: str | os.PathLike | None, name: str, config: dict[str, Any], key_columns: Sequence[str],
          overwrite: bool = False) -> ResumableSweep:
    """The store of one analysis: on disk under ``out_dir``, or in memory when it is ``None``."""
    from latentprobe.sweep.sharded import open_store  # shared by the ranks of a study run by several workers

    return open_store(out_dir, name=name, config=config, key_columns=tuple(key_columns), overwrite=overwrite)


def _run_units(rows_store: ResumableSweep, status_store: ResumableSweep | None, units: list[Any], fn: Callable[[Any], tuple],
               desc: str, progress: bool) -> None:
    """Run ``fn(unit) -> (rows, status)`` for every pending unit; status is written before rows, so
    a unit is complete exactly when its rows are stored (a crash in between recomputes it)."""

    def one(u: Any) -> pd.DataFrame:
        rows, status = fn(u)
        if status_store is not None and not status_store.done(u):
            status_store.write(u, status)
        return rows

    rows_store.run(units, one, unit_key=lambda u: u, desc=desc, progress=progress)


# --------------------------------------------------------------------------- small helpers
def _chunks(n: int, size: int) -> list[list[int]]:
    if size < 1:
        raise InputError(f"chunk_size must be >= 1, got {size}.")
    return [list(range(i, min(i + size, n))) for i in range(0, n, size)]


def _run(runner: LatentRunner, inputs: InputSet, *, max_new_tokens: int, batch_size: int, seed: int,
         logits_processor: LogitsProcessor | None, capture: CapturePositions | None = None) -> LatentTrace:
    return runner.run(**inputs.run_kwargs(), max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed,
                      capture_positions=capture, logits_processor=logits_processor, progress=False)


def _status(eid: str, cond: str, reason: str, kc: int, ko: int, chunk: int) -> dict[str, Any]:
    """One :class:`~latentprobe.schema.STATUS` record."""
    T = S.STATUS
    return {T.EXAMPLE_ID: eid, T.CONDITION: cond, T.REASON: reason, T.N_LATENTS_CLEAN: int(kc),
            T.N_LATENTS_OTHER: int(ko), T.CHUNK: int(chunk)}


def kept_counts(status: pd.DataFrame, conditions: Sequence[str], n: int) -> dict[str, dict[str, int]]:
    """``{condition: {"n_examples", "n_kept", <reason>: count, ...}}`` of a :class:`~latentprobe.schema.STATUS`
    table: how many examples each condition kept, and why it left the others out (``config["kept"]``)."""
    out: dict[str, dict[str, int]] = {}
    for cond in conditions:
        reasons = status.loc[status[S.STATUS.CONDITION] == cond, S.STATUS.REASON]
        tally = reasons.value_counts(sort=False)
        out[str(cond)] = {"n_examples": int(n), "n_kept": int(tally.get(KEPT, 0)),
                          **{str(r): int(c) for r, c in tally.items() if r != KEPT}}
    return out


def _pair_reason(kc: int, ko: int, other: str) -> str:
    if kc == 0:
        return "clean_not_entered"
    if ko == 0:
        return f"{other}_not_entered"
    if kc != ko:
        return "latent_count_mismatch"
    return KEPT


# --------------------------------------------------------------------------- argument checks
def check_analysis_args(*, n_boot: Any = 1, seed: Any = 0, chunk_size: Any = 1, batch_size: Any = 1,
                        max_new_tokens: Any = None, confidence: Any = 0.95) -> None:
    """Refuse, before any work, the common arguments of the causal analyses when malformed."""
    validate.positive_int(n_boot, "n_boot", hint="bootstrap resamples; 2000 is usual")
    validate.positive_int(chunk_size, "chunk_size")
    validate.positive_int(batch_size, "batch_size")
    validate.positive_int(max_new_tokens, "max_new_tokens", allow_none=True)
    validate.integer(seed, "seed")
    validate.probability(confidence, "ci", hint="a confidence level, e.g. 0.95")


def check_answers(trace: LatentTrace, what: str) -> None:
    """Refuse a run in which every answer is empty: no effect can be measured from it."""
    if len(trace) and all(len(e.answer_ids) == 0 and not e.answer_text for e in trace):
        raise EmptyAnswersError(
            f"{what}: every one of the {len(trace)} answers is empty, so every effect would read 0; raise "
            "max_new_tokens (it must hold the latents, the markers and the answer) or check the prompts and the model."
        )


# --------------------------------------------------------------------------- answers and outcomes
def _gold_list(gold: Any, ids: Sequence[str]) -> list[str | None] | None:
    """Gold answers aligned with ``ids``: a sequence by position; an InputSet (its ``gold``) or a mapping
    ``{example_id: gold}`` by example id, which must hold every id and no other."""
    if gold is None:
        return None
    if isinstance(gold, InputSet):
        if gold.gold is None:
            return None
        gold = dict(zip(gold.example_ids, gold.gold))
        what = "the gold InputSet"
    else:
        what = "gold"
    if isinstance(gold, Mapping):
        known = set(ids)
        extra = [str(k) for k in gold if k not in known]
        missing = [i for i in ids if i not in gold]
        if extra or missing:
            raise InputError(
                f"{what} is matched by example id, and its ids differ from the examples': "
                + "; ".join(f"{n} {k} ({sorted(v)[:10]}{' ...' if len(v) > 10 else ''})"
                            for k, v, n in (("unknown to the data", extra, len(extra)),
                                            ("missing", missing, len(missing))) if v)
                + "; give one gold per example id of the trace / InputSet (None where unknown).")
        return [None if gold[i] is None else str(gold[i]) for i in ids]
    gold = list(gold)
    if len(gold) != len(ids):
        raise InputError(f"{len(gold)} gold answers for {len(ids)} examples; give one per example (None where unknown).")
    return [None if g is None else str(g) for g in gold]


def check_scorer(scorer: str | Scorer | Callable[..., Any] | None) -> Scorer:
    """The analyses' ``scorer=`` as a :class:`~latentprobe.scoring.Scorer` (a name, a scorer or a function)."""
    return scorer_from_name(scorer)


def scorer_fingerprint(scorer: Scorer) -> dict[str, Any]:
    """The scorer's part of a sweep fingerprint (:func:`latentprobe.scoring.scorer_config`)."""
    return scorer_config(scorer)


def scoring_examples(ids: Sequence[str], source: Any = None) -> list[dict[str, Any]]:
    """What a scorer receives as ``example`` for each id: ``{"example_id": id, **meta}``, the meta
    taken from ``source`` (an InputSet, matched by example id) when it is one, so that
    :class:`~latentprobe.scoring.ChoiceScorer` finds ``meta["options"]``."""
    meta: dict[str, Mapping[str, Any]] = {}
    if isinstance(source, InputSet):
        meta = {eid: m for eid, m in zip(source.example_ids, source.meta)}
    return [{**dict(meta.get(i, {})), "example_id": i} for i in ids]


_CHECKED = (ChoiceScorer, NumericScorer, ExactScorer, FirstWordScorer)


def check_golds(scorer: Scorer, golds: Sequence[str | None] | None, examples: Sequence[Any]) -> None:
    """Refuse, before any work, gold answers the scorer cannot score (a gold outside an example's
    options, a gold without a number); checked for the built-in scorers only."""
    if golds is None or not isinstance(scorer, _CHECKED):
        return
    for g, ex in zip(golds, examples):
        if g is not None:
            scorer.score(None, g, ex)


def _score(text: str | None, gold: str | None, scorer: Scorer, example: Any) -> tuple[float, str | None, str]:
    """(correct as 1.0 / 0.0 / NaN, parsed, parse_method); NaN with ``NO_GOLD`` when there is no gold."""
    if gold is None:
        return np.nan, None, NO_GOLD
    s = scorer.score(text, gold, example)
    correct = getattr(s, "correct", None)
    return (np.nan if correct is None else float(bool(correct))), getattr(s, "parsed", None), str(getattr(s, "method", ""))


def _answer_sig(e: Any, scorer: Scorer) -> tuple[int, ...]:
    """The answer tokens that a flip compares: all of them, or the first with :class:`FirstWordScorer`."""
    ids = tuple(int(t) for t in e.answer_ids.tolist())
    return ids[:1] if isinstance(scorer, FirstWordScorer) else ids


def _gold_token_id(tokenizer: PreTrainedTokenizerBase, gold: str | None, prefix: str) -> int | None:
    if gold is None:
        return None
    ids = tokenizer(prefix + gold, add_special_tokens=False)["input_ids"]
    return int(ids[0]) if len(ids) else None


def _first_lp(e: Any) -> Tensor | None:
    return None if e.first_token_logprobs is None else e.first_token_logprobs.double()


def _outcome(e: Any, gold: str | None, gid: int | None, scorer: Scorer, example: Any = None) -> dict[str, Any]:
    lp = _first_lp(e)
    correct, parsed, method = _score(e.answer_text, gold, scorer, example)
    glp = float(lp[gid]) if (lp is not None and gid is not None and 0 <= gid < lp.numel()) else np.nan
    rec = float(e.forced_logprobs.double().sum()) if e.forced_logprobs is not None else np.nan
    R = S.ZY_ROWS
    return {R.CORRECT: correct, R.PARSED: parsed, R.PARSE_METHOD: method, R.GOLD_LOGPROB: glp, R.RECORDED_LOGPROB: rec}


def _kl(ref: Any, other: Any) -> float:
    p, q = _first_lp(ref), _first_lp(other)
    if p is None or q is None or p.shape != q.shape:
        return np.nan
    return float((p.exp() * (p - q)).sum())


def _effect_row(eff: Effect, **keys: Any) -> dict[str, Any]:
    """An effect's summary columns (``estimate`` ... ``note``, as in :class:`~latentprobe.schema.ZY_SUMMARY`)."""
    T = S.ZY_SUMMARY
    return {**keys, T.ESTIMATE: eff.estimate, T.CI_LOW: eff.ci_low, T.CI_HIGH: eff.ci_high, T.N: eff.n,
            T.P_VALUE: np.nan if eff.p_value is None else eff.p_value, T.METHOD: eff.method, T.NOTE: eff.note}


def _finite(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    ok = np.ones(len(arrays[0]), dtype=bool)
    for a in arrays:
        ok &= np.isfinite(a)
    return tuple(a[ok] for a in arrays)


# --------------------------------------------------------------------------- unparseable answers in summaries
def unreadable(frame: pd.DataFrame, prefix: str = "") -> np.ndarray:
    """Rows whose answer has a gold but could not be read (``correct`` NaN, ``parse_method`` not ``NO_GOLD``);
    all False for rows written before answers were parsed (no ``parse_method`` column)."""
    method = f"{prefix}{S.ZY_ROWS.PARSE_METHOD}"
    if method not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    m = frame[method].astype(object)
    return (frame[f"{prefix}{S.ZY_ROWS.CORRECT}"].isna() & m.notna() & (m != NO_GOLD)).to_numpy(bool)


def scored(frame: pd.DataFrame, prefix: str = "") -> np.ndarray:
    """``correct`` with unparseable answers counted as wrong (0.0); NaN only where there is no gold."""
    c = frame[f"{prefix}{S.ZY_ROWS.CORRECT}"].to_numpy(np.float64).copy()
    c[unreadable(frame, prefix)] = 0.0
    return c


def _accuracy_rows(g: pd.DataFrame, boot: Callable[..., Effect], paired: Callable[..., Effect],
                   key: dict[str, Any]) -> list[dict[str, Any]]:
    """``accuracy`` and ``accuracy_change`` rows of one intervention x mode, unparseable answers
    counted as wrong on the examples with a gold; ``n_unparseable`` counts them (in this condition,
    or in it or its control)."""
    c, rc = scored(g), scored(g, "ref_")
    ok = np.isfinite(c) & np.isfinite(rc)
    if not ok.any():
        return []
    u, ru = unreadable(g)[ok], unreadable(g, "ref_")[ok]
    c, rc = c[ok], rc[ok]
    T = S.ZY_SUMMARY
    return [
        _effect_row(boot(c, name="accuracy"), **key, **{T.METRIC: "accuracy", T.N_UNPARSEABLE: int(u.sum())}),
        _effect_row(paired(rc.astype(bool), c.astype(bool), name="accuracy_change"), **key,
                    **{T.METRIC: "accuracy_change", T.N_UNPARSEABLE: int((u | ru).sum())}),
    ]
