"""Controls for a probe score: majority baseline, label shuffle, control task and selectivity.

A probe score means little on its own: compare it with an input-blind predictor
(:func:`majority_baseline`), with the same probe trained on labels shuffled across groups
(:func:`shuffle_control`) and with the control task of Hewitt & Liang (2019)
(:func:`control_task_labels`); *selectivity* is the task score minus the control-task score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from jaxtyping import Float, Shaped
from sklearn.metrics import r2_score

from latentprobe.schema import PROBE_SCORES
from latentprobe.errors import ProbeError
from latentprobe.probing._checks import Task, _check_task, _to_numpy
from latentprobe.probing._selectivity import selectivity_interval
from latentprobe.probing.control_types import CONTROL_LABELS, _warn_if_unlearnable, control_recurrence, shuffle_within_types
from latentprobe.probing.cv import ProbeScore, _prepare, _run_folds, group_kfold_splits
from latentprobe.probing.estimator import LinearProbe
from latentprobe.seeding import numpy_rng

__all__ = ["majority_baseline", "shuffle_control", "control_task_labels"]


def majority_baseline(
    y_train: Shaped[np.ndarray, "n *k"],
    y_test: Shaped[np.ndarray, "m *k"],
    *,
    task: Task | None = None,
) -> float:
    """Score of an input-blind predictor fitted on ``y_train``, evaluated on ``y_test``.

    For classification this is the accuracy of always predicting the most
    frequent training class (ties: the smallest label).  For regression it is
    the R^2 of always predicting the training mean, which is at most 0.
    ``task=None`` infers the task: 1-D non-float labels are classification,
    float or 2-D targets regression.

    A probe that does not beat this number has learned nothing beyond the
    label frequencies; beating it does not by itself show the representation
    is the source of the information.

    Parameters
    ----------
    y_train : Shaped[np.ndarray, "n *k"]
        Training targets.
    y_test : Shaped[np.ndarray, "m *k"]
        Test targets.
    task : Task | None
        ``"classification"`` or ``"regression"`` (default inferred).

    Returns
    -------
    float
        The score of always predicting the training majority (mean for regression).

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe.probing import majority_baseline
    >>> majority_baseline(np.array([0, 0, 1]), np.array([0, 1, 0, 0]))
    0.75
    >>> majority_baseline(np.array([1.0, 3.0]), np.array([2.0, 4.0]))  # R^2 of predicting the training mean
    -1.0
    """
    y_train, y_test = _to_numpy(y_train), _to_numpy(y_test)
    if len(y_train) == 0 or len(y_test) == 0:
        raise ProbeError("majority_baseline needs non-empty y_train and y_test.")
    if task is None:
        task = "classification" if y_train.ndim == 1 and not np.issubdtype(y_train.dtype, np.floating) else "regression"
    _check_task(task)
    if task == "classification":
        values, counts = np.unique(y_train, return_counts=True)
        return float(np.mean(y_test == values[np.argmax(counts)]))
    mean = np.mean(np.asarray(y_train, dtype=np.float64), axis=0)
    pred = np.broadcast_to(mean, np.shape(y_test))
    return float(r2_score(y_test, pred, multioutput="uniform_average"))


def _majority_over_folds(y: np.ndarray, splits, task: str) -> float:
    return float(np.mean([majority_baseline(y[train], y[test], task=task) for train, test in splits]))


def _shuffle_rng(seed: int) -> np.random.Generator:
    """The generator of the label shuffle, shared by :func:`shuffle_control` and the sweeps."""
    return numpy_rng(seed, "shuffle_control")


def _permute_across_groups(y: np.ndarray, g: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Give every group the labels of another (randomly chosen) group.

    Group ids are permuted; the j-th example of group ``a`` receives the label
    of the (j mod size)-th example of the group that ``a`` is mapped to.  When
    labels are constant within groups this is exactly a permutation of group
    labels; with equal-sized groups it is a permutation of examples.
    """
    uniq, inv = np.unique(g, return_inverse=True)
    members = [np.flatnonzero(inv == i) for i in range(len(uniq))]
    perm = rng.permutation(len(uniq))
    out = np.empty_like(y)
    for i, idx in enumerate(members):
        src = members[perm[i]]
        out[idx] = y[src[np.arange(len(idx)) % len(src)]]
    return out


def shuffle_control(
    X: Float[np.ndarray, "n d"],
    y: Shaped[np.ndarray, "n *k"],
    groups: Shaped[np.ndarray, " n"] | None,
    *,
    task: Task = "classification",
    n_splits: int = 5,
    seed: int = 0,
    probe: LinearProbe | None = None,
) -> ProbeScore:
    """Permutation control: same nested CV, but training labels shuffled across groups.

    In every outer fold the training labels are permuted at the group level
    while the test labels stay true: group ids are shuffled (seeded) and each
    group takes over the labels of the group it is mapped to, so all examples
    of a group move together.  Uses the
    same folds as :func:`cross_validate_probe` with the same ``seed``.

    The result estimates what the probe scores when the label-representation
    link is broken; it should be near :func:`majority_baseline`.  A real score
    above it shows decodability beyond chance, not that the model uses it.

    Parameters
    ----------
    X : Float[np.ndarray, "n d"]
        Features ``[n, d]``.
    y : Shaped[np.ndarray, "n *k"]
        Targets.
    groups : Shaped[np.ndarray, " n"] | None
        Group of each example (kept together in folds), or ``None``.
    task : Task
        ``"classification"`` or ``"regression"``.
    n_splits : int
        Cross-validation folds.
    seed : int
        Seed of the shuffle and the folds.
    probe : LinearProbe | None
        The probe (default :class:`LinearProbe`).

    Returns
    -------
    ProbeScore

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe.probing import LinearProbe, cross_validate_probe, shuffle_control
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(20), 3)
    >>> y = groups % 2
    >>> X = rng.normal(size=(60, 4)) + 2.0 * y[:, None]
    >>> probe = LinearProbe(Cs=(1.0,))
    >>> real = cross_validate_probe(X, y, groups, n_splits=4, probe=probe).score
    >>> shuffled = shuffle_control(X, y, groups, n_splits=4, probe=probe).score
    >>> real > shuffled + 0.2
    True
    """
    X, y, g = _prepare(X, y, groups, task, n_splits)
    splits = group_kfold_splits(g, n_splits, seed)
    rng = _shuffle_rng(seed)

    def train_labels(k: int, train: np.ndarray) -> np.ndarray:
        return _permute_across_groups(y[train], g[train], rng)

    return _run_folds(X, y, y, g, splits, task, probe, train_labels=train_labels)


def control_task_labels(
    y: Shaped[np.ndarray, "n *k"],
    types: Shaped[np.ndarray, " n"],
    seed: int = 0,
) -> np.ndarray:
    """Control-task targets in the style of Hewitt & Liang (2019).

    Every distinct type id gets one label drawn at random from the empirical
    distribution of ``y`` (the target of a uniformly drawn example, so class
    frequencies are preserved in expectation); all examples of a type share
    that label.  Works for 1-D labels and for 2-D regression targets.

    Parameters
    ----------
    y : array of shape (n,) or (n, d')
        Real labels, only used for their empirical distribution.
    types : array of shape (n,)
        Type id of every example; in :func:`probe_sweep` this defaults to the
        group id (e.g. the image id).
    seed : int, default=0

    Returns
    -------
    ndarray shaped like ``y``

    Notes
    -----
    A probe that scores well on the control task can memorise type identity;
    *selectivity* (task score minus control score) measures how much of the
    task score exceeds that capacity.  High selectivity does not show the
    model uses the information either.

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe.probing import control_task_labels
    >>> y = np.array([0, 1, 0, 1, 1, 0])
    >>> types = np.array([7, 7, 8, 8, 9, 9])
    >>> c = control_task_labels(y, types, seed=0)
    >>> c.shape, bool((c[0::2] == c[1::2]).all())  # one label per type
    ((6,), True)
    """
    y = _to_numpy(y)
    types = _to_numpy(types)
    if types.ndim != 1 or y.ndim == 0 or types.shape[0] != y.shape[0]:
        raise ProbeError(
            f"types must be 1-D with one entry per example; got {types.shape} for y of shape {y.shape}."
        )
    if y.shape[0] == 0:
        raise ProbeError("y is empty; control_task_labels needs at least one example.")
    _, inv = np.unique(types, return_inverse=True)
    rng = numpy_rng(seed)
    source = rng.integers(0, y.shape[0], size=int(inv.max()) + 1)
    return y[source[inv]].copy()


def _chance(y: np.ndarray, task: str) -> float:
    return 1.0 / len(np.unique(y)) if task == "classification" else 0.0


@dataclass(frozen=True)
class _Plan:
    """What every cell of one target shares: folds, control labels and input-blind scores.

    Computed once per target (:func:`_plan`), so cells differ only in their features.  The shuffled
    training labels of every fold are drawn here, in fold order, from the same generator
    :func:`shuffle_control` uses, so each cell's shuffle control sees the labels it would see alone.
    ``control_y`` is ``None`` when no control types were given (no control task);
    ``control_recur`` is the share of held-out examples whose control type occurs in training.
    """

    task: str
    y: np.ndarray
    g: np.ndarray
    splits: list[tuple[np.ndarray, np.ndarray]]
    control_y: np.ndarray | None
    shuffled: tuple[np.ndarray, ...] | None
    majority: float
    chance: float
    control_recur: float = float("nan")
    seed: int = 0


def _plan(y: np.ndarray, g: np.ndarray, types: np.ndarray | None, *, task: str, n_splits: int, seed: int,
          controls: bool, control_labels: str = "within_type", label: str = "probe") -> _Plan:
    if control_labels not in CONTROL_LABELS:
        raise ProbeError(f"control_labels must be one of {CONTROL_LABELS}, got {control_labels!r}.")
    splits = group_kfold_splits(g, n_splits, seed)
    control_y = shuffled = None
    recur = float("nan")
    if controls:
        if types is not None:
            recur = control_recurrence(types, splits)
            _warn_if_unlearnable(recur, len(np.unique(types)), len(types), label)
            draw = shuffle_within_types if control_labels == "within_type" else control_task_labels
            control_y = draw(y, types, seed)
        rng = _shuffle_rng(seed)
        shuffled = tuple(_permute_across_groups(y[train], g[train], rng) for train, _ in splits)
    return _Plan(task, y, g, splits, control_y, shuffled, _majority_over_folds(y, splits, task), _chance(y, task),
                 recur, seed)


def _probe_with_controls(
    X: np.ndarray, plan: _Plan, *, controls: bool, probe: LinearProbe | None, label: str,
    permutations: tuple[int, int] | None = None, simultaneous: float = 0.95,
) -> tuple[dict[str, Any], list[str]]:
    """Score one cell (and, with ``controls``, its shuffle control and control task).

    Returns the row's values and the messages of controls that had to be skipped (the caller
    warns, so that cells fitted in worker processes report them too). ``permutations`` =
    ``(n_perm, seed)`` of the score's p-value (None: NaN); ``simultaneous`` is the level of the
    simultaneous interval columns (the sweep's Bonferroni level).
    """
    y, g, task, splits = plan.y, plan.g, plan.task, plan.splits
    task_pred: list[np.ndarray] = []
    res = _run_folds(X, y, y, g, splits, task, probe, held_out=task_pred, permutations=permutations)
    sim_low, sim_high = res.interval(simultaneous, task)
    shuffle = control = sel_low = sel_high = float("nan")
    skipped: list[str] = []
    if controls:
        if plan.shuffled is None:
            raise ProbeError(f"{label}: controls requested but the sweep was planned without them; pass controls=True.")
        shuffled = plan.shuffled
        try:
            shuffle = _run_folds(X, y, y, g, splits, task, probe, train_labels=lambda k, tr: shuffled[k]).score
        except ProbeError as err:
            skipped.append(f"{label}: shuffle control skipped ({err})")
        if plan.control_y is not None:
            control_pred: list[np.ndarray] = []
            try:
                control = _run_folds(X, plan.control_y, plan.control_y, g, splits, task, probe,
                                     held_out=control_pred).score
                sel_low, sel_high = selectivity_interval(task, y, plan.control_y, g, splits, task_pred, control_pred,
                                                         seed=plan.seed)
            except ProbeError as err:
                skipped.append(f"{label}: control task skipped ({err})")
    T = PROBE_SCORES
    row = {
        T.TASK: task,
        T.SCORE: res.score,
        T.CI_LOW: res.ci_low,
        T.CI_HIGH: res.ci_high,
        T.N: res.n,
        T.N_GROUPS: res.n_groups,
        T.MAJORITY: plan.majority,
        T.SHUFFLE: shuffle,
        T.CONTROL: control,
        T.SELECTIVITY: res.score - control,
        T.SELECTIVITY_LOW: sel_low,
        T.SELECTIVITY_HIGH: sel_high,
        T.CONTROL_RECUR: plan.control_recur if controls else float("nan"),
        T.CHANCE: plan.chance,
        T.P_VALUE: res.p_value,
        T.CI_LOW_SIMULTANEOUS: sim_low,
        T.CI_HIGH_SIMULTANEOUS: sim_high,
    }
    return row, skipped
