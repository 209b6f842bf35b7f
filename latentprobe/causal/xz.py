"""X -> Z: does changing the input change the latents? (:func:`x_to_z`, :func:`summarize_x_to_z`)"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from latentprobe import schema as S
from latentprobe import stats as _stats
from latentprobe.atomic import atomic_write
from latentprobe.causal.common import (
    BASELINE_SOURCES, _chunks, _open, _pair_reason, _run, _run_units, _status, check_analysis_args, kept_counts,
)
from latentprobe.causal.results import XZResult
from latentprobe.errors import InputError
from latentprobe.fingerprint import (
    callable_fingerprint, inputs_fingerprint, perturbation_fingerprint, runner_fingerprint,
)
from latentprobe.perturbations import InputSet, Perturbation
from latentprobe.schema import KEPT, SOURCES, XZ_METRICS
from latentprobe.trace import LatentSelection, LatentTrace, Segment

if TYPE_CHECKING:
    from latentprobe.engine.loop import LogitsProcessor
    from latentprobe.engine import LatentRunner

__all__ = ["x_to_z", "summarize_x_to_z", "summarize_by_prefix", "prefix_counts", "pre_latent_ids"]

class _TensorCache:
    """Per-chunk tensors (clean latents for the inter-instance analysis), on disk when out_dir is set."""

    def __init__(self, out_dir: str | os.PathLike | None, name: str, fingerprint: str, overwrite: bool = False) -> None:
        self._mem: dict[int, dict[str, Tensor]] = {}
        self._dir = None if out_dir is None else Path(out_dir) / f"{name}_cache" / fingerprint
        if self._dir is not None:
            if overwrite and self._dir.parent.exists():
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
            from safetensors.torch import save

            data = save({k: v.contiguous() for k, v in tensors.items()})
            atomic_write(self._path(c), lambda f: f.write(data), binary=True)


def _capture_prompt_text_and_image(ids: Tensor, segs: Tensor) -> list[int]:
    s = segs.tolist()
    return [p for p, c in enumerate(s) if c in (Segment.TEXT, Segment.IMAGE)]


def pre_latent_ids(e: Any) -> tuple[int, ...]:
    """The ids an example generated before its first open marker (after the prompt; empty when the open
    marker is in the prompt, as with Coconut and CODI, or comes first): the pre-latent text of ``prefix_changed``."""
    segs = e.segments.tolist()
    opens = [p for p, c in enumerate(segs) if c == Segment.OPEN and p >= e.prompt_len]
    end = opens[0] if opens else len(segs)
    return tuple(int(t) for t in e.input_ids[e.prompt_len:end].tolist())


def _xz_features(trace: LatentTrace, layers: list[int]) -> list[dict[str, Any]]:
    out = []
    for e in trace:
        f: dict[str, Any] = {"example_id": e.example_id, "k": e.num_latents, "prefix": pre_latent_ids(e),
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


def x_to_z(runner: LatentRunner, inputs: InputSet, perturbations: Perturbation | Sequence[Perturbation] | Mapping[str, Perturbation],
           *, layers: Sequence[int] | None = None, out_dir: str | os.PathLike | None = None, seed: int = 0,
           n_boot: int = 2000, ci: float = 0.95, chunk_size: int = 16, batch_size: int = 8, max_new_tokens: int = 16,
           logits_processor: LogitsProcessor | None = None, across_layers: Sequence[int] = (0,), baselines: bool = True,
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
    ci : float
        Confidence level of every interval (default 0.95).
    chunk_size, batch_size, max_new_tokens, logits_processor
        Examples per stored unit; runner batch size, token budget and logits processor.
    across_layers : sequence of int
        Residual layers of the inter-instance similarity of clean latents.
    baselines : bool
        Capture prompt-token states for the baselines (all prompt text and image positions at all
        layers: turn off for very long prompts).
    progress : bool
        Show progress bars.
    name : str
        Name of the analysis (its folder under ``out_dir``).

    Returns
    -------
    XZResult

    Examples
    --------
    On the shipped ``mediated`` toy, whose latents read the image, swapping images moves the latents:

    >>> from latentprobe import toy
    >>> from latentprobe.causal import x_to_z
    >>> from latentprobe.perturbations import ImageSwap
    >>> tm = toy.load("mediated")
    >>> inputs = toy.toy_inputs(tm.examples("test", 8))
    >>> xz = x_to_z(tm.runner(), inputs, ImageSwap(seed=0), n_boot=200, progress=False)
    >>> s = xz.summary
    >>> first = s[(s.source == "latent") & (s.layer == 0) & (s.step == 0) & (s.metric == "cosine")]
    >>> int(first.n.iloc[0]), bool(first.estimate.iloc[0] < 0.99)
    (8, True)
    """
    check_analysis_args(n_boot=n_boot, seed=seed, confidence=ci, chunk_size=chunk_size, batch_size=batch_size,
                        max_new_tokens=max_new_tokens)
    n = len(inputs)
    if n == 0:
        raise InputError("the InputSet is empty.")
    n_res = int(runner.n_layers) + 1
    layers = list(range(n_res)) if layers is None else sorted({int(l) for l in layers})
    across_layers = sorted({int(l) for l in across_layers})
    bad = [l for l in layers + across_layers if not 0 <= l < n_res]
    if bad:
        raise InputError(f"layers {bad} out of range: residual layers are 0..{n_res - 1} (0 = the fed latent).")
    perts = [p.bind(inputs) for p in _normalise_perturbations(perturbations)]
    chunks = _chunks(n, chunk_size)
    sweep_cfg = {
        "analysis": "x_to_z", "inputs": inputs_fingerprint(inputs), "n": n, "runner": runner_fingerprint(runner),
        "perturbations": {p.name: perturbation_fingerprint(p) for p in perts}, "layers": layers, "seed": int(seed),
        "chunk_size": int(chunk_size), "batch_size": int(batch_size), "max_new_tokens": int(max_new_tokens),
        "logits_processor": callable_fingerprint(logits_processor, what="logits processor"), "baselines": bool(baselines),
        "columns": [str(c) for c in S.XZ_ROWS.COLUMNS],
    }
    config = {**sweep_cfg, "n_boot": int(n_boot), "ci": float(ci), "across_layers": across_layers,
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
            if reason != KEPT:
                continue
            R = S.XZ_ROWS
            changed = fc["prefix"] != fp["prefix"]
            cos, rel = _cos_rel(fc["lat"], fp["lat"])  # [K, Lsel]
            for k in range(fc["k"]):
                for li, l in enumerate(layers):
                    rows.append({R.EXAMPLE_ID: eid, R.PERTURBATION: pname, R.SOURCE: SOURCES[0], R.STEP: k, R.LAYER: l,
                                 R.COSINE: float(cos[k, li]), R.REL_L2: float(rel[k, li]), R.CHUNK: c,
                                 R.PREFIX_CHANGED: changed})
            for src in BASELINE_SOURCES:
                if src in fc["base"] and src in fp["base"]:
                    bc, br = _cos_rel(fc["base"][src], fp["base"][src])
                    for li, l in enumerate(layers):
                        rows.append({R.EXAMPLE_ID: eid, R.PERTURBATION: pname, R.SOURCE: src, R.STEP: -1, R.LAYER: l,
                                     R.COSINE: float(bc[li]), R.REL_L2: float(br[li]), R.CHUNK: c,
                                     R.PREFIX_CHANGED: changed})
        return S.XZ_ROWS.frame(rows), S.STATUS.frame(status)

    units = [(c, p.name) for c in range(len(chunks)) for p in perts]
    _run_units(rows_store, status_store, units, unit, desc=name, progress=progress)
    rows = S.XZ_ROWS.frame(rows_store.results())
    status = S.STATUS.frame(status_store.results())
    dropped = status[status[S.STATUS.REASON] != KEPT].reset_index(drop=True)
    summary = summarize_x_to_z(rows, n_boot=n_boot, seed=seed, ci=ci, order=[p.name for p in perts])
    by_prefix = summarize_by_prefix(rows, n_boot=n_boot, seed=seed, ci=ci, order=[p.name for p in perts])

    # inter-instance similarity of clean latents
    per_chunk = []
    for c in range(len(chunks)):
        t = cache.get(c)
        if t is None:
            clean_features(c)
            t = cache.get(c)
        per_chunk.append(t)
    across, mats, selection = _across_frame(per_chunk, inputs.example_ids, across_layers, n_boot=n_boot, seed=seed)
    config["kept"] = kept_counts(status, [p.name for p in perts], n)
    config["across_kept"] = selection.to_dict()
    config["prefix_changed"] = prefix_counts(rows)
    return XZResult(rows=rows, summary=summary, dropped=dropped, config=config, across=across,
                    across_matrices=mats, status=status, by_prefix=by_prefix)


def _across_tensors(trace: LatentTrace, across_layers: list[int]) -> dict[str, Tensor]:
    return {e.example_id: e.hidden[:, across_layers].float().contiguous() for e in trace if e.num_latents > 0}


def _across_frame(per_chunk: list[dict[str, Tensor]], example_ids: Sequence[str], across_layers: list[int], *,
                  n_boot: int, seed: int) -> tuple[pd.DataFrame, dict[int, np.ndarray], LatentSelection]:
    from latentprobe.geometry import across_instances

    T, A = S.XZ_ACROSS, S.ACROSS_SUMMARY
    merged: dict[str, Tensor] = {}
    for t in per_chunk:
        merged.update(t)
    selection = LatentSelection.of([merged[e].shape[0] if e in merged else 0 for e in example_ids])
    keep = [example_ids[i] for i in selection.indices]
    if len(keep) < 2:
        return T.empty(), {}, selection
    lat = torch.stack([merged[e] for e in keep])  # [n, K, A, d]
    recs, mats = [], {}
    for a, l in enumerate(across_layers):
        for center in (False, True):
            res = across_instances(lat[:, :, a], center=center, n_boot=n_boot, seed=seed)
            if not center and res.matrices is not None:
                mats[l] = res.matrices
            for _, r in res.summary.iterrows():
                recs.append({T.LAYER: l, T.CENTER: center, T.STEP: r[A.STEP], T.MEAN_OFFDIAG: r[A.MEAN_OFFDIAG],
                             T.CI_LOW: r[A.CI_LOW], T.CI_HIGH: r[A.CI_HIGH], T.N: r[A.N]})
    return T.frame(recs), mats, selection


def summarize_x_to_z(rows: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0, ci: float = 0.95,
                     order: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean cosine and relative L2 with studentised bootstrap intervals over examples, per
    perturbation x source x step x layer (long format: one row per metric).

    Within a perturbation every cell is resampled with the same example indices (those of
    :func:`latentprobe.stats.bootstrap_ci` with ``seed``); values that are NaN (a zero-norm
    vector) are left out of their cell, which then has a smaller ``n``.

    Parameters
    ----------
    rows : pd.DataFrame
        X -> Z rows.
    order : Sequence[str] | None
        Perturbations in the order shown (default: as they come).
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
    R, T = S.XZ_ROWS, S.XZ_SUMMARY
    if rows.empty:
        return T.empty()
    src_rank = {s: i for i, s in enumerate((SOURCES[0],) + BASELINE_SOURCES)}
    perts = list(order) if order is not None else list(dict.fromkeys(rows[R.PERTURBATION]))
    perts += [p for p in dict.fromkeys(rows[R.PERTURBATION]) if p not in perts]
    cell = [R.SOURCE, R.STEP, R.LAYER]
    out = []
    for p in perts:
        dp = rows[rows[R.PERTURBATION] == p]
        if dp.empty:
            continue
        ex_order = list(dict.fromkeys(dp[R.EXAMPLE_ID]))
        keys = sorted(dp[cell].drop_duplicates().itertuples(index=False, name=None),
                      key=lambda t: (src_rank.get(t[0], 99), t[0], t[1], t[2]))
        for metric in XZ_METRICS:
            wide = dp.pivot_table(index=R.EXAMPLE_ID, columns=cell, values=metric, aggfunc="first", dropna=False,
                                  sort=False)
            wide = wide.reindex(index=ex_order, columns=pd.MultiIndex.from_tuples(keys, names=cell))
            v = wide.to_numpy(dtype=np.float64)
            full = ~np.isnan(v).any(axis=0)
            est = np.full(len(keys), np.nan)
            lo = np.full(len(keys), np.nan)
            hi = np.full(len(keys), np.nan)
            nn = np.full(len(keys), v.shape[0])
            if full.any():
                e_, l_, h_ = _stats.bootstrap_mean_columns(v[:, full], n_boot=n_boot, seed=seed, confidence=ci,
                                                             method="studentized")
                est[full], lo[full], hi[full] = e_, l_, h_
            for j in np.flatnonzero(~full):
                x = v[:, j][~np.isnan(v[:, j])]
                nn[j] = x.size
                if x.size:
                    eff = _stats.bootstrap_ci(x, n_boot=n_boot, seed=seed, confidence=ci, method="studentized")
                    est[j], lo[j], hi[j] = eff.estimate, eff.ci_low, eff.ci_high
            for j, (src, step, layer) in enumerate(keys):
                out.append({T.PERTURBATION: p, T.SOURCE: src, T.STEP: int(step), T.LAYER: int(layer), T.METRIC: metric,
                            T.ESTIMATE: est[j], T.CI_LOW: lo[j], T.CI_HIGH: hi[j], T.N: int(nn[j]),
                            T.NOTE: _stats.small_sample_note(int(nn[j]))})
    frame = T.frame(out)
    # one metric after the other within each cell
    order_by = pd.DataFrame({"p": frame[T.PERTURBATION].map({p: i for i, p in enumerate(perts)}),
                             "s": frame[T.SOURCE].map(lambda s: src_rank.get(s, 99)), "step": frame[T.STEP],
                             "layer": frame[T.LAYER], "m": frame[T.METRIC].map({m: i for i, m in enumerate(XZ_METRICS)})})
    frame = frame.loc[order_by.sort_values(["p", "s", "step", "layer", "m"], kind="stable").index]
    return frame.reset_index(drop=True)


def prefix_counts(rows: pd.DataFrame) -> dict[str, dict[str, int]]:
    """``{perturbation: {"n_kept": ..., "n_prefix_changed": ...}}``: the kept examples of each perturbation
    and how many of them generated other text before the open marker than the clean run.

    Parameters
    ----------
    rows : pd.DataFrame
        X -> Z rows (:class:`~latentprobe.schema.XZ_ROWS`).

    Returns
    -------
    dict[str, dict[str, int]]
    """
    R = S.XZ_ROWS
    if rows.empty or R.PREFIX_CHANGED not in rows.columns:
        return {}
    per = rows.groupby([R.PERTURBATION, R.EXAMPLE_ID], sort=False)[R.PREFIX_CHANGED].first().reset_index()
    return {str(p): {"n_kept": int(len(g)), "n_prefix_changed": int(g[R.PREFIX_CHANGED].sum())}
            for p, g in per.groupby(R.PERTURBATION, sort=False)}


def summarize_by_prefix(rows: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0, ci: float = 0.95,
                        order: Sequence[str] | None = None) -> pd.DataFrame:
    """:func:`summarize_x_to_z` of the latent rows, computed separately for the examples whose pre-latent
    text changed under the perturbation (``prefix_changed`` True) and for the others.

    When the perturbation changes what the model writes before the open marker, its latents follow
    another prefix, and their change mixes the input's effect with the prefix's: read the
    ``prefix_changed = False`` rows for latents compared after the same text. A group without
    examples has no rows.

    Parameters
    ----------
    rows : pd.DataFrame
        X -> Z rows.
    n_boot, seed, ci, order
        As in :func:`summarize_x_to_z`.

    Returns
    -------
    pandas.DataFrame
        :class:`~latentprobe.schema.XZ_BY_PREFIX`.
    """
    R, T = S.XZ_ROWS, S.XZ_BY_PREFIX
    if rows.empty or R.PREFIX_CHANGED not in rows.columns:
        return T.empty()
    lat = rows[rows[R.SOURCE] == SOURCES[0]]
    parts = []
    for changed in (False, True):
        g = lat[lat[R.PREFIX_CHANGED] == changed]
        if len(g):
            s = summarize_x_to_z(g, n_boot=n_boot, seed=seed, ci=ci, order=order)
            s.insert(1, T.PREFIX_CHANGED, changed)
            parts.append(s)
    if not parts:
        return T.empty()
    perts = list(order or []) + [p for p in dict.fromkeys(lat[R.PERTURBATION]) if p not in (order or [])]
    out = pd.concat(parts, ignore_index=True)
    rank = out[T.PERTURBATION].map({p: i for i, p in enumerate(perts)})
    out = out.loc[pd.DataFrame({"p": rank, "c": out[T.PREFIX_CHANGED]}).sort_values(["p", "c"], kind="stable").index]
    return T.frame(out.reset_index(drop=True))
