"""Probe sweeps: every (layer, latent step) cell, or several named representations, with controls.

Both entry points share the folds, the control-task labels and the control columns, so their
tables can be compared and concatenated.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from jaxtyping import Float, Shaped
from tqdm.auto import tqdm

from latentprobe.display import SummarizedResult
from latentprobe.errors import ProbeError
from latentprobe.probing._checks import (Task, _check_groups, _check_n_splits, _check_task, _check_types, _check_X, _check_y,
                                         _to_numpy)
from latentprobe.probing.controls import _Plan, _plan, _probe_with_controls
from latentprobe.probing.estimator import LinearProbe
from latentprobe.probing.significance import permutations_for
from latentprobe.schema import PROBE_COMPARISON, PROBE_SCORES
from latentprobe.stats.multiplicity import add_adjusted_columns, simultaneous_level

__all__ = ["SCORE_COLUMNS", "ProbeSweepResult", "probe_sweep", "compare_representations"]

#: Columns of :attr:`ProbeSweepResult.scores`, in order (:class:`latentprobe.schema.PROBE_SCORES`).
SCORE_COLUMNS: tuple[str, ...] = tuple(PROBE_SCORES.COLUMNS)


@dataclass(frozen=True, eq=False, repr=False)
class ProbeSweepResult(SummarizedResult):
    """Scores of a probe sweep over layers and latent steps.

    Attributes
    ----------
    scores : pandas.DataFrame
        One row per (target, layer, step) with columns :data:`SCORE_COLUMNS`.
        ``majority`` is the most-frequent-class accuracy (mean training target's
        R^2 for regression), ``shuffle`` the score with permuted training
        labels, ``control`` the control-task score, ``selectivity`` =
        ``score - control`` with its paired group-bootstrap interval
        (``selectivity_ci_low``, ``selectivity_ci_high``), ``control_recur``
        the share of held-out examples whose control type occurs in training
        (0: the control cannot fail) and ``chance`` 1/n_classes (0 for
        regression).  Control columns are NaN for cells the sweep ran without
        controls; the control-task columns also without ``control_types``.

    Notes
    -----
    The best cell is where the target is *most linearly decodable*; that is
    not evidence that the model computes or uses the target there.  Cells are
    one family of tests: read ``p_holm`` / ``p_bh`` and the simultaneous
    interval, not the raw ``p_value`` or ``ci_low`` of the best cell.
    """

    scores: pd.DataFrame

    def best(self, by: str = "score") -> pd.Series:
        """Row with the highest ``by`` (default ``"score"``); ties go to the earliest layer/step.

        Parameters
        ----------
        by : str
            The column to maximise.

        Returns
        -------
        pandas.Series
        """
        if by not in self.scores.columns:
            raise ProbeError(f"unknown column {by!r}; choose one of {list(self.scores.columns)}.")
        col = self.scores[by]
        if col.isna().all():
            raise ProbeError(f"column {by!r} is all NaN (run the sweep with controls=True to fill control columns).")
        return self.scores.loc[col.idxmax()]

    def pivot(self, values: str = "score") -> pd.DataFrame:
        """Layer x step table of ``values`` (default ``"score"``).

        Parameters
        ----------
        values : str
            The column shown.

        Returns
        -------
        pandas.DataFrame
        """
        if values not in self.scores.columns:
            raise ProbeError(f"unknown column {values!r}; choose one of {list(self.scores.columns)}.")
        if self.scores[PROBE_SCORES.TARGET].nunique() > 1:
            raise ProbeError("scores hold several targets; filter to one target before pivoting.")
        return self.scores.pivot(index=PROBE_SCORES.LAYER, columns=PROBE_SCORES.STEP, values=values)


def _cells_from_features(
    features: Any, layers: Iterable[Hashable] | None, steps: Iterable[Hashable] | None
) -> list[tuple[Hashable, Hashable, Any]]:
    if isinstance(features, Mapping):
        if not features:
            raise ProbeError("features dict is empty; map (layer, step) -> array [n, d].")
        for key in features:
            if not (isinstance(key, tuple) and len(key) == 2):
                raise ProbeError(f"features dict keys must be (layer, step) tuples, got {key!r}.")
        layer_set = None if layers is None else set(layers)
        step_set = None if steps is None else set(steps)
        keys = [k for k in features if (layer_set is None or k[0] in layer_set) and (step_set is None or k[1] in step_set)]
        try:
            keys = sorted(keys)
        except TypeError:
            pass
        cells = [(k[0], k[1], features[k]) for k in keys]
    else:
        arr = _to_numpy(features)
        if arr.ndim != 4:
            raise ProbeError(
                f"features must be a 4-D array [n, layers, steps, d] or a dict "
                f"(layer, step) -> [n, d]; got an array of shape {arr.shape}."
            )
        n_layers, n_steps = arr.shape[1], arr.shape[2]
        layer_idx = list(range(n_layers)) if layers is None else [int(i) for i in layers]
        step_idx = list(range(n_steps)) if steps is None else [int(i) for i in steps]
        for name, idx, size in (("layers", layer_idx, n_layers), ("steps", step_idx, n_steps)):
            bad = [i for i in idx if not -size <= i < size]
            if bad:
                raise ProbeError(f"{name} {bad} out of range for features with {size} {name}.")
        cells = [(li, si, arr[:, li, si, :]) for li in layer_idx for si in step_idx]
    if not cells:
        raise ProbeError("no (layer, step) cell left after filtering by layers/steps; check the requested indices.")
    return cells



def _controls_mask(controls: Any, keys: list[Hashable], what: str) -> list[bool]:
    """Which cells run the controls: all (True), none (False) or the listed ones (refused if unknown)."""
    if isinstance(controls, (bool, np.bool_)):
        return [bool(controls)] * len(keys)
    if not isinstance(controls, Collection) or isinstance(controls, (str, bytes)):
        raise ProbeError(
            f"controls must be True, False or a collection of {what}s to run the controls on; got {controls!r}."
        )
    wanted = [tuple(c) if isinstance(c, list) else c for c in controls]
    unknown = [c for c in wanted if c not in keys]
    if unknown:
        raise ProbeError(
            f"controls lists {what}s {unknown[:5]!r} that are not probed; choose among {keys[:10]!r}"
            + (" ..." if len(keys) > 10 else "") + "."
        )
    return [k in wanted for k in keys]


def _cell_job(X: np.ndarray, plan: _Plan, controls: bool, probe: LinearProbe | None, label: str, capture: bool,
              family: tuple[tuple[int, int] | None, float] = (None, 0.95)):
    """One cell's row, its skipped-control messages and (in worker processes) the warnings it raised.

    ``family`` = (permutations of the p-value, level of the simultaneous interval)."""
    kw = {"controls": controls, "probe": probe, "label": label, "permutations": family[0], "simultaneous": family[1]}
    if not capture:
        row, skipped = _probe_with_controls(X, plan, **kw)
        return row, skipped, []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        row, skipped = _probe_with_controls(X, plan, **kw)
    return row, skipped, [(str(w.message), w.category) for w in caught]


def _run_cells(
    jobs: list[tuple[np.ndarray, bool, str]],
    plan: _Plan,
    probe: LinearProbe | None,
    n_jobs: int | None,
    progress: bool,
    desc: str,
    n_perm: int | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Rows of all cells, in order; ``n_jobs`` worker processes (joblib) when it is not None or 1.

    Every cell uses the plan's folds and control labels, so the rows do not depend on ``n_jobs``.
    The cells form one family: their p-values use enough permutations for Holm over ``len(jobs)``
    cells (``n_perm=None``; 0 skips them) and their simultaneous intervals the Bonferroni level.
    """
    parallel = n_jobs not in (None, 1)
    m = len(jobs)
    perms = permutations_for(m) if n_perm is None else int(n_perm)
    family = ((perms, seed) if perms else None, simultaneous_level(0.95, m))
    calls = (delayed(_cell_job)(X, plan, c, probe, label, parallel, family) for X, c, label in jobs)
    if parallel:
        results = Parallel(n_jobs=n_jobs, return_as="generator")(calls)
    else:
        results = (fn(*args, **kw) for fn, args, kw in calls)
    rows = []
    for row, skipped, caught in tqdm(results, total=len(jobs), desc=desc, disable=not progress):
        for message, category in caught:
            warnings.warn(message, category, stacklevel=3)
        for message in skipped:
            warnings.warn(message, RuntimeWarning, stacklevel=3)
        rows.append(row)
    return rows


def probe_sweep(
    features: Float[np.ndarray, "n L K d"] | Mapping[tuple[Hashable, Hashable], Float[np.ndarray, "n d"]],
    y: Shaped[np.ndarray, "n *k"],
    groups: Shaped[np.ndarray, " n"] | None,
    *,
    task: Task = "classification",
    target_name: str = "target",
    layers: Iterable[Hashable] | None = None,
    steps: Iterable[Hashable] | None = None,
    controls: bool | Collection[tuple[Hashable, Hashable]] = True,
    n_splits: int = 5,
    seed: int = 0,
    control_types: Shaped[np.ndarray, " n"] | None = None,
    control_labels: str = "within_type",
    probe: LinearProbe | None = None,
    progress: bool = True,
    n_jobs: int | None = None,
    n_perm: int | None = None,
) -> ProbeSweepResult:
    """Probe every (layer, latent step) cell with nested grouped CV and controls.

    Parameters
    ----------
    features : array [n, L, K, d] or dict (layer, step) -> array [n, d]
        Hidden states: examples x layers x latent steps x width.  For arrays,
        ``layer`` and ``step`` in the result are axis indices.
    y : array of shape (n,) or (n, d')
        Labels, or continuous targets for ``task="regression"`` (e.g.
        mean-pooled vision features; scored by R^2 averaged over outputs).
    groups : array of shape (n,) or None
        Group ids (e.g. image ids); folds never split a group.
    task : {"classification", "regression"}, default="classification"
    target_name : str, default="target"
        Value of the ``target`` column, so sweeps over several targets can be
        concatenated.
    layers, steps : iterable, optional
        Subset of layers / steps to probe (indices for arrays, key values for
        dicts).  Default: all.
    controls : bool or collection of (layer, step), default=True
        Also run the shuffle control and the control task (about 3x the cost
        of a cell): on every cell (True), on none (False), or only on the
        listed cells (e.g. the best cells of a first ``controls=False``
        sweep); the other cells get NaN ``shuffle``, ``control`` and
        ``selectivity``.  The control labels and the shuffled training labels
        are drawn once per target, so a cell's controls do not depend on
        which other cells run them.  ``majority`` and ``chance`` (which do not
        depend on the cell) are always filled.
    n_splits : int, default=5
    seed : int, default=0
        Seeds the folds, the shuffle and the control-task labels.  All cells
        share the same folds and control labels.
    control_types : array of shape (n,) or "shuffled", optional
        ``"shuffled"``: the control task is the target permuted across all
        examples (the shuffled-target control of a numeric target,
        :mod:`latentprobe.probing.targets`).  Otherwise the control type of
        every example: a key that recurs across groups, e.g.
        the question text (:func:`recurring_types` backs questions that do not
        recur off to their longest recurring prefix).  Without it there is no
        control task (``control``, ``selectivity`` and its interval are NaN):
        the sweep has no key to build one from.  Types that never recur
        between a fold's training and test parts (the groups themselves,
        or one type per example) make the control unlearnable whatever the
        probe does; that raises :class:`~latentprobe.errors.ControlTaskWarning`
        and shows as ``control_recur`` 0.
    control_labels : {"within_type", "per_type"}, default="within_type"
        The control task's labels: the target's own values permuted among the
        examples of each type (:func:`shuffle_within_types`; a probe that only
        memorises the type scores the same on them, selectivity 0), or one
        random label per type drawn from the label distribution, as Hewitt &
        Liang (2019) (:func:`control_task_labels`; with few types, e.g. a
        handful of question templates, any representation that tells the
        types apart learns it, whatever it encodes beyond them).
    probe : LinearProbe, optional
        Template probe; default ``LinearProbe(task=task)``.
    progress : bool, default=True
        Show a tqdm progress bar.
    n_jobs : int or None, default=None
        Worker processes (joblib) across cells; None or 1 runs in this
        process, -1 uses every core.  Results do not depend on it.  Limit the
        BLAS threads of each worker (e.g. ``OMP_NUM_THREADS=1``) when
        ``n_jobs`` approaches the number of cores.
    n_perm : int or None, default None
        Permutations of each cell's ``p_value``; None picks enough for Holm
        over the sweep's cells (:func:`~latentprobe.probing.significance.permutations_for`),
        0 skips the p-values (NaN).

    Returns
    -------
    ProbeSweepResult
        ``scores`` has one row per cell and columns :data:`SCORE_COLUMNS`.

    Notes
    -----
    The layer/step with the highest score is where the target is most
    linearly decodable, not where the model computes or uses it.  The cells
    are one family of tests: ``p_value`` is each cell's permutation p-value
    against label-blind predictions, ``p_holm`` / ``p_bh`` adjust it over the
    cells (Holm: family-wise error; Benjamini-Hochberg: false discovery
    rate), and ``ci_low_simultaneous`` / ``ci_high_simultaneous`` cover all
    cells together at 95% (Bonferroni).  Read a cell as above chance only when
    its ``p_holm`` (or ``p_bh``) is small: with 20 null cells the best one
    beats chance at p < 0.05 in most runs.

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe.probing import LinearProbe, probe_sweep
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(60), 3)
    >>> y = groups % 3
    >>> features = rng.normal(size=(180, 2, 3, 4))  # examples x layers x steps x width
    >>> features[:, 1, 2, :3] += 2.0 * np.eye(3)[y]  # only layer 1, step 2 carries y
    >>> res = probe_sweep(features, y, groups, n_splits=4, controls=False,
    ...                   probe=LinearProbe(Cs=(1.0,)), progress=False)
    >>> res.scores.shape
    (6, 22)
    >>> res.scores.loc[res.scores["p_holm"] <= 0.05, ["layer", "step"]].values.tolist()  # survives Holm
    [[1, 2]]
    >>> best = res.best()
    >>> int(best["layer"]), int(best["step"])
    (1, 2)
    >>> res.pivot("score").shape
    (2, 3)
    """
    _check_task(task)
    cells = _cells_from_features(features, layers, steps)
    n = _to_numpy(cells[0][2]).shape[0]
    y = _check_y(y, n, task)
    g = _check_groups(groups, n)
    _check_n_splits(n_splits, len(np.unique(g)))
    mask = _controls_mask(controls, [(layer, step) for layer, step, _ in cells], "(layer, step) cell")
    types = _check_types(control_types, n)
    jobs = []
    for (layer, step, X), c in zip(cells, mask):
        X = _check_X(X, name=f"features[{layer!r}, {step!r}]")
        if X.shape[0] != n:
            raise ProbeError(f"features[{layer!r}, {step!r}] has {X.shape[0]} examples, expected {n} like the other cells.")
        jobs.append((X, c, f"layer={layer!r}, step={step!r}"))
    plan = _plan(y, g, types, task=task, n_splits=n_splits, seed=seed, controls=any(mask),
                 control_labels=control_labels, label=f"probe_sweep({target_name!r})")
    values = _run_cells(jobs, plan, probe, n_jobs, progress, f"probing {target_name}", n_perm, seed)
    T = PROBE_SCORES
    rows = [{T.TARGET: target_name, T.LAYER: layer, T.STEP: step, **v} for (layer, step, _), v in zip(cells, values)]
    return ProbeSweepResult(scores=T.frame(add_adjusted_columns(pd.DataFrame.from_records(rows))))


def compare_representations(
    representations: Mapping[str, Float[np.ndarray, "n d"]],
    y: Shaped[np.ndarray, "n *k"],
    groups: Shaped[np.ndarray, " n"] | None,
    *,
    task: Task = "classification",
    target_name: str = "target",
    controls: bool | Collection[str] = True,
    n_splits: int = 5,
    seed: int = 0,
    control_types: Shaped[np.ndarray, " n"] | None = None,
    control_labels: str = "within_type",
    probe: LinearProbe | None = None,
    progress: bool = False,
    n_jobs: int | None = None,
    n_perm: int | None = None,
) -> pd.DataFrame:
    """Run the same probe, folds and controls on several named representations.

    Use it to put latent tokens next to image-token states, text-token states
    and a random-weights model: if a random-weights model or the input tokens
    decode the target as well as the latents, the probe is reading the input,
    not the latent computation.

    Parameters
    ----------
    representations : dict str -> array [n, d]
        Named representations of the same n examples, in the same order
        (widths may differ).
    y, groups, task, target_name, n_splits, seed, control_types, control_labels, probe, progress, n_jobs, n_perm
        As in :func:`probe_sweep`; the representations form the family of the adjusted p-values
        and of the simultaneous intervals.
    controls : bool or collection of str, default=True
        Run the controls on every representation, on none, or on the named ones.

    Returns
    -------
    pandas.DataFrame
        One row per name, columns ``representation``, ``target`` followed by
        the :func:`probe_sweep` score columns (``task``, ``score``,
        ``ci_low``, ``ci_high``, ``n``, ``n_groups``, ``majority``,
        ``shuffle``, ``control``, ``selectivity``, ``chance``, ``p_value``,
        ``p_holm``, ``p_bh``, ``ci_low_simultaneous``, ``ci_high_simultaneous``).

    Notes
    -----
    Equal scores mean the target is equally linearly decodable, not that the
    representations encode it in the same way or that the model uses either.

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe.probing import LinearProbe, compare_representations
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(20), 3)
    >>> y = groups % 2
    >>> reps = {"latent": rng.normal(size=(60, 4)) + 2.0 * y[:, None], "noise": rng.normal(size=(60, 4))}
    >>> table = compare_representations(reps, y, groups, n_splits=4, probe=LinearProbe(Cs=(1.0,)))
    >>> table["representation"].tolist()
    ['latent', 'noise']
    >>> bool(table.loc[0, "score"] > table.loc[1, "score"] + 0.3)
    True
    """
    _check_task(task)
    if not isinstance(representations, Mapping) or not representations:
        raise ProbeError("representations must be a non-empty dict mapping a name to an array [n, d].")
    arrays = {name: _check_X(X, name=f"representations[{name!r}]") for name, X in representations.items()}
    sizes = {name: X.shape[0] for name, X in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ProbeError(f"representations have different numbers of examples {sizes}; all must describe the same examples.")
    n = next(iter(sizes.values()))
    y = _check_y(y, n, task)
    g = _check_groups(groups, n)
    _check_n_splits(n_splits, len(np.unique(g)))
    mask = _controls_mask(controls, list(arrays), "representation")
    types = _check_types(control_types, n)
    plan = _plan(y, g, types, task=task, n_splits=n_splits, seed=seed, controls=any(mask),
                 control_labels=control_labels, label=f"compare_representations({target_name!r})")
    jobs = [(X, c, f"representation {name!r}") for (name, X), c in zip(arrays.items(), mask)]
    values = _run_cells(jobs, plan, probe, n_jobs, progress, f"probing {target_name}", n_perm, seed)
    T = PROBE_COMPARISON
    rows = [{T.REPRESENTATION: name, T.TARGET: target_name, **v} for name, v in zip(arrays, values)]
    return T.frame(add_adjusted_columns(pd.DataFrame.from_records(rows)))
