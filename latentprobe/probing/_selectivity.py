"""The interval of selectivity (task score - control score): a paired, fold-stratified group bootstrap.

Selectivity is the mean over outer folds of (task score - control score) on the same held-out
examples. Its interval resamples the held-out *groups* of every fold with replacement (groups are the
unit of independence: the examples of one image are not independent), recomputes both fold scores on
the same resample (paired, so example difficulty shared by the task and the control cancels), averages
the differences over folds and takes the percentile interval. Resamples come from
:func:`latentprobe.stats.resample_indices`, one draw per fold.

Why not the folds' Student-t interval (that of ``ci_low``/``ci_high``): with the studies' 4 folds it
has 3 degrees of freedom from differences that share most of their training data. What the bootstrap
does not cover: the fitted probes are held fixed, so the variability of refitting on other training
data is not in the interval (it describes these probes' selectivity on the population of groups).
When the task and control predictions are right on exactly the same held-out examples (a probe that
only memorises the type, whose control labels equal the target), every resample gives 0 and the
interval is ``[0, 0]``: exact given the fitted probes, not a statement about other training data.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from latentprobe.seeding import numpy_rng
from latentprobe.stats import resample_indices

#: Resamples of the selectivity interval.
N_BOOT = 2000


def _group_counts(idx: np.ndarray, m: int) -> np.ndarray:
    """``[b, m]`` how often each of ``m`` groups is drawn in each resample row of ``idx``."""
    w = np.zeros((idx.shape[0], m))
    np.add.at(w, (np.repeat(np.arange(idx.shape[0]), idx.shape[1]), idx.ravel()), 1.0)
    return w


def _r2(sse: np.ndarray, s1: np.ndarray, s2: np.ndarray, n: np.ndarray) -> np.ndarray:
    """R^2 averaged over outputs from sums (sklearn's convention: a constant target scores 1 if fitted exactly, else 0)."""
    ss_tot = s2 - s1**2 / n[:, None]
    ok = ss_tot > 1e-12 * np.maximum(s2, 1.0)
    r2 = np.where(ok, 1.0 - sse / np.where(ok, ss_tot, 1.0), np.where(sse <= 1e-12, 1.0, 0.0))
    return r2.mean(axis=1)


def _per_example(task: str, y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-example columns whose group sums give the fold score: correct (classification) or e^2, y, y^2."""
    if task == "classification":
        return (pred == y).astype(np.float64)[:, None]
    y2 = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    p2 = np.asarray(pred, dtype=np.float64).reshape(len(y), -1)
    return np.concatenate([(y2 - p2) ** 2, y2, y2**2], axis=1)


def _fold_scores(task: str, sums: np.ndarray, n: np.ndarray) -> np.ndarray:
    if task == "classification":
        return sums[:, 0] / n
    k = sums.shape[1] // 3
    return _r2(sums[:, :k], sums[:, k:2 * k], sums[:, 2 * k:], n)


def selectivity_interval(
    task: str,
    y: np.ndarray,
    control_y: np.ndarray,
    g: np.ndarray,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    task_pred: Sequence[np.ndarray],
    control_pred: Sequence[np.ndarray],
    *,
    seed: int,
    level: float = 0.95,
    n_boot: int = N_BOOT,
) -> tuple[float, float]:
    """Percentile interval of the fold-mean selectivity over paired group resamples of every fold.

    Parameters
    ----------
    task : str
        ``"classification"`` or ``"regression"``.
    y, control_y : numpy.ndarray
        Task and control targets of all examples.
    g : numpy.ndarray
        Groups.
    splits : list of (train, test)
        The outer folds.
    task_pred, control_pred : list of numpy.ndarray
        Held-out predictions of every fold (``test`` order).
    seed : int
        Seeds the resamples.
    level : float
        Coverage.
    n_boot : int
        Resamples.

    Returns
    -------
    tuple of float
        ``(low, high)``.
    """
    diffs = np.zeros(n_boot)
    for f, ((_, test), pt, pc) in enumerate(zip(splits, task_pred, control_pred)):
        _, gi = np.unique(g[test], return_inverse=True)
        m = int(gi.max()) + 1
        cols_t = _per_example(task, y[test], pt)
        cols_c = _per_example(task, control_y[test], pc)
        per_group = np.zeros((m, 1 + cols_t.shape[1] + cols_c.shape[1]))
        np.add.at(per_group, gi, np.concatenate([np.ones((len(test), 1)), cols_t, cols_c], axis=1))
        fold_seed = int(numpy_rng(seed, "selectivity_interval", f).integers(2**31))
        start = 0
        for idx in resample_indices(m, n_boot, fold_seed):
            sums = _group_counts(idx, m) @ per_group
            n = sums[:, 0]
            k = cols_t.shape[1]
            diffs[start:start + len(idx)] += (_fold_scores(task, sums[:, 1:1 + k], n)
                                              - _fold_scores(task, sums[:, 1 + k:], n))
            start += len(idx)
    diffs /= len(splits)
    alpha = 1.0 - level
    lo, hi = np.quantile(diffs, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(lo), float(hi)
