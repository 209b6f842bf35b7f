"""Grouped cross-validation of a probe: seeded group k-fold splits, nested CV and the fold interval.

The outer loop never splits a group (e.g. all latents of one image) between training and test;
this is asserted for every fold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from jaxtyping import Float, Shaped
from scipy import stats
from sklearn.base import clone

from latentprobe.errors import ProbeError
from latentprobe.probing._checks import (
    Task,
    _check_groups,
    _check_n_splits,
    _check_task,
    _check_X,
    _check_y,
    _to_numpy,
)
from latentprobe.probing.estimator import LinearProbe
from latentprobe.probing.significance import oof_permutation_pvalue
from latentprobe.seeding import numpy_rng

__all__ = ["ProbeScore", "group_kfold_splits", "cross_validate_probe"]


@dataclass(frozen=True)
class ProbeScore:
    """Cross-validated probe score.

    Attributes
    ----------
    score : float
        Mean held-out score over the outer folds (accuracy or R^2).
    fold_scores : tuple of float
        Held-out score of every outer fold.
    ci_low, ci_high : float
        95% Student-t interval of the mean over folds, clipped to [0, 1] for
        accuracy and to at most 1 for R^2.  Folds share training
        data, so this interval is approximate and tends to be too narrow; it
        does not account for variation across datasets or models.
    n : int
        Number of examples.
    n_groups : int
        Number of distinct groups.
    n_splits : int
        Number of outer folds.
    p_value : float
        One-sided permutation p-value of the pooled out-of-fold score against test labels permuted
        across groups within each fold (:func:`latentprobe.probing.significance.oof_permutation_pvalue`);
        NaN where it was not computed.

    Notes
    -----
    A high score shows that the target is linearly decodable from the
    representation on held-out groups, not that the model uses it.
    """

    score: float
    fold_scores: tuple[float, ...]
    ci_low: float
    ci_high: float
    n: int
    n_groups: int
    n_splits: int
    p_value: float = field(default=float("nan"), compare=False)  # NaN when not computed (NaN != NaN)

    def interval(self, level: float, task: str = "classification") -> tuple[float, float]:
        """The Student-t interval over folds at another ``level`` (e.g. a simultaneous one).

        Parameters
        ----------
        level : float
            Nominal coverage.
        task : {"classification", "regression"}
            Decides the clipping, as for ``ci_low``/``ci_high``.

        Returns
        -------
        tuple of float
            ``(low, high)``.
        """
        _, low, high = _t_interval(self.fold_scores, task, level)
        return low, high


def _t_interval(values: Sequence[float], task: str, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval over folds, clipped to the attainable range.

    Accuracy lies in [0, 1] and R^2 is at most 1, so the interval is clipped
    there.  A single fold gives a zero-width interval.
    """
    v = np.asarray(values, dtype=np.float64)
    mean = float(v.mean())
    if v.size < 2:
        return mean, mean, mean
    sem = float(v.std(ddof=1)) / math.sqrt(v.size)
    half = float(stats.t.ppf(0.5 + level / 2.0, df=v.size - 1)) * sem
    low = mean - half if task == "regression" else max(0.0, mean - half)
    return mean, low, min(1.0, mean + half)


def group_kfold_splits(
    groups: Shaped[np.ndarray, " n"], n_splits: int = 5, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded group k-fold: every group lies entirely in one test fold.

    Groups are shuffled with ``seed`` and assigned, largest first, to the fold
    with the fewest examples so far, which keeps folds balanced in size.

    Parameters
    ----------
    groups : array of shape (n,)
        Group id of every example (e.g. the image id of each latent).
    n_splits : int, default=5
        Number of folds; must not exceed the number of distinct groups.
    seed : int, default=0
        Seed of the group shuffling.

    Returns
    -------
    list of (train_idx, test_idx)
        Sorted integer index arrays, one pair per fold.

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe.probing import group_kfold_splits
    >>> groups = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    >>> splits = group_kfold_splits(groups, n_splits=2, seed=0)
    >>> [sorted(set(groups[test].tolist())) for _, test in splits]
    [[1, 2], [0, 3]]
    """
    g = _to_numpy(groups)
    if g.ndim != 1:
        raise ProbeError(f"groups must be 1-D, got shape {g.shape}.")
    uniq, inv, sizes = np.unique(g, return_inverse=True, return_counts=True)
    _check_n_splits(n_splits, len(uniq))
    rng = numpy_rng(seed)
    order = rng.permutation(len(uniq))
    order = order[np.argsort(-sizes[order], kind="stable")]
    fold_of_group = np.empty(len(uniq), dtype=np.int64)
    fold_sizes = np.zeros(n_splits, dtype=np.int64)
    for gi in order:
        f = int(np.argmin(fold_sizes))
        fold_of_group[gi] = f
        fold_sizes[f] += sizes[gi]
    fold_of_example = fold_of_group[inv]
    splits = []
    for f in range(n_splits):
        test = np.flatnonzero(fold_of_example == f)
        train = np.flatnonzero(fold_of_example != f)
        _assert_disjoint_groups(g, train, test)
        splits.append((train, test))
    return splits


def _assert_disjoint_groups(groups: np.ndarray, train: np.ndarray, test: np.ndarray) -> None:
    overlap = np.intersect1d(groups[train], groups[test])
    assert overlap.size == 0, f"group leakage: groups {overlap[:5].tolist()} appear in both train and test"


def _prepare(X: Any, y: Any, groups: Any, task: str, n_splits: int):
    _check_task(task)
    X = _check_X(X)
    y = _check_y(y, X.shape[0], task)
    g = _check_groups(groups, X.shape[0])
    _check_n_splits(n_splits, len(np.unique(g)))
    return X, y, g


def _run_folds(
    X: np.ndarray,
    y_fit: np.ndarray,
    y_eval: np.ndarray,
    g: np.ndarray,
    splits: list[tuple[np.ndarray, np.ndarray]],
    task: str,
    probe: LinearProbe | None,
    train_labels: Any = None,
    held_out: list[np.ndarray] | None = None,
    permutations: tuple[int, int] | None = None,
) -> ProbeScore:
    """Fit on ``y_fit[train]`` (or ``train_labels(fold, train)``) and score on ``y_eval[test]``.

    With ``held_out`` (a list), the test predictions of every fold are appended to it, in fold order.
    With ``permutations = (n_perm, seed)`` the out-of-fold predictions are kept and the score's
    permutation p-value is computed (:func:`~latentprobe.probing.significance.oof_permutation_pvalue`).
    """
    template = LinearProbe(task=task) if probe is None else probe
    if getattr(template, "task", task) != task:
        raise ProbeError(f"probe.task={template.task!r} does not match task={task!r}; pass a probe built for the same task.")
    fold_scores = []
    oof = None
    for k, (train, test) in enumerate(splits):
        _assert_disjoint_groups(g, train, test)
        y_train = y_fit[train] if train_labels is None else train_labels(k, train)
        if task == "classification" and len(np.unique(y_train)) < 2:
            raise ProbeError(
                f"outer fold {k} has a single class in its training data; use fewer "
                "n_splits, more groups, or groups that each hold examples of several classes."
            )
        est = clone(template)
        est.fit(X[train], y_train, groups=g[train])
        fold_scores.append(float(est.score(X[test], y_eval[test])))
        if held_out is not None or permutations is not None:
            pred = np.asarray(est.predict(X[test]))
            if held_out is not None:
                held_out.append(pred)
            if permutations is not None:
                if oof is None:
                    oof = np.empty((len(y_eval), *pred.shape[1:]), dtype=pred.dtype)
                oof[test] = pred
    mean, lo, hi = _t_interval(fold_scores, task)
    p_value = float("nan")
    if permutations is not None and oof is not None:
        p_value = oof_permutation_pvalue(oof.reshape(np.shape(y_eval)), y_eval, g, splits, task=task,
                                         n_perm=permutations[0], seed=permutations[1])
    return ProbeScore(
        score=mean,
        fold_scores=tuple(fold_scores),
        ci_low=lo,
        ci_high=hi,
        n=int(X.shape[0]),
        n_groups=int(len(np.unique(g))),
        n_splits=len(splits),
        p_value=p_value,
    )


def cross_validate_probe(
    X: Float[np.ndarray, "n d"],
    y: Shaped[np.ndarray, "n *k"],
    groups: Shaped[np.ndarray, " n"] | None,
    *,
    task: Task = "classification",
    n_splits: int = 5,
    seed: int = 0,
    probe: LinearProbe | None = None,
    n_perm: int = 999,
) -> ProbeScore:
    """Nested, grouped cross-validation of a linear probe.

    The outer loop is a seeded group k-fold (:func:`group_kfold_splits`), so
    all examples of one group (e.g. every latent of one image) are either in
    training or in test, never both; this is asserted for every fold.  Inside
    each outer training set, :class:`LinearProbe` picks its regularisation by
    a grouped inner cross-validation.

    Parameters
    ----------
    X : array of shape (n, d)
        Representations.
    y : array of shape (n,) or (n, d')
        Labels (classification) or targets (regression).
    groups : array of shape (n,) or None
        Group ids.  ``None`` treats every example as its own group, which
        overestimates generalisation when examples share an image or problem.
    task : {"classification", "regression"}, default="classification"
    n_splits : int, default=5
        Number of outer folds.
    seed : int, default=0
        Seed of the fold assignment.
    probe : LinearProbe, optional
        Unfitted template probe (cloned per fold); defaults to
        ``LinearProbe(task=task)``.
    n_perm : int, default 999
        Permutations of the score's p-value (``p_value``); 0 skips it (NaN).

    Returns
    -------
    ProbeScore

    Raises
    ------
    ProbeError
        On mismatched lengths, a single class, non-finite values, or fewer
        distinct groups than ``n_splits``.

    Notes
    -----
    A score above chance shows the target is linearly decodable from ``X`` on
    unseen groups, not that the model relies on it.

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe.probing import LinearProbe, cross_validate_probe
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(20), 3)  # 20 images, 3 latents each
    >>> y = groups % 2  # one label per image
    >>> X = rng.normal(size=(60, 4)) + 2.0 * y[:, None]
    >>> s = cross_validate_probe(X, y, groups, n_splits=4, probe=LinearProbe(Cs=(1.0,)))
    >>> s.n_splits, s.n_groups, s.score > 0.9
    (4, 20, True)
    >>> s.ci_low <= s.score <= s.ci_high
    True
    """
    X, y, g = _prepare(X, y, groups, task, n_splits)
    splits = group_kfold_splits(g, n_splits, seed)
    return _run_folds(X, y, y, g, splits, task, probe, permutations=(n_perm, seed) if n_perm else None)
