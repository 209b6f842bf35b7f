"""What a run costs to decode: per-example token counts and wall-clock time, and their means per model.

:func:`decode_costs` reads a :class:`~latentprobe.trace.LatentTrace`: the token counts from its ids and
segments, the time from ``meta["decode_seconds"]``, which :meth:`~latentprobe.engine.LatentRunner.run`
records (:mod:`latentprobe.engine.costs`: the batch's wall-clock time divided by its size).
:func:`cost_summary` gives the mean of each cost per model with a 95% bootstrap interval over examples.
Times depend on the machine, the batch size, the dtype and the attention kernel: compare models from one
machine and one setting only. A latent step costs one forward position, as a text token does; the
count says nothing about what the step computes.

Examples
--------
>>> from latentprobe import toy
>>> from latentprobe.efficiency import cost_summary, decode_costs
>>> tm = toy.load("mediated")
>>> ex = tm.examples("test", 4)
>>> trace = tm.runner().run(tm.prompts(ex), tm.images(ex), max_new_tokens=16, progress=False, batch_size=2)
>>> costs = decode_costs(trace)
>>> costs.latent_steps.tolist(), bool((costs.decode_seconds > 0).all()), costs.batch_size.tolist()
([4, 4, 4, 4], True, [2, 2, 2, 2])
>>> summary = cost_summary(costs, n_boot=200)
>>> float(summary.set_index("metric").loc["latent_steps", "mean"])
4.0
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from latentprobe.errors import InputError
from latentprobe.schema_efficiency import COST_METRICS, DECODE_COST_SUMMARY, DECODE_COSTS
from latentprobe.trace import LatentTrace, Segment

__all__ = ["decode_costs", "cost_summary"]


def decode_costs(trace: LatentTrace, *, model: str | None = None) -> pd.DataFrame:
    """Per example: prompt, generated, latent, text and answer token counts, and the decode time.

    Parameters
    ----------
    trace : LatentTrace
        A run (:meth:`~latentprobe.engine.LatentRunner.run`); a trace without recorded times (saved by an
        older version, or built by hand) gets NaN seconds.
    model : str, optional
        The ``model`` column (default: the spec's name).

    Returns
    -------
    pandas.DataFrame
        A :class:`~latentprobe.schema_efficiency.DECODE_COSTS` frame in the trace's order.

    Raises
    ------
    InputError
        Not a LatentTrace.
    """
    if not isinstance(trace, LatentTrace):
        raise InputError(f"decode_costs() takes a LatentTrace (runner.run(...)), got {type(trace).__name__}.")
    name = model if model is not None else str(trace.spec.name)
    rows = []
    for e in trace:
        generated = max(e.seq_len - e.prompt_len, 0)
        gen_segments = e.segments[e.prompt_len:]
        generated -= int((gen_segments == Segment.PAD).sum())
        seconds = e.meta.get("decode_seconds")
        rows.append({"example_id": e.example_id, "model": name, "prompt_tokens": e.prompt_len,
                     "generated_tokens": generated, "latent_steps": e.num_latents,
                     "text_tokens": generated - e.num_latents, "answer_tokens": int(e.answer_ids.numel()),
                     "decode_seconds": math.nan if seconds is None else float(seconds),
                     "batch_size": int(e.meta.get("batch_size", 0))})
    return DECODE_COSTS.frame(rows)


def cost_summary(costs: pd.DataFrame | Iterable[pd.DataFrame], *, n_boot: int = 1000, seed: int = 0,
                 metrics: Iterable[str] = COST_METRICS) -> pd.DataFrame:
    """Mean of each cost per model, with a 95% studentised bootstrap interval over examples.

    Parameters
    ----------
    costs : DataFrame or iterable of DataFrames
        :func:`decode_costs` tables (several models: concatenate them, or pass them all).
    n_boot : int
        Bootstrap resamples (0: no interval, NaN bounds).
    seed : int
        Seed of the resamples.
    metrics : iterable of str
        Which columns to summarise (default: all of
        :data:`~latentprobe.schema_efficiency.COST_METRICS`).

    Returns
    -------
    pandas.DataFrame
        A :class:`~latentprobe.schema_efficiency.DECODE_COST_SUMMARY` frame: models in order of appearance,
        metrics in the order given; examples with NaN seconds are left out of ``decode_seconds`` (``n`` says
        how many remain).

    Raises
    ------
    InputError
        A table without the :class:`~latentprobe.schema_efficiency.DECODE_COSTS` columns, or an unknown metric.
    """
    from latentprobe.stats import bootstrap_mean_columns

    table = costs if isinstance(costs, pd.DataFrame) else pd.concat(list(costs), ignore_index=True)
    metrics = list(metrics)
    bad = [m for m in metrics if m not in COST_METRICS]
    missing = [c for c in DECODE_COSTS.COLUMNS if c not in table.columns]
    if bad or missing:
        raise InputError(f"cost_summary(): {'unknown metric(s) ' + str(bad) if bad else ''}"
                         f"{'; ' if bad and missing else ''}{'missing column(s) ' + str(missing) if missing else ''}; "
                         f"pass decode_costs(trace) tables and metrics from {list(COST_METRICS)}.")
    rows = []
    for model in pd.unique(table["model"]):
        sub = table[table["model"] == model]
        for metric in metrics:
            v = sub[metric].to_numpy(dtype=np.float64)
            v = v[~np.isnan(v)]
            lo = hi = math.nan
            method = "none"
            if len(v) >= 2 and n_boot > 0:
                _, l_, h_ = bootstrap_mean_columns(v[:, None], n_boot=n_boot, seed=seed, method="studentized")
                lo, hi, method = float(l_[0]), float(h_[0]), "studentized bootstrap"
            rows.append({"model": str(model), "metric": metric, "mean": float(v.mean()) if len(v) else math.nan,
                         "ci_low": lo, "ci_high": hi, "n": len(v), "method": method})
    return DECODE_COST_SUMMARY.frame(rows)
