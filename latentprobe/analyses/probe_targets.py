"""What the ``probes`` analysis probes beyond a categorical field: numeric targets, the gold answer and the
intermediate results of a gold chain (``targets``, ``task``, ``bins``), and position groups downstream of the
latents with the decodability gap (``positions``).

Study-file target names: an example field (its metadata or attributes); ``"gold"`` (the gold answer);
``"intermediate:<i>"`` (the result of step ``i`` of the example's gold chain, ``attributes["cot"]`` or
``attributes["steps"]``, written ``<<a*b=c>>`` as in GSM8k-Aug; ``-1`` is the last step).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from latentprobe.errors import StudyError
from latentprobe.perturbations import InputSet

__all__ = ["TASKS", "target_labels", "positions_tables"]

#: The ``task`` of a study's probes: labels, numbers (ridge, R^2), numbers in quantile bins (logistic, accuracy).
TASKS = ("classification", "regression", "binned")


def _raw(inputs: InputSet, name: str, where: str, field_values: Any) -> list[Any]:
    from latentprobe.probing import parse_intermediates

    if name == "gold":
        if inputs.gold is None:
            raise StudyError(f"{where}target 'gold': these examples have no gold answers.")
        return list(inputs.gold)
    if name.startswith("intermediate:"):
        try:
            step = int(name.split(":", 1)[1])
        except ValueError:
            raise StudyError(f"{where}target {name!r}: write 'intermediate:<step>' with an integer step (0 = the first, "
                             "-1 = the last).") from None
        out = []
        for m in inputs.meta:
            attrs = dict(m.get("attributes") or {})
            chain = attrs.get("cot", attrs.get("steps", m.get("cot", m.get("steps"))))
            vals = parse_intermediates(chain) if chain is not None else ()
            out.append(vals[step] if -len(vals) <= step < len(vals) else None)
        if all(v is None for v in out):
            raise StudyError(f"{where}target {name!r}: no example has a gold chain with that step (a 'cot' or 'steps' "
                             "attribute written '<<a*b=c>>', as GSM8k-Aug's loader gives).")
        return out
    return [None if v == "none" else v for v in field_values(inputs, name, where=where)]


def target_labels(inputs: InputSet, name: str, task: str, *, fields: Any, bins: int = 4, where: str = ""
                  ) -> tuple[np.ndarray, np.ndarray, str]:
    """The probe target of every example under a study's ``task``.

    Parameters
    ----------
    inputs : InputSet
        The examples.
    name : str
        A field, ``"gold"`` or ``"intermediate:<i>"``.
    task : str
        One of :data:`TASKS`.
    fields : callable
        ``(inputs, name, where=) -> values`` of an example field
        (:func:`latentprobe.analyses.readouts.field_values`).
    bins : int
        Quantile bins of ``task="binned"``.
    where : str
        Prefix of error messages.

    Returns
    -------
    tuple
        ``(y, present, probe_task)``: the targets (labels as strings, numbers as floats, bins as ints), which
        examples have one, and the probe's task (``"classification"`` or ``"regression"``).
    """
    from latentprobe.errors import ProbeError
    from latentprobe.probing import bin_values, numeric_values

    raw = _raw(inputs, name, where, fields)
    if task == "classification":
        y = np.array(["none" if v is None else str(v) for v in raw])
        return y, y != "none", "classification"
    try:
        vals = numeric_values(raw, name=name)
        if task == "regression":
            return vals, ~np.isnan(vals), "regression"
        labels = bin_values(vals, n_bins=bins)
    except ProbeError as err:
        raise StudyError(f"{where}target {name!r} with task={task!r}: {err}") from None
    return labels, labels >= 0, "classification"


def positions_tables(analysis: Any, ctx: Any, options: Any, groups_all: np.ndarray, n_perm: int, *, fields: Any,
                     types_of: Any) -> tuple[list[pd.DataFrame], list[pd.DataFrame], list[dict[str, str]]]:
    """``probe_positions`` over every target of a study's probes: the score frames, gap frames and skipped rows.

    Parameters
    ----------
    analysis : Probes
        The analysis (its key, for messages).
    ctx : Context
        The study's context (runner, trace, inputs).
    options : ProbesOptions
        Its options (``positions``, ``targets``, ``task``, ...).
    groups_all : numpy.ndarray
        The CV groups of all examples.
    n_perm : int
        Permutations of each cell's p-value.
    fields, types_of : callable
        :func:`~latentprobe.analyses.readouts.field_values` and :func:`~latentprobe.analyses.readouts.control_types_of`.

    Returns
    -------
    tuple of lists
    """
    from latentprobe.errors import LatentProbeError
    from latentprobe.probing import probe_positions
    from latentprobe.readouts import position_features

    n_res = int(ctx.runner.n_layers) + 1
    layers = list(range(n_res)) if options.layers is None else list(options.layers)
    groups = list(dict.fromkeys(("latents", *options.positions)))
    pf = position_features(ctx.runner, ctx.trace, groups, layers=layers, batch_size=int(options.batch_size or 8))
    feats = dict(pf.features)
    if options.steps is not None:
        k = feats["latents"].shape[2]
        analysis._in_range(ctx, options.steps, k, "steps", "latent steps (the modal latent count)")
        feats["latents"] = feats["latents"][:, :, list(options.steps)]
    kept = np.asarray(pf.kept, dtype=np.int64)
    where = f"{ctx.where}: [analyses.{analysis.key}] key 'targets': "
    scores, gaps, skipped = [], [], []
    seed = int(options.seed or 0)
    for target in options.targets:
        y, present, ptask = target_labels(ctx.inputs, target, options.task, fields=fields, bins=options.bins,
                                          where=where)
        use = present[kept]
        rows = kept[use]
        try:
            if options.task == "classification":
                types: Any = types_of(ctx.inputs, options.control_types, groups_all, rows,
                                              n_splits=options.n_splits, seed=seed,
                                              where=f"{ctx.where}: [analyses.{analysis.key}] key 'control_types': ")
            else:
                types = "shuffled"
            res = probe_positions({g: a[use] for g, a in feats.items()}, y[rows], groups_all[rows], task=ptask,
                                  layer_names=pf.layers, target_name=target, controls=options.controls,
                                  n_splits=options.n_splits, seed=seed, control_types=types,
                                  control_labels=options.control_labels, progress=options.progress, n_perm=n_perm)
            scores.append(res.scores)
            gaps.append(res.gap)
        except LatentProbeError as err:
            skipped.append({"target": target, "reason": " ".join(str(err).split())})
    return scores, gaps, skipped

