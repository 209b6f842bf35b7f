"""The paper's three experiments, with paired designs and intervals: X -> Z, Z -> Y, mediation.

The study models an input ``X`` (image + question), the latent reasoning tokens ``Z`` and the
answer ``Y``. Three analyses, each returning a frozen result with tidy ``rows`` (one row per
example x condition [x step x layer]), a ``summary`` with 95% bootstrap intervals over examples,
``dropped`` (which examples were left out, and why) and the ``config`` (seeds included):

:func:`x_to_z`
    Does changing the input change the latents? Clean and perturbed inputs (see
    :mod:`latentprobe.perturbations`) are run; latents at the same step and residual layer are
    compared (cosine similarity, relative L2 ``||z' - z|| / ||z||``), next to the same comparison
    for prompt-token states (baselines) and the paper's inter-instance similarity matrix.
:func:`z_to_y`
    Does changing the latents change the answer? The paper's interventions and a wider suite, in
    ``replay``, ``propagate`` and ``redecode`` modes (see :mod:`latentprobe.runner`).
:func:`decompose`
    Total, natural direct and natural indirect effects of an input change on the answer, with the
    latents as mediator.

Conventions
-----------
* **Only examples that entered latent mode count.** An example contributes to an X -> Z or
  mediation comparison only when both runs entered latent mode with the same number of latents
  (step-wise comparisons need it); Z -> Y keeps examples with the trace's most common number of
  latents. Every result lists the others in ``dropped`` (``reason`` column;
  :meth:`drop_counts` tallies them).
* **References are computed the same way as the intervened runs.** In :func:`z_to_y` every
  intervention is compared with the *no-op control of the same mode* (``intervention="none"``):
  replay teacher-forces, propagate and redecode decode again from a prefix, and each of these
  differs slightly from the original generation (numerics, answer token budget). The control's
  own change from the original run is in the rows (``changed_vs_clean``). In :func:`decompose` all
  four conditions are ``redecode`` runs (the clean and treated ones with their own latents), so
  the effects isolate ``X`` and ``Z``.
* **Gold log-probability** is the log-probability of the gold answer's *first token* at the first
  answer position (``first_token_logprobs[gold_id]``); it is the answer's log-probability for
  one-token answers such as the toy model's. In replay mode ``recorded_logprob`` additionally
  scores the whole recorded (clean) answer under the intervention (``forced_logprobs``).
* **Results are written as they are computed** when ``out_dir`` is given: examples are processed
  in chunks (``chunk_size``), each (chunk, condition) unit is stored by a
  :class:`~latentprobe.sweep.ResumableSweep`, and a rerun with the same arguments resumes where
  a killed one stopped. Summaries are recomputed from the stored rows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

from latentprobe import stats as _stats
from latentprobe.seeding import torch_generator
from latentprobe.errors import InputError, InterventionError
from latentprobe.interventions import (
    AddNoise, Intervention, Lambda, MeanAblate, RepeatFirst, Replace, ReplaceNoise, Scale, Swap, Zero,
)
from latentprobe.perturbations import InputSet, Perturbation, derangement
from latentprobe.sweep import ResumableSweep, normalize_key
from latentprobe.trace import LatentTrace, Segment

__all__ = [
    "XZResult", "ZYResult", "MediationResult",
    "x_to_z", "z_to_y", "decompose",
    "summarize_x_to_z", "summarize_z_to_y", "summarize_mediation",
    "default_interventions", "GaussianReplace", "MatchedDisplacement", "NoLatents",
    "PAPER_INTERVENTIONS", "BASELINE_SOURCES", "bootstrap_mean_columns", "trace_fingerprint",
]

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
            "flip": "bool", "changed_vs_clean": "bool", "gold_logprob": "float64", "ref_gold_logprob": "float64",
            "kl": "float64", "recorded_logprob": "float64", "ref_recorded_logprob": "float64", "n_latents": "int64"}
_MED_ROWS = {"example_id": "str", "chunk": "int64", "condition": "str", "x": "str", "z": "str", "answer": "str",
             "gold": "str", "correct": "float64", "gold_logprob": "float64", "n_latents": "int64"}
_SUMMARY_COLS = ["estimate", "ci_low", "ci_high", "n", "p_value", "method", "note"]
_KEPT = "kept"


# =========================================================================== results
def _drop_counts(dropped: pd.DataFrame) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (cond, reason), n in dropped.groupby(["condition", "reason"], sort=False).size().items():
        out.setdefault(str(cond), {})[str(reason)] = int(n)
    return out


@dataclass(frozen=True, eq=False)
class XZResult:
    """Result of :func:`x_to_z`.

    Attributes
    ----------
    rows : DataFrame
        One row per kept example x perturbation x source x step x layer: ``example_id,
        perturbation, source, step, layer, cosine, rel_l2, chunk``. ``source`` is ``"latent"``
        (``step`` = latent step, ``layer`` = residual layer, 0 = the fed vector z) or a prompt
        baseline of :data:`BASELINE_SOURCES` (``step = -1``).
    summary : DataFrame
        ``perturbation, source, step, layer, metric (cosine | rel_l2), estimate (mean), ci_low,
        ci_high, n, note``: percentile bootstrap over examples.
    dropped : DataFrame
        ``example_id, condition (perturbation), reason, n_latents_clean, n_latents_other, chunk``.
    across : DataFrame
        The inter-instance similarity of clean latents (:func:`latentprobe.similarity.across_instances`):
        ``layer, center, step, mean_offdiag, ci_low, ci_high, n``.
    across_matrices : dict
        ``layer -> [K, n, n]`` raw cosine matrices of clean latents across instances.
    config : dict
        Every setting, the perturbations' configs (mappings and seeds included).
    status : DataFrame
        Like ``dropped`` but for every example and perturbation (``reason == "kept"`` when kept).
    """

    rows: pd.DataFrame
    summary: pd.DataFrame
    dropped: pd.DataFrame
    config: dict[str, Any]
    across: pd.DataFrame
    across_matrices: dict[int, np.ndarray]
    status: pd.DataFrame

    def drop_counts(self) -> dict[str, dict[str, int]]:
        """``{condition: {reason: count}}`` of dropped examples."""
        return _drop_counts(self.dropped)


@dataclass(frozen=True, eq=False)
class ZYResult:
    """Result of :func:`z_to_y`.

    Attributes
    ----------
    rows : DataFrame
        One row per kept example x intervention x mode: ``example_id, chunk, intervention, mode,
        answer, ref_answer`` (the same mode's no-op control), ``clean_answer`` (original run),
        ``gold, correct, ref_correct`` (1.0/0.0, NaN without gold), ``flip`` (the answer tokens
        differ from the control's; the first token only with ``match="first_word"``),
        ``changed_vs_clean`` (the same against the original run's answer),
        ``gold_logprob, ref_gold_logprob`` (first-token log-prob of the gold answer), ``kl``
        (KL(control first-token distribution || intervened), nats), ``recorded_logprob,
        ref_recorded_logprob`` (replay only: log-prob of the recorded answer), ``n_latents``.
        The controls appear as ``intervention == "none"``.
    summary : DataFrame
        ``intervention, mode, metric, estimate, ci_low, ci_high, n, p_value, method, note`` with
        metrics ``accuracy``, ``accuracy_change`` (vs the control; paired bootstrap CI, McNemar
        exact p), ``flip_rate``, ``gold_logprob_change`` (paired), ``kl``,
        ``recorded_logprob_change`` (replay). ``intervention="none", mode="run"`` holds the
        original run's accuracy.
    dropped : DataFrame
        ``example_id, condition, reason, n_latents_clean, n_latents_other, chunk``.
    config : dict
    """

    rows: pd.DataFrame
    summary: pd.DataFrame
    dropped: pd.DataFrame
    config: dict[str, Any]

    def drop_counts(self) -> dict[str, dict[str, int]]:
        """``{condition: {reason: count}}`` of dropped examples."""
        return _drop_counts(self.dropped)

    def table(self, metrics: Sequence[str] = ("accuracy", "accuracy_change", "flip_rate", "gold_logprob_change", "kl")
              ) -> pd.DataFrame:
        """Wide view for printing: one row per intervention x mode, ``metric [lo, hi]`` cells."""
        return _wide(self.summary, ["intervention", "mode"], metrics)


@dataclass(frozen=True, eq=False)
class MediationResult:
    """Result of :func:`decompose`.

    Attributes
    ----------
    rows : DataFrame
        One row per kept example x condition: ``example_id, chunk, condition (clean | treated |
        direct | indirect), x (clean | treated input), z (clean | treated latents), answer, gold,
        correct, gold_logprob, n_latents``.
    summary : DataFrame
        ``effect, kind, estimate, ci_low, ci_high, n, p_value, method, note, outcome, treatment``:
        ``TE, NDE, NIE`` (kind ``effect``; paired bootstrap over examples sharing one set of
        resamples; ``p_value`` = McNemar exact test of the two conditions' correctness when
        ``outcome="correct"``), ``interaction`` (TE - NDE - NIE), ``proportion_mediated``
        (NIE / TE, only when TE's interval excludes 0, else NaN) and the four condition means
        (kind ``level``).
    dropped : DataFrame
        ``example_id, condition (the treatment), reason, n_latents_clean, n_latents_other, chunk``.
    config : dict
    effects : dict
        ``{"TE", "NDE", "NIE", "interaction"} -> Effect``.
    proportion_mediated : float
        NIE / TE, NaN when TE's interval includes 0 (``proportion_note`` says why).
    proportion_note : str
    """

    rows: pd.DataFrame
    summary: pd.DataFrame
    dropped: pd.DataFrame
    config: dict[str, Any]
    effects: dict[str, _stats.Effect]
    proportion_mediated: float
    proportion_note: str

    def drop_counts(self) -> dict[str, dict[str, int]]:
        """``{condition: {reason: count}}`` of dropped examples."""
        return _drop_counts(self.dropped)


def _wide(summary: pd.DataFrame, keys: list[str], metrics: Sequence[str]) -> pd.DataFrame:
    if summary.empty:
        return pd.DataFrame(columns=keys + list(metrics))
    out: dict[tuple, dict[str, Any]] = {}
    for _, r in summary.iterrows():
        if r["metric"] not in metrics:
            continue
        k = tuple(r[c] for c in keys)
        d = out.setdefault(k, {c: r[c] for c in keys} | {"n": int(r["n"])})
        cell = f"{r['estimate']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
        if r["metric"] == "accuracy_change" and pd.notna(r["p_value"]):
            cell += f" p={r['p_value']:.2g}"
        d[r["metric"]] = cell
    frame = pd.DataFrame(list(out.values()))
    return frame[[c for c in keys + ["n"] + list(metrics) if c in frame.columns]]


# =========================================================================== storage
class _MemorySweep:
    """The subset of :class:`ResumableSweep`'s interface used here, kept in memory."""

    def __init__(self) -> None:
        self._parts: list[pd.DataFrame] = []
        self._done: set[str] = set()

    @staticmethod
    def _canon(key: Any) -> str:
        return json.dumps(normalize_key(key), sort_keys=True)

    def done(self, key: Any) -> bool:
        return self._canon(key) in self._done

    def write(self, key: Any, rows: pd.DataFrame) -> None:
        self._parts.append(rows.reset_index(drop=True))
        self._done.add(self._canon(key))

    def results(self) -> pd.DataFrame:
        frames = [f for f in self._parts if len(f.columns)]
        if not frames:
            return pd.DataFrame()
        return frames[0].reset_index(drop=True) if len(frames) == 1 else pd.concat(frames, ignore_index=True, sort=False)

    def run(self, units, fn, *, unit_key=lambda u: u, desc=None, progress=True) -> pd.DataFrame:
        units = list(units)
        bar = tqdm(total=len(units), desc=desc, disable=not progress, unit="unit")
        try:
            for u in units:
                k = unit_key(u)
                if not self.done(k):
                    self.write(k, fn(u))
                bar.update(1)
        finally:
            bar.close()
        return self.results()


def _open(out_dir: str | os.PathLike | None, name: str, config: dict[str, Any], key_columns: Sequence[str],
          overwrite: bool = False) -> Any:
    if out_dir is None:
        return _MemorySweep()
    return ResumableSweep(out_dir, name=name, config=config, key_columns=tuple(key_columns), overwrite=overwrite)


def _frame(records: list[dict[str, Any]], schema: dict[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records, columns=list(schema)) if records else pd.DataFrame(
        {c: pd.Series([], dtype=t) for c, t in schema.items()})
    return frame.astype(schema)


def _typed(frame: pd.DataFrame, schema: dict[str, str]) -> pd.DataFrame:
    if frame.empty and not len(frame.columns):
        return _frame([], schema)
    return frame


def _run_units(rows_store: Any, status_store: Any | None, units: list[Any], fn: Callable[[Any], tuple],
               desc: str, progress: bool) -> None:
    """Run ``fn(unit) -> (rows, status)`` for every pending unit; status is written before rows, so
    a unit is complete exactly when its rows are stored (a crash in between recomputes it)."""

    def one(u: Any) -> pd.DataFrame:
        rows, status = fn(u)
        if status_store is not None and not status_store.done(u):
            status_store.write(u, status)
        return rows

    rows_store.run(units, one, unit_key=lambda u: u, desc=desc, progress=progress)


class _TensorCache:
    """Per-chunk tensors (clean latents for the inter-instance analysis), on disk when out_dir is set."""

    def __init__(self, out_dir: str | os.PathLike | None, name: str, fingerprint: str, overwrite: bool = False) -> None:
        self._mem: dict[int, dict[str, Tensor]] = {}
        self._dir = None if out_dir is None else Path(out_dir) / f"{name}_cache" / fingerprint
        if self._dir is not None:
            if overwrite and self._dir.parent.exists():
                import shutil

                shutil.rmtree(self._dir.parent)
            self._dir.mkdir(parents=True, exist_ok=True)

    def _path(self, c: int) -> Path:
        assert self._dir is not None
        return self._dir / f"chunk-{c:05d}.safetensors"

    def get(self, c: int) -> dict[str, Tensor] | None:
        if c in self._mem:
            return self._mem[c]
        if self._dir is not None and self._path(c).exists():
            from safetensors.torch import load_file

            self._mem[c] = load_file(str(self._path(c)))
            return self._mem[c]
        return None

    def put(self, c: int, tensors: dict[str, Tensor]) -> None:
        self._mem[c] = tensors
        if self._dir is not None and not self._path(c).exists():
            from safetensors.torch import save_file

            fd, tmp = tempfile.mkstemp(prefix=".chunk.", suffix=".tmp", dir=self._dir)
            os.close(fd)
            try:
                save_file({k: v.contiguous() for k, v in tensors.items()}, tmp)
                os.replace(tmp, self._path(c))
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise


# =========================================================================== small helpers
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


def _describe(obj: Any) -> Any:
    """JSON-ready description of an intervention (tensors and traces by digest, callables by name)."""
    if isinstance(obj, NoLatents):
        return {"type": "NoLatents"}
    if isinstance(obj, Lambda):
        return {"type": "Lambda", "fn": obj.name_ or _qualname(obj.fn)}
    if isinstance(obj, Intervention) and dataclasses.is_dataclass(obj):
        d: dict[str, Any] = {"type": type(obj).__name__}
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if isinstance(v, Tensor):
                d[f.name] = _tensor_digest(v)
            elif isinstance(v, LatentTrace):
                d[f.name] = {"trace": trace_fingerprint(v), "n": len(v)}
            elif isinstance(v, tuple):
                d[f.name] = list(v)
            elif callable(v):
                d[f.name] = _qualname(v)
            else:
                d[f.name] = v
        return d
    if callable(obj):
        return {"type": "callable", "fn": _qualname(obj)}
    raise InterventionError(f"{obj!r} is not an intervention or a callable (z, step, example) -> z.")


def _runner_info(runner: Any) -> dict[str, Any]:
    return {"model": type(runner.model).__name__, "spec": runner.spec.name,
            "n_layers": int(runner.parts.n_layers), "hidden_size": int(runner.parts.hidden_size)}


def _run(runner: Any, inputs: InputSet, *, max_new_tokens: int, batch_size: int, seed: int,
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


# ---------------------------------------------------------------- bootstrap of column means
from latentprobe.stats import _index_blocks  # noqa: E402  (one resampling scheme for every interval)


def bootstrap_mean_columns(values: np.ndarray, *, n_boot: int = 2000, seed: int | None = 0,
                           confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and percentile bootstrap interval of every column of ``values [n, G]`` (no NaN).

    Same resamples and conventions as :func:`latentprobe.stats.bootstrap_ci` with ``np.mean``
    (``default_rng(seed).integers(0, n, size=(n_boot, n))``, one draw shared by all columns;
    a constant column gets exactly ``[v, v]``), with one index draw shared by all columns.
    """
    v = np.asarray(values, dtype=np.float64)
    n, g = v.shape
    est = np.empty(g)
    lo = np.empty(g)
    hi = np.empty(g)
    const = np.all(v == v[:1], axis=0)
    est[const] = v[0, const]
    lo[const] = hi[const] = v[0, const]
    var = np.flatnonzero(~const)
    if var.size:
        est[var] = [float(np.mean(v[:, j])) for j in var]
        alpha = 1.0 - float(confidence)
        boots: list[list[np.ndarray]] = [[] for _ in range(var.size)]
        for idx in _index_blocks(n, n_boot, seed):
            for j, col in enumerate(var):
                boots[j].append(np.mean(np.ascontiguousarray(v[:, col])[idx], axis=1))
        boots = [np.concatenate(b) for b in boots]
        for j, col in enumerate(var):
            lo[col], hi[col] = np.quantile(boots[j], [alpha / 2.0, 1.0 - alpha / 2.0])
    return est, lo, hi


# =========================================================================== X -> Z
def _capture_prompt_text_and_image(ids: Tensor, segs: Tensor) -> list[int]:
    s = segs.tolist()
    return [p for p, c in enumerate(s) if c in (Segment.TEXT, Segment.IMAGE)]


def _xz_features(trace: LatentTrace, layers: list[int]) -> list[dict[str, Any]]:
    out = []
    for e in trace:
        f: dict[str, Any] = {"example_id": e.example_id, "k": e.num_latents,
                             "lat": e.hidden[:, layers].float() if e.num_latents else None, "base": {}}
        if e.captured_positions is not None and e.captured_hidden is not None and e.captured_positions.numel():
            row_of = {int(p): r for r, p in enumerate(e.captured_positions.tolist())}
            segs = e.segments.tolist()[: e.prompt_len]
            text = [p for p, c in enumerate(segs) if c == Segment.TEXT and p in row_of]
            image = [p for p, c in enumerate(segs) if c == Segment.IMAGE and p in row_of]
            ch = e.captured_hidden[:, layers].float()
            if text:
                f["base"]["text_last"] = ch[row_of[text[-1]]]
                f["base"]["text_mean"] = ch[[row_of[p] for p in text]].mean(0)
            if image:
                f["base"]["image_mean"] = ch[[row_of[p] for p in image]].mean(0)
            both = sorted(text + image)
            if both:
                f["base"]["prompt_last"] = ch[row_of[both[-1]]]
        out.append(f)
    return out


def _cos_rel(a: Tensor, b: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Cosine and ||b - a|| / ||a|| along the last axis, in float64 (NaN where a norm is 0)."""
    x = a.double().numpy()
    y = b.double().numpy()
    na = np.linalg.norm(x, axis=-1)
    nb = np.linalg.norm(y, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.clip((x * y).sum(-1) / (na * nb), -1.0, 1.0)
        rel = np.linalg.norm(y - x, axis=-1) / na
    cos = np.where((na == 0) | (nb == 0), np.nan, cos)
    rel = np.where(na == 0, np.nan, rel)
    return cos, rel


def _normalise_perturbations(perturbations: Any) -> list[Perturbation]:
    if isinstance(perturbations, Perturbation):
        perts = [perturbations]
    elif isinstance(perturbations, Mapping):
        perts = [dataclasses.replace(p, name=str(k)) if dataclasses.is_dataclass(p) and getattr(p, "name", k) != k else p
                 for k, p in perturbations.items()]
    else:
        perts = list(perturbations)
    if not perts:
        raise InputError("no perturbations given.")
    bad = [p for p in perts if not isinstance(p, Perturbation)]
    if bad:
        raise InputError(f"{bad[0]!r} is not a latentprobe.perturbations.Perturbation; wrap callables in Custom(fn, name=...).")
    names = [p.name for p in perts]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"perturbation names must be unique, got {dup} more than once; pass name=... to tell them apart.")
    return perts


def x_to_z(runner: Any, inputs: InputSet, perturbations: Perturbation | Sequence[Perturbation] | Mapping[str, Perturbation],
           *, layers: Sequence[int] | None = None, out_dir: str | os.PathLike | None = None, seed: int = 0,
           n_boot: int = 2000, chunk_size: int = 16, batch_size: int = 8, max_new_tokens: int = 16,
           logits_processor: Any = None, across_layers: Sequence[int] = (0,), baselines: bool = True,
           overwrite: bool = False, progress: bool = True, name: str = "x_to_z") -> XZResult:
    """How much do the latents change when the input changes?

    For every perturbation, clean and perturbed inputs are run; for each example that entered
    latent mode in both runs with the same number of latents, the latents at each step and
    residual layer are compared (cosine similarity and relative L2 ``||z' - z|| / ||z||``). The
    same comparison for prompt-token states gives baselines: ``text_last`` (last text token of
    the prompt; in the toy prompt this is ``<|vision_start|>``, which comes before the image),
    ``text_mean`` (mean over prompt text tokens), ``image_mean`` (mean over image tokens) and
    ``prompt_last`` (the last prompt token). :class:`~latentprobe.perturbations.InstanceSwap` gives
    the cross-instance reference: latents of entirely different inputs.

    Parameters
    ----------
    runner : LatentRunner
    inputs : InputSet
    perturbations : Perturbation, list of them, or ``{name: Perturbation}``
        Names must be unique; they label the results.
    layers : sequence of int, optional
        Residual layers to compare (default: all, ``0..n_layers``; 0 is the fed latent z).
    out_dir : path, optional
        Write rows as they are computed and resume an interrupted sweep (see module docs). A
        folder holding results of another configuration is refused (``SweepConfigMismatch``).
    overwrite : bool
        Discard this sweep's stored results in ``out_dir`` and start again.
    seed : int
        Generation seed (sampling only) and bootstrap seed.
    n_boot : int
        Bootstrap resamples of every interval.
    chunk_size, batch_size, max_new_tokens, logits_processor
        Examples per stored unit; runner batch size, token budget and logits processor.
    across_layers : sequence of int
        Residual layers of the inter-instance similarity of clean latents.
    baselines : bool
        Capture prompt-token states for the baselines (all prompt text and image positions at all
        layers: turn off for very long prompts).

    Returns
    -------
    XZResult
    """
    n = len(inputs)
    if n == 0:
        raise InputError("the InputSet is empty.")
    n_res = int(runner.parts.n_layers) + 1
    layers = list(range(n_res)) if layers is None else sorted({int(l) for l in layers})
    across_layers = sorted({int(l) for l in across_layers})
    bad = [l for l in layers + across_layers if not 0 <= l < n_res]
    if bad:
        raise InputError(f"layers {bad} out of range: residual layers are 0..{n_res - 1} (0 = the fed latent).")
    perts = [p.bind(inputs) for p in _normalise_perturbations(perturbations)]
    chunks = _chunks(n, chunk_size)
    sweep_cfg = {
        "analysis": "x_to_z", "inputs": inputs.fingerprint(), "n": n, "runner": _runner_info(runner),
        "perturbations": {p.name: p.to_config() for p in perts}, "layers": layers, "seed": int(seed),
        "chunk_size": int(chunk_size), "batch_size": int(batch_size), "max_new_tokens": int(max_new_tokens),
        "logits_processor": _qualname(logits_processor), "baselines": bool(baselines),
    }
    config = {**sweep_cfg, "n_boot": int(n_boot), "across_layers": across_layers,
              "out_dir": None if out_dir is None else str(out_dir)}
    rows_store = _open(out_dir, name, sweep_cfg, ("example_id",), overwrite)
    status_store = _open(out_dir, f"{name}_status", sweep_cfg, ("example_id",), overwrite)
    cache_key = json.dumps({**sweep_cfg, "across_layers": across_layers}, sort_keys=True)
    cache = _TensorCache(out_dir, name, hashlib.sha1(cache_key.encode()).hexdigest()[:12], overwrite)
    capture = _capture_prompt_text_and_image if baselines else None
    current: dict[str, Any] = {"chunk": None, "feats": None}

    def clean_features(c: int) -> list[dict[str, Any]]:
        if current["chunk"] != c:
            tr = _run(runner, inputs.select(chunks[c]), max_new_tokens=max_new_tokens, batch_size=batch_size,
                      seed=seed, logits_processor=logits_processor, capture=capture)
            current["chunk"], current["feats"] = c, _xz_features(tr, layers)
            if cache.get(c) is None:
                cache.put(c, _across_tensors(tr, across_layers))
        return current["feats"]

    def unit(u: tuple[int, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
        c, pname = u
        p = next(q for q in perts if q.name == pname)
        clean = clean_features(c)
        pin = p.apply(inputs, chunks[c])
        tr = _run(runner, pin, max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed,
                  logits_processor=logits_processor, capture=capture)
        pert = _xz_features(tr, layers)
        rows, status = [], []
        for fc, fp in zip(clean, pert):
            eid = fc["example_id"]
            reason = _pair_reason(fc["k"], fp["k"], "perturbed")
            status.append(_status(eid, pname, reason, fc["k"], fp["k"], c))
            if reason != _KEPT:
                continue
            cos, rel = _cos_rel(fc["lat"], fp["lat"])  # [K, Lsel]
            for k in range(fc["k"]):
                for li, l in enumerate(layers):
                    rows.append({"example_id": eid, "perturbation": pname, "source": "latent", "step": k, "layer": l,
                                 "cosine": float(cos[k, li]), "rel_l2": float(rel[k, li]), "chunk": c})
            for src in BASELINE_SOURCES:
                if src in fc["base"] and src in fp["base"]:
                    bc, br = _cos_rel(fc["base"][src], fp["base"][src])
                    for li, l in enumerate(layers):
                        rows.append({"example_id": eid, "perturbation": pname, "source": src, "step": -1, "layer": l,
                                     "cosine": float(bc[li]), "rel_l2": float(br[li]), "chunk": c})
        return _frame(rows, _XZ_ROWS), _frame(status, _STATUS)

    units = [(c, p.name) for c in range(len(chunks)) for p in perts]
    _run_units(rows_store, status_store, units, unit, desc=name, progress=progress)
    rows = _typed(rows_store.results(), _XZ_ROWS)
    status = _typed(status_store.results(), _STATUS)
    dropped = status[status["reason"] != _KEPT].reset_index(drop=True)
    summary = summarize_x_to_z(rows, n_boot=n_boot, seed=seed, order=[p.name for p in perts])

    # inter-instance similarity of clean latents
    per_chunk = []
    for c in range(len(chunks)):
        t = cache.get(c)
        if t is None:
            clean_features(c)
            t = cache.get(c)
        per_chunk.append(t)
    across, mats = _across_frame(per_chunk, inputs.example_ids, across_layers, n_boot=n_boot, seed=seed)
    return XZResult(rows=rows, summary=summary, dropped=dropped, config=config, across=across,
                    across_matrices=mats, status=status)


def _across_tensors(trace: LatentTrace, across_layers: list[int]) -> dict[str, Tensor]:
    return {e.example_id: e.hidden[:, across_layers].float().contiguous() for e in trace if e.num_latents > 0}


def _across_frame(per_chunk: list[dict[str, Tensor]], example_ids: Sequence[str], across_layers: list[int], *,
                  n_boot: int, seed: int) -> tuple[pd.DataFrame, dict[int, np.ndarray]]:
    from latentprobe.geometry import across_instances

    cols = {"layer": "int64", "center": "bool", "step": "int64", "mean_offdiag": "float64", "ci_low": "float64",
            "ci_high": "float64", "n": "int64"}
    merged: dict[str, Tensor] = {}
    for t in per_chunk:
        merged.update(t)
    present = [e for e in example_ids if e in merged]
    k = _modal_k([merged[e].shape[0] for e in present])
    keep = [e for e in present if k is not None and merged[e].shape[0] == k]
    if len(keep) < 2:
        return _frame([], cols), {}
    lat = torch.stack([merged[e] for e in keep])  # [n, K, A, d]
    recs, mats = [], {}
    for a, l in enumerate(across_layers):
        for center in (False, True):
            res = across_instances(lat[:, :, a], center=center, n_boot=n_boot, seed=seed)
            if not center and res.matrices is not None:
                mats[l] = res.matrices
            for _, r in res.summary.iterrows():
                recs.append({"layer": l, "center": center, "step": int(r["step"]), "mean_offdiag": float(r["mean_offdiag"]),
                             "ci_low": float(r["ci_low"]), "ci_high": float(r["ci_high"]), "n": int(r["n"])})
    return _frame(recs, cols), mats


def summarize_x_to_z(rows: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0, confidence: float = 0.95,
                     order: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean cosine and relative L2 with percentile bootstrap intervals over examples, per
    perturbation x source x step x layer (long format: one row per metric).

    Within a perturbation every cell is resampled with the same example indices (those of
    :func:`latentprobe.stats.bootstrap_ci` with ``seed``); values that are NaN (a zero-norm
    vector) are left out of their cell, which then has a smaller ``n``.
    """
    cols = ["perturbation", "source", "step", "layer", "metric", "estimate", "ci_low", "ci_high", "n", "note"]
    if rows.empty:
        return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in zip(
            cols, ["str", "str", "int64", "int64", "str", "float64", "float64", "float64", "int64", "str"])})
    src_rank = {s: i for i, s in enumerate(("latent",) + BASELINE_SOURCES)}
    perts = list(order) if order is not None else list(dict.fromkeys(rows["perturbation"]))
    perts += [p for p in dict.fromkeys(rows["perturbation"]) if p not in perts]
    out = []
    for p in perts:
        dp = rows[rows["perturbation"] == p]
        if dp.empty:
            continue
        ex_order = list(dict.fromkeys(dp["example_id"]))
        keys = sorted(dp[["source", "step", "layer"]].drop_duplicates().itertuples(index=False, name=None),
                      key=lambda t: (src_rank.get(t[0], 99), t[0], t[1], t[2]))
        for metric in ("cosine", "rel_l2"):
            wide = dp.pivot_table(index="example_id", columns=["source", "step", "layer"], values=metric,
                                  aggfunc="first", dropna=False, sort=False)
            wide = wide.reindex(index=ex_order, columns=pd.MultiIndex.from_tuples(keys, names=["source", "step", "layer"]))
            v = wide.to_numpy(dtype=np.float64)
            full = ~np.isnan(v).any(axis=0)
            est = np.full(len(keys), np.nan)
            lo = np.full(len(keys), np.nan)
            hi = np.full(len(keys), np.nan)
            nn = np.full(len(keys), v.shape[0])
            if full.any():
                e_, l_, h_ = bootstrap_mean_columns(v[:, full], n_boot=n_boot, seed=seed, confidence=confidence)
                est[full], lo[full], hi[full] = e_, l_, h_
            for j in np.flatnonzero(~full):
                x = v[:, j][~np.isnan(v[:, j])]
                nn[j] = x.size
                if x.size:
                    eff = _stats.bootstrap_ci(x, n_boot=n_boot, seed=seed, confidence=confidence)
                    est[j], lo[j], hi[j] = eff.estimate, eff.ci_low, eff.ci_high
            for j, (src, step, layer) in enumerate(keys):
                out.append({"perturbation": p, "source": src, "step": int(step), "layer": int(layer), "metric": metric,
                            "estimate": est[j], "ci_low": lo[j], "ci_high": hi[j], "n": int(nn[j]),
                            "note": _stats.small_sample_note(int(nn[j]))})
    frame = pd.DataFrame(out, columns=cols)
    # one metric after the other within each cell
    frame["_m"] = frame["metric"].map({"cosine": 0, "rel_l2": 1})
    frame["_s"] = frame["source"].map(lambda s: src_rank.get(s, 99))
    frame["_p"] = frame["perturbation"].map({p: i for i, p in enumerate(perts)})
    frame = frame.sort_values(["_p", "_s", "step", "layer", "_m"], kind="stable").drop(columns=["_m", "_s", "_p"])
    return frame.reset_index(drop=True).astype({"step": "int64", "layer": "int64", "n": "int64"})


# =========================================================================== Z -> Y
class NoLatents:
    """Marker for the "keep only the open/close markers" condition: ``redecode`` with
    ``drop_latents=True`` (run in redecode mode only). Removing the latent slots also shifts the
    positions of everything after them, so its effect is not purely an effect of latent content."""

    name = "no_latents"

    def __repr__(self) -> str:
        return "NoLatents()"


def _gen(seed: int, example_id: str, step: int, layer: int, salt: str) -> torch.Generator:
    return torch_generator(seed, salt, example_id, step, layer)


@dataclass(frozen=True)
class GaussianReplace(Intervention):
    """Replace the latent with ``N(0, std^2 I)`` noise, seeded per (seed, example_id, step, layer).

    The paper's "replace with Gaussian noise"; :func:`default_interventions` sets ``std`` to the
    root-mean-square coordinate of the clean latents, so the noise has their typical norm (unlike
    :class:`~latentprobe.interventions.ReplaceNoise`, whose norm is matched per latent)."""

    std: float = 1.0
    seed: int = 0

    def apply(self, z: Tensor, step: int, example: Any, layer: int = 0) -> Tensor:
        g = _gen(self.seed, example.example_id, step, layer, "gauss")
        return (torch.randn(z.shape, generator=g, dtype=torch.float32) * float(self.std)).to(z.dtype)


@dataclass(frozen=True, eq=False)
class MatchedDisplacement(Intervention):
    """Placebo for a swap: move the latent by a random direction of the *same distance* as the swap
    would (``z + u * ||z_src - z||``, ``u`` a seeded random unit vector), where ``z_src`` is the
    latent of example ``mapping[i]`` of ``source`` at the same step (and layer). A swap that hurts
    more than this placebo does so because of *what* it writes, not only how far it moves z."""

    source: Any
    mapping: tuple[int, ...] | None = None
    seed: int = 0

    def apply(self, z: Tensor, step: int, example: Any, layer: int = 0) -> Tensor:
        n = len(self.source)
        j = self.mapping[example.index] if self.mapping is not None else (example.index + 1) % n
        s = self.source[j]
        target = s.z[step] if layer == 0 else s.hidden[step, layer]
        dist = (target.float() - z.float()).norm()
        g = _gen(self.seed, example.example_id, step, layer, "placebo")
        u = torch.randn(z.shape, generator=g, dtype=torch.float32)
        u = u / u.norm().clamp_min(1e-12)
        return (z.float() + u * dist).to(z.dtype)


def _kept_latent_examples(trace: LatentTrace) -> tuple[list[int], int | None]:
    k = _modal_k([e.num_latents for e in trace])
    return [i for i, e in enumerate(trace) if k is not None and e.num_latents == k], k


def default_interventions(trace: LatentTrace, *, seed: int = 0) -> dict[str, Any]:
    """The full suite, built from ``trace`` (its examples with the most common number of latents).

    Paper: ``shared_tensor`` (one random vector, of the clean latents' mean norm, written into
    every latent of every example), ``add_noise`` (Gaussian noise of about the latent's own norm),
    ``replace_noise`` (:class:`GaussianReplace`), ``near_zero`` (``Scale(1e-3)``).
    Wider: ``zero``, ``mean_ablate`` (per-step mean), ``swap`` (another example's latents, seeded
    derangement), ``repeat_first``, ``no_latents`` (:class:`NoLatents`), ``random_direction``
    (``ReplaceNoise``: a random direction with the latent's norm) and ``swap_placebo``
    (:class:`MatchedDisplacement`). Swaps need at least 2 usable examples and are left out
    otherwise. Index-based interventions (swaps) index ``trace``.
    """
    kept, k = _kept_latent_examples(trace)
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


def _gold_list(gold: Any, ids: Sequence[str]) -> list[str | None] | None:
    if gold is None:
        return None
    if isinstance(gold, InputSet):
        gold = gold.gold
        if gold is None:
            return None
    if isinstance(gold, Mapping):
        return [None if gold.get(i) is None else str(gold.get(i)) for i in ids]
    gold = list(gold)
    if len(gold) != len(ids):
        raise InputError(f"{len(gold)} gold answers for {len(ids)} examples; give one per example (None where unknown).")
    return [None if g is None else str(g) for g in gold]


def _answer_key(text: str | None, match: str) -> str:
    s = " ".join(str(text or "").strip().lower().split())
    if match == "first_word":
        return s.split(" ")[0] if s else ""
    return s


def _answer_sig(e: Any, match: str) -> tuple[int, ...]:
    """The answer tokens that a flip compares: all of them, or the first with ``match="first_word"``."""
    ids = tuple(int(t) for t in e.answer_ids.tolist())
    return ids[:1] if match == "first_word" else ids


def _gold_token_id(tokenizer: Any, gold: str | None, prefix: str) -> int | None:
    if gold is None:
        return None
    ids = tokenizer(prefix + gold, add_special_tokens=False)["input_ids"]
    return int(ids[0]) if len(ids) else None


def _first_lp(e: Any) -> Tensor | None:
    return None if e.first_token_logprobs is None else e.first_token_logprobs.double()


def _outcome(e: Any, gold: str | None, gid: int | None, match: str) -> dict[str, float]:
    lp = _first_lp(e)
    correct = np.nan if gold is None else float(_answer_key(e.answer_text, match) == _answer_key(gold, match))
    glp = float(lp[gid]) if (lp is not None and gid is not None and 0 <= gid < lp.numel()) else np.nan
    rec = float(e.forced_logprobs.double().sum()) if e.forced_logprobs is not None else np.nan
    return {"correct": correct, "gold_logprob": glp, "recorded_logprob": rec}


def _kl(ref: Any, other: Any) -> float:
    p, q = _first_lp(ref), _first_lp(other)
    if p is None or q is None or p.shape != q.shape:
        return np.nan
    return float((p.exp() * (p - q)).sum())


def z_to_y(runner: Any, trace: LatentTrace, interventions: Mapping[str, Any] | None = None, *,
           modes: Sequence[str] = MODES, gold: Sequence[str | None] | Mapping[str, str] | InputSet | None = None,
           steps: Sequence[int] | None = None, layers: Sequence[int] = (0,), out_dir: str | os.PathLike | None = None,
           seed: int = 0, n_boot: int = 2000, chunk_size: int = 16, batch_size: int = 8,
           max_new_tokens: int | None = None, logits_processor: Any = None, match: str = "exact",
           gold_prefix: str = "", overwrite: bool = False, progress: bool = True, name: str = "z_to_y") -> ZYResult:
    """How much does the answer change when the latents change?

    Every intervention is run in every mode on the examples of ``trace`` that entered latent mode
    with the trace's most common number of latents, and compared example by example with the
    no-op control of the same mode (``intervention="none"``, see the module docs).

    Parameters
    ----------
    runner : LatentRunner
    trace : LatentTrace
        The clean run (from ``runner.run``).
    interventions : ``{name: Intervention | callable | NoLatents()}``, optional
        Default: :func:`default_interventions` (the paper's four and the wider suite). Callables
        receive examples re-indexed within a chunk: look data up by ``example.example_id``. Swaps
        and ``Replace([n, K, d])`` index ``trace`` and are remapped per chunk automatically.
        ``NoLatents`` runs in ``redecode`` mode only.
    modes : sequence of ``"replay" | "propagate" | "redecode"``
        In replay the answer is teacher forced: ``answer`` holds the greedy predictions at the
        recorded answer positions and ``recorded_logprob`` scores the recorded answer.
    gold : sequence (aligned with ``trace``), ``{example_id: gold}`` or an InputSet, optional
        Without gold, accuracy metrics are NaN (flips, log-probs of nothing and KL remain).
    steps, layers
        Latent steps to intervene on (default all) and residual layers to patch (default the fed z).
    match : ``"exact"`` or ``"first_word"``
        How answers are compared (after lower-casing and collapsing whitespace).
    gold_prefix : str
        Prepended to the gold answer before tokenising it for ``gold_logprob`` (e.g. ``" "`` for
        BPE vocabularies whose answers start with a space).
    out_dir, overwrite, seed, n_boot, chunk_size, batch_size, logits_processor, progress, name
        As in :func:`x_to_z` (``seed`` also seeds the default suite's random draws);
        ``max_new_tokens`` defaults to the trace's.

    Returns
    -------
    ZYResult
    """
    modes = list(dict.fromkeys(modes))
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise InputError(f"modes {bad or modes} not understood; use a subset of {MODES}.")
    if match not in ("exact", "first_word"):
        raise InputError(f"match={match!r}; use 'exact' or 'first_word'.")
    ids = trace.example_ids
    golds_all = _gold_list(gold, ids)
    kept, k = _kept_latent_examples(trace)
    dropped_recs = []
    for i, e in enumerate(trace):
        if e.num_latents == 0:
            dropped_recs.append(_status(e.example_id, "all", "not_entered", 0, 0, -1))
        elif e.num_latents != k:
            dropped_recs.append(_status(e.example_id, "all", "latent_count_not_modal", e.num_latents, e.num_latents, -1))
    dropped = _frame(dropped_recs, _STATUS)
    if interventions is None:
        interventions = default_interventions(trace, seed=seed) if kept else {}
    interventions = dict(interventions)
    if "none" in interventions:
        raise InputError("'none' is reserved for the no-op control; rename that intervention.")
    for nm, iv in interventions.items():
        _describe(iv)  # validates
    chunks = [[kept[j] for j in c] for c in _chunks(len(kept), chunk_size)] if kept else []
    sweep_cfg = {
        "analysis": "z_to_y", "trace": trace_fingerprint(trace), "n": len(trace), "runner": _runner_info(runner),
        "interventions": {nm: _describe(iv) for nm, iv in interventions.items()}, "modes": modes,
        "gold": None if golds_all is None else hashlib.sha1(json.dumps(golds_all).encode()).hexdigest()[:16],
        "steps": None if steps is None else sorted({int(s) for s in steps}), "layers": sorted({int(l) for l in layers}),
        "seed": int(seed), "chunk_size": int(chunk_size), "batch_size": int(batch_size),
        "max_new_tokens": max_new_tokens, "logits_processor": _qualname(logits_processor), "match": match,
        "gold_prefix": gold_prefix,
    }
    config = {**sweep_cfg, "n_boot": int(n_boot), "n_kept": len(kept), "num_latents": k,
              "no_latents_modes": ["redecode"], "reference": "no-op control of the same mode",
              "out_dir": None if out_dir is None else str(out_dir)}
    store = _open(out_dir, name, sweep_cfg, ("example_id",), overwrite)
    tok = runner.tokenizer
    gids = None if golds_all is None else [_gold_token_id(tok, g, gold_prefix) for g in golds_all]
    controls: dict[tuple[int, str], LatentTrace] = {}
    ikw = dict(steps=steps, layers=tuple(layers), batch_size=batch_size, max_new_tokens=max_new_tokens,
               logits_processor=logits_processor, seed=seed, progress=False)

    def control(c: int, mode: str) -> LatentTrace:
        if (c, mode) not in controls:
            for key in [key for key in controls if key[0] != c]:
                del controls[key]
            controls[(c, mode)] = runner.intervene(trace.select(chunks[c]), None, mode=mode, **ikw)
        return controls[(c, mode)]

    def unit(u: tuple[int, str, str]) -> tuple[pd.DataFrame, None]:
        c, mode, nm = u
        sub = trace.select(chunks[c])
        ref = control(c, mode)
        if nm == "none":
            out = ref
        else:
            iv = interventions[nm]
            if isinstance(iv, NoLatents):
                out = runner.intervene(sub, None, mode="redecode", drop_latents=True,
                                       **{**ikw, "steps": None, "layers": (0,)})
            else:
                out = runner.intervene(sub, _for_chunk(iv, chunks[c], len(trace)), mode=mode, **ikw)
        recs = []
        for j, (oi, e_clean, e_ref, e_out) in enumerate(zip(chunks[c], sub, ref, out)):
            g = None if golds_all is None else golds_all[oi]
            gid = None if gids is None else gids[oi]
            o, r = _outcome(e_out, g, gid, match), _outcome(e_ref, g, gid, match)
            recs.append({
                "example_id": e_clean.example_id, "chunk": c, "intervention": nm, "mode": mode,
                "answer": e_out.answer_text, "ref_answer": e_ref.answer_text, "clean_answer": e_clean.answer_text,
                "gold": g, "correct": o["correct"], "ref_correct": r["correct"],
                "flip": _answer_sig(e_out, match) != _answer_sig(e_ref, match),
                "changed_vs_clean": _answer_sig(e_out, match) != _answer_sig(e_clean, match),
                "gold_logprob": o["gold_logprob"], "ref_gold_logprob": r["gold_logprob"], "kl": _kl(e_ref, e_out),
                "recorded_logprob": o["recorded_logprob"] if mode == "replay" else np.nan,
                "ref_recorded_logprob": r["recorded_logprob"] if mode == "replay" else np.nan,
                "n_latents": e_out.num_latents,
            })
        return _frame(recs, _ZY_ROWS), None

    units = []
    for c in range(len(chunks)):
        for mode in modes:
            units.append((c, mode, "none"))
            for nm, iv in interventions.items():
                if isinstance(iv, NoLatents) and mode != "redecode":
                    continue
                units.append((c, mode, nm))
    _run_units(store, None, units, unit, desc=name, progress=progress)
    rows = _typed(store.results(), _ZY_ROWS)
    clean_correct = None
    if golds_all is not None and kept:
        clean_correct = np.array([np.nan if golds_all[i] is None else
                                  float(_answer_key(trace[i].answer_text, match) == _answer_key(golds_all[i], match))
                                  for i in kept])
    summary = summarize_z_to_y(rows, n_boot=n_boot, seed=seed, clean_correct=clean_correct,
                               order=["none"] + list(interventions))
    return ZYResult(rows=rows, summary=summary, dropped=dropped, config=config)


def _effect_row(eff: _stats.Effect, **keys: Any) -> dict[str, Any]:
    return {**keys, "estimate": eff.estimate, "ci_low": eff.ci_low, "ci_high": eff.ci_high, "n": eff.n,
            "p_value": np.nan if eff.p_value is None else eff.p_value, "method": eff.method, "note": eff.note}


def _finite(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    ok = np.ones(len(arrays[0]), dtype=bool)
    for a in arrays:
        ok &= np.isfinite(a)
    return tuple(a[ok] for a in arrays)


def summarize_z_to_y(rows: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0, confidence: float = 0.95,
                     clean_correct: Sequence[float] | None = None, order: Sequence[str] | None = None) -> pd.DataFrame:
    """Summary of Z -> Y rows, per intervention x mode (long format, one row per metric).

    ``accuracy`` (bootstrap CI of mean correctness), ``accuracy_change`` (intervened minus control,
    :func:`latentprobe.stats.binary_outcome_effect`: paired bootstrap CI and McNemar exact p),
    ``flip_rate`` (bootstrap CI), ``gold_logprob_change`` and ``recorded_logprob_change``
    (:func:`latentprobe.stats.paired_bootstrap_diff`), ``kl`` (bootstrap CI). Examples with a
    missing value (no gold, no first-token distribution) are left out of that metric only; ``n``
    says how many remain. ``clean_correct`` adds the original run's accuracy as
    ``intervention="none", mode="run"``.
    """
    cols = ["intervention", "mode", "metric"] + _SUMMARY_COLS
    out: list[dict[str, Any]] = []
    kw = dict(n_boot=n_boot, seed=seed, confidence=confidence)
    if clean_correct is not None:
        (cc,) = _finite(np.asarray(clean_correct, dtype=np.float64))
        if cc.size:
            out.append(_effect_row(_stats.bootstrap_ci(cc, name="accuracy", **kw), intervention="none", mode="run",
                                   metric="accuracy"))
    if not rows.empty:
        names = list(order) if order is not None else []
        names += [n for n in dict.fromkeys(rows["intervention"]) if n not in names]
        for nm in names:
            for mode in MODES:
                g = rows[(rows["intervention"] == nm) & (rows["mode"] == mode)]
                if g.empty:
                    continue
                key = dict(intervention=nm, mode=mode)
                c, rc = _finite(g["correct"].to_numpy(np.float64), g["ref_correct"].to_numpy(np.float64))
                if c.size:
                    out.append(_effect_row(_stats.bootstrap_ci(c, name="accuracy", **kw), metric="accuracy", **key))
                    out.append(_effect_row(_stats.binary_outcome_effect(rc.astype(bool), c.astype(bool), name="accuracy_change",
                                                                        **kw), metric="accuracy_change", **key))
                out.append(_effect_row(_stats.bootstrap_ci(g["flip"].to_numpy(np.float64), name="flip_rate", **kw),
                                       metric="flip_rate", **key))
                a, b = _finite(g["gold_logprob"].to_numpy(np.float64), g["ref_gold_logprob"].to_numpy(np.float64))
                if a.size:
                    out.append(_effect_row(_stats.paired_bootstrap_diff(a, b, name="gold_logprob_change", **kw),
                                           metric="gold_logprob_change", **key))
                (kl,) = _finite(g["kl"].to_numpy(np.float64))
                if kl.size:
                    out.append(_effect_row(_stats.bootstrap_ci(kl, name="kl", **kw), metric="kl", **key))
                a, b = _finite(g["recorded_logprob"].to_numpy(np.float64), g["ref_recorded_logprob"].to_numpy(np.float64))
                if a.size:
                    out.append(_effect_row(_stats.paired_bootstrap_diff(a, b, name="recorded_logprob_change", **kw),
                                           metric="recorded_logprob_change", **key))
    frame = pd.DataFrame(out, columns=cols)
    return frame.astype({"estimate": "float64", "ci_low": "float64", "ci_high": "float64", "p_value": "float64",
                         "n": "int64"})


# =========================================================================== mediation
_CONDITIONS = (("clean", "clean", "clean"), ("treated", "treated", "treated"),
               ("direct", "treated", "clean"), ("indirect", "clean", "treated"))


def decompose(runner: Any, inputs: InputSet, treatment: Perturbation, *,
              gold: Sequence[str | None] | Mapping[str, str] | None = None, against: str = "clean",
              outcome: str = "correct", out_dir: str | os.PathLike | None = None, n_boot: int = 2000, seed: int = 0,
              chunk_size: int = 16, batch_size: int = 8, max_new_tokens: int = 16, logits_processor: Any = None,
              match: str = "exact", gold_prefix: str = "", overwrite: bool = False, progress: bool = True,
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
        Gold answers aligned with ``inputs`` (or ``{example_id: gold}``). Default: ``inputs.gold``.
    against : ``"clean"`` (default) or ``"treated"``
        Outcomes are measured against the *clean* gold answer by default, in all four conditions:
        a negative TE then means the change of input moves the model away from the clean input's
        answer. ``"treated"`` uses the perturbed inputs' gold (e.g. the counterfactual answer).
    outcome : ``"correct"`` (default) or ``"gold_logprob"``
        Per-example outcome: correctness (McNemar exact p-values are attached to TE, NDE, NIE) or
        the first-token log-probability of the gold answer.
    out_dir, overwrite, seed, n_boot, chunk_size, batch_size, max_new_tokens, logits_processor
        As in :func:`x_to_z`; ``match`` and ``gold_prefix`` as in :func:`z_to_y`.

    Returns
    -------
    MediationResult
    """
    if outcome not in ("correct", "gold_logprob"):
        raise InputError(f"outcome={outcome!r}; use 'correct' or 'gold_logprob'.")
    if against not in ("clean", "treated"):
        raise InputError(f"against={against!r}; use 'clean' or 'treated'.")
    if match not in ("exact", "first_word"):
        raise InputError(f"match={match!r}; use 'exact' or 'first_word'.")
    if not isinstance(treatment, Perturbation):
        raise InputError(f"treatment must be a Perturbation, got {type(treatment).__name__}.")
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
    sweep_cfg = {
        "analysis": "mediation", "inputs": inputs.fingerprint(), "n": n, "runner": _runner_info(runner),
        "treatment": treatment.to_config(), "against": against,
        "gold": None if golds is None else hashlib.sha1(json.dumps(golds).encode()).hexdigest()[:16],
        "seed": int(seed), "chunk_size": int(chunk_size), "batch_size": int(batch_size),
        "max_new_tokens": int(max_new_tokens), "logits_processor": _qualname(logits_processor), "match": match,
        "gold_prefix": gold_prefix,
    }
    config = {**sweep_cfg, "outcome": outcome, "n_boot": int(n_boot), "out_dir": None if out_dir is None else str(out_dir),
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
        treated = _run(runner, tsub, **kw)
        status, kept = [], []
        for j, (ec, et) in enumerate(zip(clean, treated)):
            reason = _pair_reason(ec.num_latents, et.num_latents, "treated")
            if reason == _KEPT and g_chunk[j] is None:
                reason = "no_gold"
            status.append(_status(ec.example_id, tname, reason, ec.num_latents, et.num_latents, c))
            if reason == _KEPT:
                kept.append(j)
        by_k: dict[int, list[int]] = {}
        for j in kept:
            by_k.setdefault(clean[j].num_latents, []).append(j)
        results: dict[int, dict[str, Any]] = {}
        ikw = dict(mode="redecode", batch_size=batch_size, max_new_tokens=max_new_tokens,
                   logits_processor=logits_processor, seed=seed, progress=False)
        for kk, js in sorted(by_k.items()):
            ct, tt = clean.select(js), treated.select(js)
            zc = torch.stack([e.z for e in ct])
            zt = torch.stack([e.z for e in tt])
            outs = {
                "clean": runner.intervene(ct, None, **ikw),
                "treated": runner.intervene(tt, None, **ikw),
                "direct": runner.intervene(tt, Replace(zc), **ikw),
                "indirect": runner.intervene(ct, Replace(zt), **ikw),
            }
            for pos, j in enumerate(js):
                results[j] = {cond: outs[cond][pos] for cond in outs}
        recs = []
        for j in kept:
            g = g_chunk[j]
            gid = _gold_token_id(tok, g, gold_prefix)
            for cond, x, z in _CONDITIONS:
                e = results[j][cond]
                o = _outcome(e, g, gid, match)
                recs.append({"example_id": clean[j].example_id, "chunk": c, "condition": cond, "x": x, "z": z,
                             "answer": e.answer_text, "gold": g, "correct": o["correct"],
                             "gold_logprob": o["gold_logprob"], "n_latents": e.num_latents})
        return _frame(recs, _MED_ROWS), _frame(status, _STATUS)

    _run_units(rows_store, status_store, list(range(len(chunks))), unit, desc=name, progress=progress)
    rows = _typed(rows_store.results(), _MED_ROWS)
    status = _typed(status_store.results(), _STATUS)
    dropped = status[status["reason"] != _KEPT].reset_index(drop=True)
    summary, effects, prop, note, extra_drop = summarize_mediation(rows, outcome=outcome, n_boot=n_boot, seed=seed,
                                                                   treatment=tname, return_details=True)
    if len(extra_drop):
        dropped = pd.concat([dropped, _frame([_status(e, tname, f"no_{outcome}_value", -1, -1, -1) for e in extra_drop],
                                             _STATUS)], ignore_index=True)
    return MediationResult(rows=rows, summary=summary, dropped=dropped, config=config, effects=effects,
                           proportion_mediated=prop, proportion_note=note)


def summarize_mediation(rows: pd.DataFrame, *, outcome: str = "correct", n_boot: int = 2000, seed: int = 0,
                        confidence: float = 0.95, treatment: str = "", return_details: bool = False) -> Any:
    """TE, NDE, NIE (paired bootstrap, shared resamples), interaction, proportion mediated and the
    four condition means, from mediation rows (columns ``example_id, condition`` and the outcome).

    Examples missing an outcome in any condition are left out. With ``return_details`` the
    result is ``(summary, effects, proportion_mediated, proportion_note, left_out_example_ids)``. With ``outcome="correct"`` each effect carries McNemar's exact p-value
    for the two conditions it compares. The proportion mediated ``NIE / TE`` is reported only when
    TE's interval excludes 0; its interval is the percentile interval of ``mean(NIE) / mean(TE)``
    over the same resamples (resamples with ``mean(TE) == 0`` are left out and counted in the note).
    """
    cols = ["effect", "kind"] + _SUMMARY_COLS + ["outcome", "treatment"]
    col = "correct" if outcome == "correct" else "gold_logprob"
    if rows.empty:
        empty = pd.DataFrame(columns=cols)
        res = (empty, {}, float("nan"), "no examples", [])
        return res if return_details else empty
    wide = rows.pivot_table(index="example_id", columns="condition", values=col, aggfunc="first", dropna=False, sort=False)
    order = list(dict.fromkeys(rows["example_id"]))
    wide = wide.reindex(index=order, columns=["clean", "treated", "direct", "indirect"])
    ok = np.isfinite(wide.to_numpy(np.float64)).all(axis=1)
    missing = [e for e, good in zip(order, ok) if not good]
    w = wide[ok]
    y = {c: w[c].to_numpy(np.float64) for c in w.columns}
    kw = dict(n_boot=n_boot, seed=seed, confidence=confidence)
    out: list[dict[str, Any]] = []
    effects: dict[str, _stats.Effect] = {}
    if len(w) == 0:
        empty = pd.DataFrame(columns=cols)
        res = (empty, {}, float("nan"), "no example has the outcome in all four conditions", missing)
        return res if return_details else empty
    te, nde, nie = _stats.mediation_effects(y["clean"], y["treated"], y["direct"], y["indirect"], **kw)
    pairs = {"TE": (te, "treated"), "NDE": (nde, "direct"), "NIE": (nie, "indirect")}
    for nm, (eff, cond) in pairs.items():
        if outcome == "correct":
            mc = _stats.mcnemar_exact(y["clean"].astype(bool), y[cond].astype(bool))
            eff = dataclasses.replace(eff, p_value=mc.p_value, method=eff.method + "; p from McNemar exact test "
                                      f"(clean vs {cond}: b={mc.b}, c={mc.c})")
        effects[nm] = eff
    inter_vals = y["treated"] - y["direct"] - y["indirect"] + y["clean"]
    effects["interaction"] = dataclasses.replace(
        _stats.bootstrap_ci(inter_vals, name="interaction", **kw),
        note=("TE - NDE - NIE: non-zero when X and Z interact (the decomposition is then not additive)"
              + ("; " + _stats.small_sample_note(len(inter_vals)) if _stats.small_sample_note(len(inter_vals)) else "")))
    for nm in ("TE", "NDE", "NIE", "interaction"):
        out.append(_effect_row(effects[nm], effect=nm, kind="effect"))
    # proportion mediated
    if te.excludes_zero:
        prop = float(nie.estimate / te.estimate)
        d_te = y["treated"] - y["clean"]
        d_nie = y["indirect"] - y["clean"]
        ratios = []
        for idx in _index_blocks(len(d_te), n_boot, seed):
            m_te = d_te[idx].mean(axis=1)
            m_nie = d_nie[idx].mean(axis=1)
            good = m_te != 0
            ratios.append(m_nie[good] / m_te[good])
        r = np.concatenate(ratios)
        alpha = 1.0 - confidence
        lo, hi = (np.quantile(r, [alpha / 2, 1 - alpha / 2]) if r.size else (np.nan, np.nan))
        pnote = "NIE / TE (TE's interval excludes 0)"
        if r.size < n_boot:
            pnote += f"; {n_boot - r.size} resamples with mean TE = 0 left out"
        out.append({"effect": "proportion_mediated", "kind": "ratio", "estimate": prop, "ci_low": float(lo),
                    "ci_high": float(hi), "n": len(d_te), "p_value": np.nan,
                    "method": ("ratio of means over paired percentile bootstrap resamples "
                               f"({int(round(confidence * 100))}% CI, n_boot={n_boot})"),
                    "note": pnote})
    else:
        prop = float("nan")
        pnote = (f"TE's {int(round(confidence * 100))}% interval [{te.ci_low:.4g}, {te.ci_high:.4g}] includes 0: "
                 "the proportion mediated is undefined")
        out.append({"effect": "proportion_mediated", "kind": "ratio", "estimate": np.nan, "ci_low": np.nan,
                    "ci_high": np.nan, "n": len(w), "p_value": np.nan, "method": "", "note": pnote})
    for cond in ("clean", "treated", "direct", "indirect"):
        out.append(_effect_row(_stats.bootstrap_ci(y[cond], name=f"mean_{cond}", **kw), effect=f"mean_{cond}", kind="level"))
    frame = pd.DataFrame(out)
    frame["outcome"] = outcome
    frame["treatment"] = treatment
    frame = frame[cols].astype({"estimate": "float64", "ci_low": "float64", "ci_high": "float64", "p_value": "float64",
                                "n": "int64"})
    if return_details:
        return frame, effects, prop, pnote, missing
    return frame
