"""Probes at several position groups and the decodability gap: is the target decodable in the latents, and
is it decodable downstream (the close marker, the first answer token, the last prompt token, the image)?

Information can be decodable in the latents and never used, or used by the answer without being decodable
in the latents (the answer reads the image directly). :func:`probe_positions` probes every position group
with the same folds, controls and target, and tabulates the gap between a reference group (the latents)
and each other group on the same held-out examples, with a paired group-bootstrap interval.

The features come from :func:`latentprobe.readouts.position_features` (a runner and a trace), or from
anywhere else as arrays; this module never runs a model.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from jaxtyping import Float, Shaped

from latentprobe.display import SummarizedResult
from latentprobe.errors import ProbeError
from latentprobe.probing._checks import (Task, _check_groups, _check_n_splits, _check_task, _check_types, _check_X,
                                         _check_y, _to_numpy)
from latentprobe.probing._selectivity import selectivity_interval
from latentprobe.probing.controls import _plan
from latentprobe.probing.cv import _run_folds
from latentprobe.probing.estimator import LinearProbe
from latentprobe.probing.sweep import _run_cells
from latentprobe.schema_probing import PROBE_GAP, PROBE_POSITIONS
from latentprobe.stats.multiplicity import add_adjusted_columns

__all__ = ["PositionProbeResult", "probe_positions"]


@dataclass(frozen=True, eq=False, repr=False)
class PositionProbeResult(SummarizedResult):
    """Probe scores at several position groups and the decodability gap.

    Attributes
    ----------
    scores : pandas.DataFrame
        :class:`~latentprobe.schema_probing.PROBE_POSITIONS`: one row per (group, layer, step) cell with the
        columns of a probe sweep (controls, selectivity, adjusted p-values over all cells).
    gap : pandas.DataFrame
        :class:`~latentprobe.schema_probing.PROBE_GAP`: per layer and group, ``reference_score - score`` of
        the steps mean-pooled, with its paired group-bootstrap interval.

    Notes
    -----
    A positive gap says the latents hold more linearly decodable information about the target than the
    position downstream, not that the model ignores it there (a probe is not use: intervene to test use);
    a negative gap says the downstream position decodes the target better, e.g. because it reads the
    input directly.
    """

    scores: pd.DataFrame
    gap: pd.DataFrame

    def best(self, group: str, by: str = "score") -> pd.Series:
        """The best cell of one position group.

        Parameters
        ----------
        group : str
            The position group.
        by : str
            The column to maximise.

        Returns
        -------
        pandas.Series
        """
        sub = self.scores[self.scores[PROBE_POSITIONS.POSITION_GROUP] == group]
        if sub.empty:
            raise ProbeError(f"no cell of position group {group!r}; groups are "
                             f"{sorted(set(self.scores[PROBE_POSITIONS.POSITION_GROUP]))}.")
        return sub.loc[sub[by].idxmax()]

    def pivot(self, values: str = "score", step: str = "max") -> pd.DataFrame:
        """Layer x position-group table of ``values`` (the best step of each group with ``step="max"``,
        their mean with ``"mean"``).

        Parameters
        ----------
        values : str
            The column shown.
        step : {"max", "mean"}
            How a group's steps are combined.

        Returns
        -------
        pandas.DataFrame
        """
        if step not in ("max", "mean"):
            raise ProbeError(f"pivot(step={step!r}): use 'max' or 'mean'.")
        T = PROBE_POSITIONS
        if self.scores[T.TARGET].nunique() > 1:
            raise ProbeError("scores hold several targets; filter to one target before pivoting.")
        return self.scores.pivot_table(index=T.LAYER, columns=T.POSITION_GROUP, values=values, aggfunc=step, sort=False)


def _as_cells(name: str, arr: Any, layers: list[int] | None) -> tuple[np.ndarray, list[tuple[int, int, np.ndarray]]]:
    """``[n, L, k, d]`` of one group and its (layer, step, [n, d]) cells."""
    a = _to_numpy(arr)
    if a.ndim == 3:
        a = a[:, :, None, :]
    if a.ndim != 4:
        raise ProbeError(f"features[{name!r}] has shape {a.shape}; give [n, layers, d] or [n, layers, steps, d].")
    idx = list(range(a.shape[1])) if layers is None else list(layers)
    bad = [i for i in idx if not 0 <= i < a.shape[1]]
    if bad:
        raise ProbeError(f"features[{name!r}]: layers {bad} out of range (it holds {a.shape[1]}).")
    return a, [(li, si, a[:, li, si, :]) for li in idx for si in range(a.shape[2])]


def probe_positions(
    features: Mapping[str, Float[np.ndarray, "n L *k d"]],
    y: Shaped[np.ndarray, "n *t"],
    groups: Shaped[np.ndarray, " n"] | None,
    *,
    reference: str = "latents",
    layer_names: Collection[int] | None = None,
    layers: Collection[int] | None = None,
    task: Task = "classification",
    target_name: str = "target",
    controls: bool = True,
    n_splits: int = 5,
    seed: int = 0,
    control_types: Shaped[np.ndarray, " n"] | str | None = None,
    control_labels: str = "within_type",
    probe: LinearProbe | None = None,
    progress: bool = False,
    n_jobs: int | None = None,
    n_perm: int | None = None,
) -> PositionProbeResult:
    """Probe the same target at several position groups, and the gap between a reference group and the rest.

    Parameters
    ----------
    features : dict str -> array [n, L, d] or [n, L, k, d]
        Per position group (``"latents"``, ``"close"``, ``"image"``, ...) the residuals of the same ``n``
        examples at the same ``L`` layers (``k`` steps for groups with several positions, e.g. the latents).
    y, groups, task, target_name, n_splits, seed, control_types, control_labels, probe, progress, n_jobs, n_perm
        As in :func:`~latentprobe.probing.probe_sweep` (``control_types="shuffled"``: the shuffled-target
        control). Every group uses the same folds and control labels; all cells form one family.
    reference : str
        The group the gap is taken against (default ``"latents"``); must be a key of ``features``.
    layer_names : collection of int, optional
        The residual layer each of the ``L`` feature layers is (default ``0..L-1``), written in ``layer``.
    layers : collection of int, optional
        Indices into the ``L`` feature layers to probe (default all).
    controls : bool
        Run the shuffle control and the control task on every cell.

    Returns
    -------
    PositionProbeResult

    Raises
    ------
    ProbeError
        Groups with different numbers of examples or layers, an unknown reference, or bad targets.

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe.probing import LinearProbe, probe_positions
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(40), 2)
    >>> y = groups % 2
    >>> lat = rng.normal(size=(80, 2, 3, 4))          # examples x layers x steps x width: no y
    >>> close = rng.normal(size=(80, 2, 4))            # one position
    >>> close[:, 1, 0] += 3.0 * y                      # y at layer 1 only
    >>> res = probe_positions({"latents": lat, "close": close}, y, groups, n_splits=4, controls=False,
    ...                       probe=LinearProbe(Cs=(1.0,)), n_perm=0)
    >>> res.scores.shape[0]                             # 2 layers x (3 latent steps + 1 close position)
    8
    >>> gap = res.gap.set_index("layer")
    >>> bool(gap.loc[1, "gap"] < -0.3), bool(abs(gap.loc[0, "gap"]) < 0.3)
    (True, True)
    """
    _check_task(task)
    if not isinstance(features, Mapping) or not features:
        raise ProbeError("features must be a non-empty dict: position group -> array [n, L, d] or [n, L, k, d].")
    if reference not in features:
        raise ProbeError(f"reference={reference!r} is not among the position groups {list(features)}.")
    cells: dict[str, list[tuple[int, int, np.ndarray]]] = {}
    pooled: dict[str, np.ndarray] = {}
    shapes = {}
    for name, arr in features.items():
        a, cells[name] = _as_cells(name, arr, None if layers is None else [int(i) for i in layers])
        pooled[name] = a.mean(axis=2)
        shapes[name] = (a.shape[0], a.shape[1])
    if len(set(shapes.values())) != 1:
        raise ProbeError(f"position groups differ in (examples, layers): {shapes}; give every group the same "
                         "examples and layers.")
    n, n_layers = next(iter(shapes.values()))
    names = list(range(n_layers)) if layer_names is None else [int(v) for v in layer_names]
    if len(names) != n_layers:
        raise ProbeError(f"layer_names has {len(names)} entries for {n_layers} feature layers.")
    y = _check_y(y, n, task)
    g = _check_groups(groups, n)
    _check_n_splits(n_splits, len(np.unique(g)))
    types = _check_types(control_types, n)
    plan = _plan(y, g, types, task=task, n_splits=n_splits, seed=seed, controls=controls,
                 control_labels=control_labels, label=f"probe_positions({target_name!r})")
    jobs, keys = [], []
    for name, cs in cells.items():
        for li, si, X in cs:
            jobs.append((_check_X(X, name=f"features[{name!r}] layer {li} step {si}"), controls,
                         f"group={name!r}, layer={names[li]}, step={si}"))
            keys.append((name, names[li], si))
    values = _run_cells(jobs, plan, probe, n_jobs, progress, f"probing {target_name} by position", n_perm, seed)
    T = PROBE_POSITIONS
    rows = [{T.POSITION_GROUP: gname, T.TARGET: target_name, T.LAYER: layer, T.STEP: step, **v}
            for (gname, layer, step), v in zip(keys, values)]
    scores = T.frame(add_adjusted_columns(pd.DataFrame.from_records(rows)))
    return PositionProbeResult(scores=scores, gap=_gap(pooled, reference, plan, probe, names, layers, target_name))


def _gap(pooled: dict[str, np.ndarray], reference: str, plan: Any, probe: LinearProbe | None, names: list[int],
         layers: Collection[int] | None, target_name: str) -> pd.DataFrame:
    """The gap table: every group's mean-pooled steps against the reference's, on the plan's folds."""
    T = PROBE_GAP
    y, g, task, splits = plan.y, plan.g, plan.task, plan.splits
    idx = range(len(names)) if layers is None else [int(i) for i in layers]
    rows = []
    for li in idx:
        preds: dict[str, list[np.ndarray]] = {}
        fitted = {}
        for name, a in pooled.items():
            preds[name] = []
            fitted[name] = _run_folds(_check_X(a[:, li], name=f"features[{name!r}]"), y, y, g, splits, task, probe,
                                      held_out=preds[name])
        ref = fitted[reference]
        for name in pooled:
            if name == reference:
                continue
            lo, hi = selectivity_interval(task, y, y, g, splits, preds[reference], preds[name], seed=plan.seed)
            rows.append({T.TARGET: target_name, T.LAYER: names[li], T.REFERENCE: reference, T.POSITION_GROUP: name,
                         T.TASK: task, T.REFERENCE_SCORE: ref.score, T.SCORE: fitted[name].score,
                         T.GAP: ref.score - fitted[name].score, T.GAP_LOW: lo, T.GAP_HIGH: hi, T.N: ref.n,
                         T.N_GROUPS: ref.n_groups, T.CHANCE: plan.chance})
    return T.frame(rows)
