"""Control types that recur across grouped folds, the within-type control labels and the recurrence check.

Hewitt & Liang (2019, "Designing and Interpreting Probes with Control Tasks") key their control task
by word *type*: a probe can learn it only because types recur between training and test. Grouped
folds never share a group (an image) between training and test, so a control keyed by the group can
never be learned and selectivity cannot fail. The control types here recur across groups instead:
by default the example's question (:func:`recurring_types` backs a question that does not recur off
to its longest recurring word prefix, the question *type* of VQA-style benchmarks), and
:func:`control_recurrence` measures whether they recur in the folds actually used.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from jaxtyping import Shaped

from latentprobe.errors import ControlTaskWarning, ProbeError
from latentprobe.probing._checks import _to_numpy
from latentprobe.probing.cv import group_kfold_splits
from latentprobe.seeding import numpy_rng

__all__ = ["recurring_types", "shuffle_within_types", "control_recurrence", "CONTROL_LABELS"]

#: How the control task's labels are drawn from the control types (``control_labels`` of the sweeps).
CONTROL_LABELS = ("within_type", "per_type")


def _fold_of(splits: Sequence[tuple[np.ndarray, np.ndarray]], n: int) -> np.ndarray:
    fold = np.full(n, -1, dtype=np.int64)
    for f, (_, test) in enumerate(splits):
        fold[test] = f
    return fold


def _folds_per_type(inv: np.ndarray, fold: np.ndarray, n_types: int) -> np.ndarray:
    pairs = np.unique(np.stack([inv, fold], axis=1), axis=0)
    return np.bincount(pairs[:, 0], minlength=n_types)


def recurring_types(
    keys: Sequence[str] | Shaped[np.ndarray, " n"],
    groups: Shaped[np.ndarray, " n"],
    *,
    n_splits: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """Control types from per-example text keys (e.g. questions), each recurring across the grouped folds.

    A key's examples must lie in at least two outer folds of :func:`group_kfold_splits` (with the same
    ``groups``, ``n_splits`` and ``seed``), so that wherever a type is held out it also occurs in
    training. Keys that do not are backed off, one word at a time from the end, to their longest word
    prefix that does (``"what colour is the red cube ?"`` -> ``"what colour is the"``), the question
    type of VQA-style benchmarks; examples with no recurring prefix share the empty type ``""``, and
    if that type lies in one fold only its examples join the largest recurring type. Backing off only
    ever merges types, so a type that recurs keeps recurring: every returned type lies in at least two
    folds unless no key recurs at all (then :func:`control_recurrence` is 0 and the sweeps warn).

    Parameters
    ----------
    keys : sequence of str
        One key per example (a question; token-id prompts joined by spaces).
    groups : array of shape (n,)
        The CV groups (e.g. image ids).
    n_splits, seed : int
        The sweep's folds.

    Returns
    -------
    numpy.ndarray
        One type (a string) per example.

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe.probing import recurring_types
    >>> keys = ["what colour is the cube ?", "what colour is the ball ?", "how many cubes ?", "how many balls ?",
    ...         "what colour is the cone ?", "what colour is the ring ?", "how many cones ?", "how many rings ?"]
    >>> recurring_types(keys, np.arange(8), n_splits=2, seed=0).tolist()[:4]
    ['what colour is the', 'what colour is the', 'how many', 'how many']
    """
    keys = [" ".join(str(k).split()) for k in _to_numpy(np.asarray(list(keys), dtype=object))]
    g = _to_numpy(groups)
    if g.ndim != 1 or len(g) != len(keys):
        raise ProbeError(f"groups must be 1-D with one entry per key ({len(keys)}); got shape {g.shape}.")
    fold = _fold_of(group_kfold_splits(g, n_splits, seed), len(keys))
    words = [k.split(" ") if k else [] for k in keys]
    level = np.array([len(w) for w in words], dtype=np.int64)
    while True:
        types = np.array([" ".join(w[:lv]) for w, lv in zip(words, level)], dtype=object)
        uniq, inv = np.unique(types, return_inverse=True)
        n_folds = _folds_per_type(inv, fold, len(uniq))
        alone = (n_folds < 2)[inv]
        if not (alone & (level > 0)).any():
            break
        level[alone & (level > 0)] -= 1
    if alone.any() and not alone.all():
        sizes = np.where(n_folds >= 2, np.bincount(inv, minlength=len(uniq)), -1)
        types[alone] = uniq[int(np.argmax(sizes))]
    return types.astype(str)


def shuffle_within_types(
    y: Shaped[np.ndarray, "n *k"], types: Shaped[np.ndarray, " n"], seed: int = 0
) -> np.ndarray:
    """Control labels: the target's own values permuted among the examples of each type.

    Whatever a type tells about the target survives (the type's label distribution is kept exactly);
    whatever the individual example adds is destroyed. A probe that only memorises the type (for
    example features that identify the question, with a target that is a function of the question)
    scores the same on these labels as on the target, so its selectivity is 0; a probe that reads the
    example's own content (the image) loses it. Works for 1-D labels and 2-D regression targets.

    Parameters
    ----------
    y : array of shape (n,) or (n, d')
        Labels.
    types : array of shape (n,)
        Control type of every example.
    seed : int
        Seed of the permutations.

    Returns
    -------
    numpy.ndarray
        Shaped like ``y``.

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe.probing import shuffle_within_types
    >>> y = np.array([0, 1, 2, 3, 7, 7])
    >>> types = np.array(["a", "a", "b", "b", "c", "c"])
    >>> c = shuffle_within_types(y, types, seed=0)
    >>> sorted(c[:2].tolist()), sorted(c[2:4].tolist()), c[4:].tolist()
    ([0, 1], [2, 3], [7, 7])
    """
    y, t = _to_numpy(y), _to_numpy(types)
    if t.ndim != 1 or y.ndim == 0 or t.shape[0] != y.shape[0]:
        raise ProbeError(f"types must be 1-D with one entry per example; got {t.shape} for y of shape {y.shape}.")
    rng = numpy_rng(seed, "control_within_type")
    _, inv = np.unique(t, return_inverse=True)
    out = y.copy()
    for i in range(int(inv.max()) + 1 if len(inv) else 0):
        idx = np.flatnonzero(inv == i)
        out[idx] = y[rng.permutation(idx)]
    return out


def control_recurrence(
    types: Shaped[np.ndarray, " n"], splits: Sequence[tuple[np.ndarray, np.ndarray]]
) -> float:
    """Share of held-out examples whose control type also occurs in their fold's training part.

    1.0: every held-out type was seen in training, so the control can be learned where the probe can
    memorise types; 0.0: none was (types keyed by the CV groups, or unique per example), so the
    control sits at the baseline whatever the probe does.

    Parameters
    ----------
    types : array of shape (n,)
        Control types.
    splits : list of (train, test)
        The outer folds.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe.probing import control_recurrence, group_kfold_splits
    >>> groups = np.repeat(np.arange(6), 2)
    >>> splits = group_kfold_splits(groups, n_splits=3)
    >>> control_recurrence(groups, splits), control_recurrence(np.tile(["q1", "q2"], 6), splits)
    (0.0, 1.0)
    """
    t = _to_numpy(types)
    seen = held = 0
    for train, test in splits:
        seen += int(np.isin(t[test], t[train]).sum())
        held += len(test)
    return float(seen / held) if held else float("nan")


def _warn_if_unlearnable(recur: float, n_types: int, n: int, label: str) -> None:
    if recur == 0.0:
        why = "every example has its own type" if n_types == n else "no held-out example's type occurs in its training folds"
        warnings.warn(
            f"{label}: the control task cannot be learned by construction ({why}; control types keyed by the CV "
            "groups never recur, since folds never share a group), so selectivity cannot fail. Fix: pass "
            "control_types= a per-example key that recurs across groups, e.g. the question text (study files: "
            '[analyses.probes] control_types = "question").',
            ControlTaskWarning,
            stacklevel=4,
        )
