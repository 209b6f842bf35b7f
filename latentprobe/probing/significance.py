"""A p-value for a cross-validated probe: is its out-of-fold score better than label-blind predictions?

:func:`oof_permutation_pvalue` keeps every out-of-fold prediction fixed and permutes the test labels
*across groups within each test fold* (all examples of a group move together, as in
:func:`latentprobe.probing.shuffle_control`), so the null is "the probe's predictions carry no
information about the labels" while the class balance of every fold, the predictions' own bias and
the grouping are kept. No probe is refitted: the permutations are a gather over the fixed
predictions, vectorised over blocks of permutations.

Why not an exact binomial test of the pooled correct count against the majority rate: examples of
one group share their label (and often their features), so their correct/incorrect outcomes are
positively correlated and the count is over-dispersed relative to a binomial; in simulation with
groups of 3 null examples the binomial test rejected more often than its level (see
``tests/probing/test_significance.py``), while the group permutation held it.

The smallest attainable p-value is ``1 / (n_perm + 1)``: a sweep of ``m`` cells picks ``n_perm`` so
that Holm's smallest threshold ``0.05 / m`` is reachable (:func:`permutations_for`); the fold
combination doubles it, ``2 / (n_perm + 1)``.
"""

from __future__ import annotations

import math

import numpy as np

from latentprobe.seeding import numpy_rng

__all__ = ["oof_permutation_pvalue", "permutations_for"]

# Permutations gathered at once: bounds the (block, n_fold) index buffers.
_BLOCK_ELEMENTS = 1 << 22


def permutations_for(m: int, alpha: float = 0.05) -> int:
    """Permutations that let the smallest of ``m`` Holm thresholds (``alpha / m``) be reached with room.

    ``n_perm = max(999, ceil(10 m / alpha) - 1)``: the smallest p-value, ``2 / (n_perm + 1)``, is at
    most a fifth of Holm's smallest threshold ``alpha / m``.

    Parameters
    ----------
    m : int
        Tests in the family.
    alpha : float
        Family-wise level.

    Returns
    -------
    int

    Examples
    --------
    >>> from latentprobe.probing.significance import permutations_for
    >>> permutations_for(1), permutations_for(20), permutations_for(200)
    (999, 3999, 39999)
    """
    return max(999, math.ceil(10 * max(int(m), 1) / alpha) - 1)


def _fold_layout(g: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, ...]:
    """For one test fold: the fold's examples sorted by group, each one's group code and position, group starts/sizes."""
    order = test[np.argsort(g[test], kind="stable")]
    _, code, sizes = np.unique(g[order], return_inverse=True, return_counts=True)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    pos = np.arange(order.size) - starts[code]
    return order, code, sizes, starts, pos


def _fold_stats(pred: np.ndarray, y: np.ndarray, g: np.ndarray, test: np.ndarray, task: str,
                n_perm: int, rng: np.random.Generator) -> tuple[float, np.ndarray]:
    order, code, sizes, starts, pos = _fold_layout(g, test)
    p, t = pred[order], y[order]

    def stat(labels: np.ndarray) -> np.ndarray:  # labels: (b, n_f, ...) -> (b,)
        if task == "classification":
            return (labels == p[None]).sum(axis=1).astype(np.float64)
        diff = (labels - p[None]).reshape(labels.shape[0], -1)
        return -(diff ** 2).sum(axis=1)

    observed = float(stat(t[None])[0])
    n_groups = sizes.size
    out = np.empty(n_perm)
    block = max(1, _BLOCK_ELEMENTS // max(order.size, 1))
    for b0 in range(0, n_perm, block):
        b = min(block, n_perm - b0)
        perm = rng.permuted(np.tile(np.arange(n_groups), (b, 1)), axis=1)
        target = perm[:, code]  # (b, n_f): the group whose labels each example takes
        src = starts[target] + pos[None] % sizes[target]
        out[b0:b0 + b] = stat(t[src])
    return observed, out


def oof_permutation_pvalue(
    pred: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    splits: list[tuple[np.ndarray, np.ndarray]],
    *,
    task: str = "classification",
    n_perm: int = 999,
    seed: int = 0,
) -> float:
    """One-sided permutation p-value of a probe's out-of-fold score, valid across dependent folds.

    In every test fold, the statistic is the number of correct predictions (classification) or
    minus the squared error (regression); its null distribution is the same with the fold's test
    labels permuted across its groups (group ``a`` takes the labels of group ``pi(a)``, its ``j``-th
    example the ``(j mod size)``-th label). Given the fold's training data the fold's labels are
    exchangeable across its groups under the null, so each fold's
    ``p_f = (1 + #{null >= observed}) / (1 + n_perm)`` is valid. The folds' tests are dependent (a
    fold's labels train the other folds' probes), and summing their statistics against independent
    permutations rejected too often in simulation (0.08 at 0.05 with within-group correlated null
    features), so they are combined as ``min(1, 2 * mean_f p_f)``, valid under any dependence
    (Vovk and Wang 2020, "Combining p-values via averaging", Biometrika 107).

    Parameters
    ----------
    pred : array, shape (n,) or (n, k)
        Out-of-fold predictions (each example predicted by the probe of the fold it is tested in).
    y : array, shape like ``pred``
        True labels or targets.
    groups : array, shape (n,)
        Group ids (folds never split a group).
    splits : list of (train, test) index arrays
        The folds; every example must be in one test fold.
    task : {"classification", "regression"}
    n_perm : int, default 999
        Permutations; the smallest p-value is ``1 / (n_perm + 1)``.
    seed : int, default 0

    Returns
    -------
    float

    Notes
    -----
    The test conditions on the fitted probes: it asks whether their held-out predictions match the
    labels better than chance, not whether another probe would. A small p-value says the target is
    decodable above chance on held-out groups, not that the model uses it.

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe.probing import group_kfold_splits
    >>> from latentprobe.probing.significance import oof_permutation_pvalue
    >>> groups = np.repeat(np.arange(60), 2)  # 12 groups per test fold: 34,650 label arrangements
    >>> y = groups % 3
    >>> splits = group_kfold_splits(groups, 5)
    >>> oof_permutation_pvalue(y.copy(), y, groups, splits, n_perm=199)  # perfect predictions: 2 / 200
    0.01
    """
    p_folds = []
    for k, (_, test) in enumerate(splits):
        obs, perm = _fold_stats(np.asarray(pred), np.asarray(y), np.asarray(groups), np.asarray(test), task,
                                n_perm, numpy_rng(seed, "oof_permutation", k))
        p_folds.append((1 + np.sum(perm >= obs - 1e-9 * max(1.0, abs(obs)))) / (1 + n_perm))
    return float(min(1.0, 2.0 * np.mean(p_folds)))
