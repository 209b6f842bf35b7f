"""Shared parts of the causal analyses: row schemas, stores, chunks, fingerprints, example status
and the answer/outcome helpers (gold answers, flips, log-probabilities, KL)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from torch import Tensor

from latentprobe.errors import EmptyAnswersError, InputError, InterventionError
from latentprobe.fingerprint import callable_fingerprint, source_digest, tokenizer_fingerprint, weights_fingerprint
from latentprobe.interventions import Intervention, Lambda, NoLatents
from latentprobe.perturbations import InputSet, Perturbation
from latentprobe.schema import NO_GOLD
from latentprobe.scoring import (
    ChoiceScorer, ExactScorer, FirstWordScorer, NumericScorer, Scorer, scorer_config, scorer_from_name,
)
from latentprobe.stats import Effect
from latentprobe.sweep import ResumableSweep
from latentprobe.trace import LatentTrace
from latentprobe import validate

if TYPE_CHECKING:
    from latentprobe.engine import LatentRunner

__all__ = ["MODES", "PAPER_INTERVENTIONS", "BASELINE_SOURCES", "NO_GOLD", "trace_fingerprint", "runner_fingerprint",
           "mask_rule_of"]

MODES = ("replay", "propagate", "redecode")
#: Names of the paper's four interventions in :func:`default_interventions`.
PAPER_INTERVENTIONS = ("shared_tensor", "add_noise", "replace_noise", "near_zero")
#: Prompt-token baselines of :func:`x_to_z`, compared at the same residual layers as the latents.
BASELINE_SOURCES = ("text_last", "text_mean", "image_mean", "prompt_last")

_XZ_ROWS = {"example_id": "str", "perturbation": "str", "source": "str", "step": "int64", "layer": "int64",
            "cosine": "float64", "rel_l2": "float64", "chunk": "int64"}
_STATUS = {"example_id": "str", "condition": "str", "reason": "str", "n_latents_clean": "int64",
           "n_latents_other": "int64", "chunk": "int64"}
_ZY_ROWS = {"example_id": "str", "chunk": "int64", "intervention": "str", "mode": "str", "answer": "str",
            "ref_answer": "str", "clean_answer": "str", "gold": "str", "correct": "float64", "ref_correct": "float64",
            "parsed": "str", "parse_method": "str", "ref_parsed": "str", "ref_parse_method": "str", "flip": "bool", "changed_vs_clean": "bool", "gold_logprob": "float64", "ref_gold_logprob": "float64",
            "kl": "float64", "recorded_logprob": "float64", "ref_recorded_logprob": "float64", "n_latents": "int64"}
_MED_ROWS = {"example_id": "str", "chunk": "int64", "condition": "str", "x": "str", "z": "str", "answer": "str",
             "gold": "str", "correct": "float64", "parsed": "str", "parse_method": "str", "gold_logprob": "float64",
             "n_latents": "int64"}
_SUMMARY_COLS = ["estimate", "ci_low", "ci_high", "n", "p_value", "method", "note"]
_KEPT = "kept"
_UNPARSEABLE = "n_unparseable"


# --------------------------------------------------------------------------- stores and rows
def _open(out_dir: str | os.PathLike | None, name: str, config: dict[str, Any], key_columns: Sequence[str],
          overwrite: bool = False) -> ResumableSweep:
    """The store of one analysis: on disk under ``out_dir``, or in memory when it is ``None``."""
    return ResumableSweep(out_dir, name=name, config=config, key_columns=tuple(key_columns), overwrite=overwrite)


def _frame(records: list[dict[str, Any]], schema: dict[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records, columns=list(schema)) if records else pd.DataFrame(
        {c: pd.Series([], dtype=t) for c, t in schema.items()})
    return frame.astype(schema)


def _typed(frame: pd.DataFrame, schema: dict[str, str]) -> pd.DataFrame:
    if frame.empty and not len(frame.columns):
        return _frame([], schema)
    return frame


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


def _qualname(fn: Any) -> str | None:
    if fn is None:
        return None
    return getattr(fn, "__qualname__", None) or type(fn).__qualname__


def _tensor_digest(t: Tensor) -> dict[str, Any]:
    a = t.detach().float().cpu().contiguous()
    return {"shape": list(a.shape), "sha1": hashlib.sha1(a.numpy().tobytes()).hexdigest()[:16]}


def trace_fingerprint(trace: LatentTrace) -> str:
    """A short hash of a trace's example ids, latents and answers."""
    h = hashlib.sha1()
    for e in trace:
        h.update(e.example_id.encode())
        h.update(e.z.detach().float().cpu().contiguous().numpy().tobytes())
        h.update(e.answer_ids.detach().cpu().numpy().astype(np.int64).tobytes())
    return h.hexdigest()[:16]


def _user_class_source(obj: Any) -> dict[str, Any]:
    """``{"class_source": ...}`` for a class defined outside latentprobe (its code decides the results)."""
    mod = type(obj).__module__ or ""
    if mod == "latentprobe" or mod.startswith("latentprobe."):
        return {}
    return {"class_source": source_digest(type(obj))}


def _field_value(v: Any, where: str) -> Any:
    if isinstance(v, Tensor):
        return _tensor_digest(v)
    if isinstance(v, LatentTrace):
        return {"trace": trace_fingerprint(v), "n": len(v)}
    if isinstance(v, Intervention):
        return _describe(v)
    if isinstance(v, tuple):
        return [_field_value(x, where) for x in v]
    if callable(v):
        return {"name": _qualname(v), "code": callable_fingerprint(v, what=where)}
    return v


def _describe(obj: Any) -> Any:
    """JSON-ready description of an intervention: fields by value, tensors and traces by digest,
    callables by name and source hash (:func:`latentprobe.fingerprint.callable_fingerprint`)."""
    if isinstance(obj, NoLatents):
        return {"type": "NoLatents"}
    if isinstance(obj, Lambda):
        return {"type": "Lambda", "fn": obj.name_ or _qualname(obj.fn),
                "code": callable_fingerprint(obj.fn, what=f"Lambda {obj.name_ or _qualname(obj.fn)!r}")}
    if isinstance(obj, Intervention) and dataclasses.is_dataclass(obj):
        d: dict[str, Any] = {"type": type(obj).__name__, **_user_class_source(obj)}
        for f in dataclasses.fields(obj):
            d[f.name] = _field_value(getattr(obj, f.name), f"{type(obj).__name__}.{f.name}")
        return d
    if isinstance(obj, Intervention):
        return {"type": type(obj).__name__, "config": obj.to_config(), "class_source": source_digest(type(obj))}
    if callable(obj):
        return {"type": "callable", "fn": _qualname(obj), "code": callable_fingerprint(obj, what="intervention")}
    raise InterventionError(f"{obj!r} is not an intervention or a callable (z, step, example) -> z.")


def _perturbation_config(p: Perturbation) -> dict[str, Any]:
    """:meth:`Perturbation.to_config` plus the source hash of every callable field (``{field}_code``)
    and of the class when it is defined outside latentprobe."""
    cfg = dict(p.to_config())
    if dataclasses.is_dataclass(p):
        for f in dataclasses.fields(p):
            v = getattr(p, f.name)
            if callable(v) and not isinstance(v, type):
                cfg[f"{f.name}_code"] = callable_fingerprint(v, what=f"perturbation {p.name!r} ({f.name})")
    cfg.update(_user_class_source(p))
    return cfg


def _inputs_config(inputs: InputSet) -> dict[str, Any]:
    """The input set's fingerprint (ids, prompts, images, gold), its metadata and relabel rule."""
    meta = json.dumps([dict(m) for m in inputs.meta], sort_keys=True, default=repr)
    return {"data": inputs.fingerprint(), "meta": hashlib.sha1(meta.encode()).hexdigest()[:16],
            "relabel": callable_fingerprint(inputs.relabel, what="InputSet.relabel")}


def _callable_config(fn: Any, what: str = "logits processor") -> dict[str, Any] | None:
    """A user callable (logits processor, ...) by name and source hash; ``None`` stays ``None``."""
    return callable_fingerprint(fn, what=what)


def mask_rule_of(runner: Any) -> Any:
    """The runner's attention mask rule (``runner.mask_rule``; ``None`` when it has none)."""
    return getattr(runner, "mask_rule", None)


def runner_fingerprint(runner: LatentRunner) -> dict[str, Any]:
    """Everything about a runner that an analysis's results depend on, JSON-ready.

    The model's class, a hash of its weights (:func:`latentprobe.fingerprint.weights_fingerprint`,
    computed once per model and cached), the whole spec (``spec.to_dict()``), the mask rule's,
    projection's and image processor's code, the tokenizer's vocabulary hash, the dtype, and the
    layer count and width. Read through public attributes only. The device is left out, so that a
    sweep may resume on another machine.
    """
    model = runner.model
    dtype = getattr(runner, "dtype", None)
    if dtype is None:
        dtype = next((p.dtype for p in model.parameters()), None)
    return {"model": type(model).__name__, "weights": weights_fingerprint(model), "spec": runner.spec.to_dict(),
            "mask_rule": callable_fingerprint(mask_rule_of(runner), what="mask rule"),
            "projection": callable_fingerprint(getattr(runner, "projection", None), what="projection"),
            "image_processor": callable_fingerprint(getattr(runner, "image_processor", None),
                                                    what="image processor"),
            "tokenizer": tokenizer_fingerprint(runner.tokenizer), "dtype": str(dtype),
            "n_layers": int(runner.n_layers), "hidden_size": int(runner.hidden_size)}


_runner_info = runner_fingerprint  # the name the analyses' config builders use


def _run(runner: LatentRunner, inputs: InputSet, *, max_new_tokens: int, batch_size: int, seed: int,
         logits_processor: Any, capture: Any = None) -> LatentTrace:
    return runner.run(**inputs.run_kwargs(), max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed,
                      capture_positions=capture, logits_processor=logits_processor, progress=False)


def _modal_k(counts: Sequence[int]) -> int | None:
    nz = [c for c in counts if c > 0]
    if not nz:
        return None
    tally = Counter(nz)
    best = max(tally.values())
    return min(k for k, v in tally.items() if v == best)


def _status(eid: str, cond: str, reason: str, kc: int, ko: int, chunk: int) -> dict[str, Any]:
    return {"example_id": eid, "condition": cond, "reason": reason, "n_latents_clean": int(kc),
            "n_latents_other": int(ko), "chunk": int(chunk)}


def _pair_reason(kc: int, ko: int, other: str) -> str:
    if kc == 0:
        return "clean_not_entered"
    if ko == 0:
        return f"{other}_not_entered"
    if kc != ko:
        return "latent_count_mismatch"
    return _KEPT


def _kept_latent_examples(trace: LatentTrace) -> tuple[list[int], int | None]:
    k = _modal_k([e.num_latents for e in trace])
    return [i for i, e in enumerate(trace) if k is not None and e.num_latents == k], k


# --------------------------------------------------------------------------- argument checks
def check_analysis_args(*, n_boot: Any = 1, seed: Any = 0, chunk_size: Any = 1, batch_size: Any = 1,
                        max_new_tokens: Any = None, confidence: Any = 0.95) -> None:
    """Refuse, before any work, the common arguments of the causal analyses when malformed."""
    validate.positive_int(n_boot, "n_boot", hint="bootstrap resamples; 2000 is usual")
    validate.positive_int(chunk_size, "chunk_size")
    validate.positive_int(batch_size, "batch_size")
    validate.positive_int(max_new_tokens, "max_new_tokens", allow_none=True)
    validate.integer(seed, "seed")
    validate.probability(confidence, "confidence", hint="e.g. 0.95")


def check_answers(trace: LatentTrace, what: str) -> None:
    """Refuse a run in which every answer is empty: no effect can be measured from it."""
    if len(trace) and all(len(e.answer_ids) == 0 and not e.answer_text for e in trace):
        raise EmptyAnswersError(
            f"{what}: every one of the {len(trace)} answers is empty, so every effect would read 0; raise "
            "max_new_tokens (it must hold the latents, the markers and the answer) or check the prompts and the model."
        )


# --------------------------------------------------------------------------- answers and outcomes
def _gold_list(gold: Any, ids: Sequence[str]) -> list[str | None] | None:
    if gold is None:
        return None
    if isinstance(gold, InputSet):
        gold = gold.gold
        if gold is None:
            return None
    if isinstance(gold, Mapping):
        known = set(ids)
        unknown = sorted(str(k) for k in gold if k not in known)
        if unknown:
            raise InputError(f"gold is keyed by {len(unknown)} example id(s) the data does not have: {unknown[:10]}; "
                             "key gold by the trace's / InputSet's example_ids.")
        return [None if gold.get(i) is None else str(gold.get(i)) for i in ids]
    gold = list(gold)
    if len(gold) != len(ids):
        raise InputError(f"{len(gold)} gold answers for {len(ids)} examples; give one per example (None where unknown).")
    return [None if g is None else str(g) for g in gold]


def check_scorer(scorer: Any) -> Scorer:
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


def _gold_token_id(tokenizer: Any, gold: str | None, prefix: str) -> int | None:
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
    return {"correct": correct, "parsed": parsed, "parse_method": method, "gold_logprob": glp, "recorded_logprob": rec}


def _kl(ref: Any, other: Any) -> float:
    p, q = _first_lp(ref), _first_lp(other)
    if p is None or q is None or p.shape != q.shape:
        return np.nan
    return float((p.exp() * (p - q)).sum())


def _effect_row(eff: Effect, **keys: Any) -> dict[str, Any]:
    return {**keys, "estimate": eff.estimate, "ci_low": eff.ci_low, "ci_high": eff.ci_high, "n": eff.n,
            "p_value": np.nan if eff.p_value is None else eff.p_value, "method": eff.method, "note": eff.note}


def _finite(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    ok = np.ones(len(arrays[0]), dtype=bool)
    for a in arrays:
        ok &= np.isfinite(a)
    return tuple(a[ok] for a in arrays)


# --------------------------------------------------------------------------- unparseable answers in summaries
def unreadable(frame: pd.DataFrame, prefix: str = "") -> np.ndarray:
    """Rows whose answer has a gold but could not be read (``correct`` NaN, ``parse_method`` not ``NO_GOLD``);
    all False for rows written before answers were parsed (no ``parse_method`` column)."""
    method = f"{prefix}parse_method"
    if method not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    m = frame[method].astype(object)
    return (frame[f"{prefix}correct"].isna() & m.notna() & (m != NO_GOLD)).to_numpy(bool)


def scored(frame: pd.DataFrame, prefix: str = "") -> np.ndarray:
    """``correct`` with unparseable answers counted as wrong (0.0); NaN only where there is no gold."""
    c = frame[f"{prefix}correct"].to_numpy(np.float64).copy()
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
    return [
        _effect_row(boot(c, name="accuracy"), metric="accuracy", **key, n_unparseable=int(u.sum())),
        _effect_row(paired(rc.astype(bool), c.astype(bool), name="accuracy_change"), metric="accuracy_change",
                    **key, n_unparseable=int((u | ru).sum())),
    ]
