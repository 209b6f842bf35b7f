"""Exact tests on paired correctness: McNemar's exact test and accuracy differences with it."""

from __future__ import annotations


import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as _scipy_stats

from latentprobe.validate import as_1d_bool as _as_1d_bool
from latentprobe.validate import same_length as _check_same_length
from latentprobe.stats.bootstrap import _method, paired_bootstrap_diff
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
    """Accuracy of A minus accuracy of B, with paired CI and McNemar p-value.

    Parameters
    ----------
    correct_a, correct_b : array-like of bool, shape (n,)
        Per-example correctness under two conditions on the same examples.
    n_boot : int, default 2000
        Number of bootstrap resamples.
    seed : int or None, default 0
        Seed of the paired bootstrap.
    confidence : float, default 0.95
        Nominal coverage of the interval.
    name : str, default ``"accuracy_difference"``
        Label stored in the returned :class:`Effect`.

    Returns
    -------
    Effect
        ``estimate = mean(correct_a) - mean(correct_b)`` (in accuracy units,
        between -1 and 1), its paired percentile bootstrap interval, ``n`` and
        ``p_value`` from :func:`mcnemar_exact`.

    Notes
    -----
    The interval and p-value concern these examples under this evaluation
    protocol; neither shows *why* the accuracies differ.
    """
    ca = _as_1d_bool(correct_a, "correct_a")
    cb = _as_1d_bool(correct_b, "correct_b")
    _check_same_length({"correct_a": ca, "correct_b": cb})
    eff = paired_bootstrap_diff(
        ca.astype(np.float64),
        cb.astype(np.float64),
        n_boot=n_boot,
        confidence=confidence,
        seed=seed,
        name=name,
    )
    mc = mcnemar_exact(ca, cb)
    notes = [eff.note] if eff.note else []
    if mc.discordant < 10:
        notes.append(f"few discordant pairs (b+c={mc.discordant}): McNemar test has little power")
    return Effect(
        name=name,
        estimate=eff.estimate,
        ci_low=eff.ci_low,
        ci_high=eff.ci_high,
        n=eff.n,
        p_value=mc.p_value,
        method=_method(confidence, n_boot, paired=True, extra="p from McNemar exact test"),
        note="; ".join(notes),
        confidence=float(confidence),
    )


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
        intervention hurts) with its paired bootstrap interval, ``n`` and the
        McNemar exact p-value.

    Notes
    -----
    A drop in accuracy shows that the intervention disrupts the computation;
    on its own it does not show that the intervened component carries the
    reasoning (the intervention may simply push activations off-distribution).
    """
    return accuracy_difference(
        correct_other, correct_clean, n_boot=n_boot, seed=seed, confidence=confidence, name=name
    )
