"""Paired correctness: McNemar's exact test, and accuracy differences with Tango's score interval."""

from __future__ import annotations


import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as _scipy_stats

from latentprobe.validate import as_1d_bool as _as_1d_bool
from latentprobe.validate import same_length as _check_same_length
from latentprobe.stats.paired import paired_difference_ci
from latentprobe.stats.effects import Effect, McNemarResult

__all__ = ["mcnemar_exact", "accuracy_difference", "binary_outcome_effect"]


def mcnemar_exact(correct_a: ArrayLike, correct_b: ArrayLike) -> McNemarResult:
    """McNemar's exact test for two conditions scored on the same examples.

    Parameters
    ----------
    correct_a, correct_b : array-like of bool, shape (n,)
        Whether each example was answered correctly under condition A and B.
        0/1 integers are accepted.

    Returns
    -------
    McNemarResult
        ``b = #(A right, B wrong)``, ``c = #(A wrong, B right)``, ``n`` and
        the two-sided exact p-value ``min(1, 2 * Binom(b + c, 0.5).cdf(min(b, c)))``
        (identical to ``scipy.stats.binomtest(b, b + c, 0.5).pvalue``);
        ``1.0`` when there are no discordant pairs.

    Notes
    -----
    A small p-value says the two conditions disagree more asymmetrically
    than chance would produce on these examples; it does not measure how
    large the accuracy difference is (see :func:`accuracy_difference`).
    """
    ca = _as_1d_bool(correct_a, "correct_a")
    cb = _as_1d_bool(correct_b, "correct_b")
    n = _check_same_length({"correct_a": ca, "correct_b": cb})
    b = int(np.count_nonzero(ca & ~cb))
    c = int(np.count_nonzero(~ca & cb))
    if b + c == 0:
        p = 1.0
    else:
        p = float(min(1.0, 2.0 * _scipy_stats.binom.cdf(min(b, c), b + c, 0.5)))
    return McNemarResult(b=b, c=c, n=n, p_value=p)


def accuracy_difference(
    correct_a: ArrayLike,
    correct_b: ArrayLike,
    *,
    n_boot: int = 2000,
    seed: int | None = 0,
    confidence: float = 0.95,
    name: str = "accuracy_difference",
) -> Effect:
    """Accuracy of A minus accuracy of B, with Tango's paired score interval and its test.

    Parameters
    ----------
    correct_a, correct_b : array-like of bool, shape (n,)
        Per-example correctness under two conditions on the same examples.
    n_boot : int, default 2000
        Accepted for a uniform signature; Tango's interval needs no resamples.
    seed : int or None, default 0
        Likewise unused (the interval is exact arithmetic on the counts).
    confidence : float, default 0.95
        Nominal coverage of the interval.
    name : str, default ``"accuracy_difference"``
        Label stored in the returned :class:`Effect`.

    Returns
    -------
    Effect
        ``estimate = mean(correct_a) - mean(correct_b)`` (in accuracy units, between -1 and 1),
        Tango's score interval for paired proportions
        (:func:`latentprobe.stats.paired_difference_ci` with ``before=correct_b``,
        ``after=correct_a``), ``n`` and ``p_value`` of the score test the interval inverts
        (McNemar's asymptotic test without continuity correction): the interval excludes 0
        exactly when ``p_value < 1 - confidence``. The method text carries McNemar's exact
        p-value (:func:`mcnemar_exact`), which is more conservative.

    Notes
    -----
    The interval and p-value concern these examples under this evaluation
    protocol; neither shows *why* the accuracies differ. With fewer than 10 discordant pairs
    the note says so: the interval is then conservative and the test has little power.

    Examples
    --------
    >>> from latentprobe.stats import accuracy_difference
    >>> e = accuracy_difference([1] * 30 + [0] * 18, [1] * 40 + [0] * 8)
    >>> round(e.estimate, 4), round(e.ci_low, 4), round(e.ci_high, 4), round(e.p_value, 4)
    (-0.2083, -0.3426, -0.1173, 0.0016)
    """
    ca = _as_1d_bool(correct_a, "correct_a")
    cb = _as_1d_bool(correct_b, "correct_b")
    _check_same_length({"correct_a": ca, "correct_b": cb})
    r = paired_difference_ci(cb.astype(np.float64), ca.astype(np.float64), level=confidence, seed=seed,
                             n_boot=n_boot, method="tango")
    return r.to_effect(name)


def binary_outcome_effect(
    correct_clean: ArrayLike,
    correct_other: ArrayLike,
    *,
    n_boot: int = 2000,
    seed: int | None = 0,
    confidence: float = 0.95,
    name: str = "accuracy_change",
) -> Effect:
    """Change in accuracy caused by an intervention, relative to the clean run.

    Parameters
    ----------
    correct_clean : array-like of bool, shape (n,)
        Per-example correctness of the unmodified (clean) run.
    correct_other : array-like of bool, shape (n,)
        Per-example correctness of the intervened run on the same examples.
    n_boot, seed, confidence
        As in :func:`accuracy_difference`.
    name : str, default ``"accuracy_change"``
        Label stored in the returned :class:`Effect`.

    Returns
    -------
    Effect
        ``estimate = accuracy(other) - accuracy(clean)`` (negative when the
        intervention hurts) with Tango's paired score interval, ``n`` and the p-value of the
        score test it inverts, as in :func:`accuracy_difference`.

    Notes
    -----
    A drop in accuracy shows that the intervention disrupts the computation;
    on its own it does not show that the intervened component carries the
    reasoning (the intervention may simply push activations off-distribution).
    """
    return accuracy_difference(
        correct_other, correct_clean, n_boot=n_boot, seed=seed, confidence=confidence, name=name
    )
