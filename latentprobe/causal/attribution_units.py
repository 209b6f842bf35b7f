"""The work of :func:`~latentprobe.causal.attribution_patching` in units, each stored as it finishes.

Two phases. **The map**: one unit per ``batch_size`` examples (their clean and counterfactual runs, then the
map of their cells). **The check**: the ``verify_top`` cells of largest ``|estimate|`` over the whole map, in
units of ``batch_size`` examples (one patched forward per cell). With ``out_dir`` every unit's rows are
written to a resumable store as soon as it finishes (:mod:`latentprobe.sweep`), so a stopped run resumes at
the next unit, a changed configuration is refused, and a study run by several workers deals the units out
(:mod:`latentprobe.sweep.sharded`). A check unit whose examples' runs are not in memory (a resumed run, or
another worker's map unit) generates them again with the map unit that holds them: the same batch, so the
same runs.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np
import pandas as pd

from latentprobe import schema as S
from latentprobe.causal.common import _chunks, _open, _run
from latentprobe.fingerprint import callable_fingerprint, inputs_fingerprint, perturbation_fingerprint, runner_fingerprint
from latentprobe.perturbations import InputSet, Perturbation

if TYPE_CHECKING:  # pragma: no cover
    from latentprobe.engine.runner import LatentRunner

__all__: list[str] = []


def run_units(runner: LatentRunner, inputs: InputSet, p: Perturbation, *, layers: list[int], groups: set[str],
              metric: Callable[..., Any], default_metric: bool, verify_top: int | str,
              answers: Mapping[str, tuple[int, int]] | None, batch_size: int, kw: dict[str, Any], out_dir: Any,
              overwrite: bool, progress: bool, work: tuple[Callable[..., Any], ...]
              ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float], int]:
    """The map and its check (see the module docs): the table, the examples left out, the seconds of each
    phase, and the number of pairs mapped.

    Parameters
    ----------
    runner, inputs
        The model and the clean inputs.
    p : Perturbation
        The perturbation, bound to the whole ``inputs``.
    layers, groups, metric, default_metric, verify_top, answers, batch_size
        As :func:`~latentprobe.causal.attribution_patching` resolved them (``default_metric``: the metric is
        the default one, so examples whose runs start their answers alike are left out).
    kw : dict
        Settings of the two runs (``max_new_tokens``, ``batch_size``, ``seed``, ``logits_processor``).
    out_dir : path or None
        Where the stores live (``None``: in memory).
    overwrite, progress : bool
        Discard stored units; show progress bars.
    work : tuple of callables
        ``(pairs, map, exact)``: :mod:`latentprobe.causal.attribution`'s pairing of the two runs, map of a batch
        of pairs and exact check of cells.

    Returns
    -------
    tuple of (pandas.DataFrame, pandas.DataFrame, dict, int)
    """
    _pairs, _map, _exact = work
    A = S.ATTRIBUTION
    chunks = _chunks(len(inputs), batch_size)
    cfg = {"analysis": "attribution", "inputs": inputs_fingerprint(inputs), "runner": runner_fingerprint(runner),
           "perturbation": perturbation_fingerprint(p), "layers": layers, "positions": sorted(groups),
           "metric": "default" if default_metric else callable_fingerprint(metric, what="metric"),
           "answers": None if answers is None else {str(k): [int(a), int(b)] for k, (a, b) in sorted(answers.items())},
           "batch_size": int(batch_size), "max_new_tokens": int(kw["max_new_tokens"]), "seed": int(kw["seed"]),
           "logits_processor": callable_fingerprint(kw["logits_processor"], what="logits processor")}
    rows_store = _open(out_dir, "attribution", cfg, (), overwrite)
    status_store = _open(out_dir, "attribution_status", cfg, (), overwrite)
    pairs: dict[str, tuple[Any, Any]] = {}

    def runs(c: int) -> tuple[list, list]:
        clean = _run(runner, inputs.select(chunks[c]), **kw)
        cf = _run(runner, p.apply(inputs, chunks[c]), **kw)
        kept, dropped = _pairs(clean, cf, default_metric, p.name, answers)
        pairs.update({e.example_id: (e, o) for e, o in kept})
        return kept, dropped

    def map_unit(c: int) -> pd.DataFrame:
        kept, dropped = runs(c)
        t0 = time.perf_counter()
        table = _map(runner, kept, layers, groups, metric, batch_size, answers)
        seconds = time.perf_counter() - t0
        # status before rows: a unit is complete exactly when its rows are stored
        status = S.STATUS.frame(dropped).assign(unit=c, seconds=seconds, n_pairs=len(kept))
        if not len(status):  # one row still records the unit's seconds and pairs
            status = pd.DataFrame([{"unit": c, "seconds": seconds, "n_pairs": len(kept)}])
        if not status_store.done(c):
            status_store.write(c, status)
        return table

    rows_store.run(list(range(len(chunks))), map_unit, desc="attribution map", progress=progress)
    order = {e: i for i, e in enumerate(inputs.example_ids)}
    table = A.frame(_in_order(rows_store.results(), order))
    status = status_store.results()
    per_unit = status.drop_duplicates("unit")
    map_s, n_pairs = float(per_unit["seconds"].sum()), int(per_unit["n_pairs"].sum())
    left_out = status.dropna(subset=[S.STATUS.EXAMPLE_ID]) if S.STATUS.EXAMPLE_ID in status else status.iloc[:0]
    dropped = S.STATUS.frame(_in_order(left_out, order)[[str(c) for c in S.STATUS.COLUMNS]] if len(left_out) else [])

    k = len(table) if verify_top == "all" else min(int(verify_top), len(table))
    verify_s = 0.0
    if k:
        top = table[A.ATTRIBUTION].abs().sort_values(ascending=False, kind="stable").index[:k]
        cells = table.loc[top]
        ids = [e for e in inputs.example_ids if e in set(cells[A.EXAMPLE_ID])]
        vchunks = [ids[i:i + batch_size] for i in range(0, len(ids), batch_size)]
        keys = json.dumps(sorted(map(list, cells[[A.EXAMPLE_ID, A.LAYER, A.POSITION]].astype(str).itertuples(index=False,
                                                                                                            name=None))))
        v_store = _open(out_dir, "attribution_verify", {**cfg, "verify_top": verify_top,
                                                        "cells": hashlib.sha1(keys.encode()).hexdigest()}, (), overwrite)
        unit_of = {inputs.example_ids[i]: c for c, ch in enumerate(chunks) for i in ch}

        def verify_unit(j: int) -> pd.DataFrame:
            for c in sorted({unit_of[i] for i in vchunks[j] if i not in pairs}):
                runs(c)  # the map unit's own batch again: the same runs
            sub = cells[cells[A.EXAMPLE_ID].isin(vchunks[j])]
            t0 = time.perf_counter()
            eff = _exact(runner, {i: pairs[i] for i in vchunks[j]}, sub, metric, batch_size, answers)
            return pd.DataFrame({A.EXAMPLE_ID: sub[A.EXAMPLE_ID].to_numpy(), A.LAYER: sub[A.LAYER].to_numpy(),
                                 A.POSITION: sub[A.POSITION].to_numpy(), A.EFFECT: eff, "unit": j,
                                 "seconds": time.perf_counter() - t0})

        v_store.run(list(range(len(vchunks))), verify_unit, desc="attribution check", progress=progress)
        checked = v_store.results()
        verify_s = float(checked.drop_duplicates("unit")["seconds"].sum())
        key = [A.EXAMPLE_ID, A.LAYER, A.POSITION]
        eff = checked.set_index(key)[A.EFFECT]
        idx = pd.MultiIndex.from_frame(table.loc[top, key])
        table.loc[top, A.EFFECT] = eff.reindex(idx).to_numpy(dtype=float)
        table.loc[top, A.VERIFIED] = True
    return table, dropped, {"map_s": map_s, "verify_s": verify_s}, n_pairs


def _in_order(frame: pd.DataFrame, order: Mapping[str, int]) -> pd.DataFrame:
    """Rows in the inputs' example order (stable within an example), whatever order the units finished in."""
    if not len(frame) or S.ATTRIBUTION.EXAMPLE_ID not in frame:
        return frame.reset_index(drop=True)
    pos = frame[S.ATTRIBUTION.EXAMPLE_ID].map(order).to_numpy()
    return frame.iloc[np.argsort(pos, kind="stable")].reset_index(drop=True)
