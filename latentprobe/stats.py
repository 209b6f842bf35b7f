"""Statistics conventions for latentprobe results.

Every effect reported by the toolkit follows the same rules:

* a point estimate together with a 95% percentile bootstrap confidence
  interval computed by resampling *examples* (the unit of replication);
* when two conditions are measured on the same examples, the bootstrap is
  *paired*: the same resampled example indices are used for both conditions,
  so example-to-example variation that is shared by the conditions cancels;
* the number of examples ``n`` is always reported;
* differences in accuracy additionally carry McNemar's exact test p-value;
* samples with fewer than :data:`SMALL_SAMPLE_N` examples carry a note saying
  that the interval is unreliable.

The bootstrap quantifies sampling variability over the examples that were
evaluated. It says nothing about variability over random seeds, prompts
templates, model checkpoints or other design choices that were held fixed,
and a percentile interval from a few dozen examples can be badly
miscalibrated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as _scipy_stats
from latentprobe.errors import StatsInputError

__all__ = [
    "SMALL_SAMPLE_N",
    "StatsInputError",
    "Effect",
    "McNemarResult",
    "effects_frame",
    "small_sample_note",
    "bootstrap_ci",
    "paired_bootstrap_diff",
    "mcnemar_exact",
    "accuracy_difference",
    "binary_outcome_effect",
    "mediation_effects",
]

#: Below this many examples an :class:`Effect` carries a small-sample note.
SMALL_SAMPLE_N = 30

# Above this many resampled values the index matrix is drawn in blocks of rows
# to bound memory (at most 128 MiB of int64 indices per block).
_MAX_INDEX_ELEMENTS = 1 << 24

Statistic = Callable[..., Any]

# Statistics that return v exactly for a sample of identical values v.
_LOCATION_STATISTICS = (np.mean, np.median, np.nanmean, np.nanmedian, np.average)




# ---------------------------------------------------------------------------
# Result containers
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Effect:
    """One estimated effect with its uncertainty.

    Attributes
    ----------
    name : str
        Label of the effect (for example ``"NIE"`` or ``"accuracy_difference"``).
    estimate : float
        Point estimate computed on the full sample.
    ci_low, ci_high : float
        Bounds of the percentile bootstrap confidence interval.
    n : int
        Number of examples the estimate is based on.
    p_value : float or None
        p-value of an accompanying exact test (McNemar for accuracy
        differences); ``None`` when no test was run.
    method : str
        Short description of how the interval (and p-value) were obtained.
    note : str
        Caveats, e.g. ``"small sample (n=12 < 30): interval is unreliable"``;
        empty when there is nothing to flag.
    confidence : float
        Nominal coverage of the interval (0.95 by default).

    Notes
    -----
    An interval that excludes zero is evidence of a non-zero effect *on the
    population the examples were drawn from, under the model and settings
    used*; it is not a multiple-comparison-corrected test, and it does not
    show that the effect is mechanistically meaningful.
    """

    name: str
    estimate: float
    ci_low: float
    ci_high: float
    n: int
    p_value: float | None
    method: str
    note: str = ""
    confidence: float = 0.95

    @property
    def excludes_zero(self) -> bool:
        """Whether the confidence interval lies strictly on one side of zero.

        Returns
        -------
        bool
            ``True`` when ``ci_low > 0`` or ``ci_high < 0``. This is not a
            correction for multiple comparisons.
        """
        return bool(self.ci_low > 0.0 or self.ci_high < 0.0)

    def to_dict(self) -> dict[str, Any]:
        """Return the effect as a flat dictionary (one row of a table).

        Returns
        -------
        dict
            Field names mapped to values, plus ``excludes_zero``.
        """
        d = asdict(self)
        d["excludes_zero"] = self.excludes_zero
        return d


@dataclass(frozen=True)
class McNemarResult:
    """Result of McNemar's exact test on paired binary outcomes.

    Attributes
    ----------
    b : int
        Number of examples where condition A is right and B is wrong.
    c : int
        Number of examples where condition A is wrong and B is right.
    n : int
        Total number of paired examples (including concordant ones).
    p_value : float
        Two-sided exact binomial p-value of ``b`` successes in ``b + c``
        trials with probability 0.5; 1.0 when ``b + c == 0``.

    Notes
    -----
    The test only uses discordant pairs. With few discordant pairs it has
    little power, so a large p-value does not show that the two conditions
    are equivalent.
    """

    b: int
    c: int
    n: int
    p_value: float

    @property
    def discordant(self) -> int:
        """Number of discordant pairs ``b + c``."""
        return self.b + self.c

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a flat dictionary."""
        return asdict(self)


def effects_frame(effects: Sequence[Effect]) -> pd.DataFrame:
    """Tidy table of effects, one row per effect.

    Parameters
    ----------
    effects : sequence of Effect
        Effects to tabulate, in the order they should appear.

    Returns
    -------
    pandas.DataFrame
        Columns ``name, estimate, ci_low, ci_high, n, p_value, method, note,
        confidence, excludes_zero``; an empty frame with these columns when
        ``effects`` is empty.
    """
    columns = [
        "name",
        "estimate",
        "ci_low",
        "ci_high",
        "n",
        "p_value",
        "method",
        "note",
        "confidence",
        "excludes_zero",
    ]
    rows = []
    for i, e in enumerate(effects):
        if not isinstance(e, Effect):
            raise StatsInputError(
                f"effects[{i}] is a {type(e).__name__}, expected an Effect; "
                "pass the objects returned by bootstrap_ci, paired_bootstrap_diff, "
                "accuracy_difference or mediation_effects."
            )
        rows.append(e.to_dict())
    frame = pd.DataFrame(rows, columns=columns)
    frame["p_value"] = frame["p_value"].astype("float64")
    return frame


def small_sample_note(n: int) -> str:
    """Caveat string for a sample of ``n`` examples.

    Parameters
    ----------
    n : int
        Number of examples.

    Returns
    -------
    str
        ``"small sample (n=<n> < 30): interval is unreliable"`` when
        ``n < SMALL_SAMPLE_N``, otherwise the empty string.
    """
    if n < SMALL_SAMPLE_N:
        return f"small sample (n={n} < {SMALL_SAMPLE_N}): interval is unreliable"
    return ""


# ---------------------------------------------------------------------------
# Input validation and bootstrap machinery
# ---------------------------------------------------------------------------


def _as_1d_float(values: Any, arg: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise StatsInputError(
            f"`{arg}` could not be converted to a float array ({exc}); pass a 1-D "
            "sequence of numbers, one per example."
        ) from exc
    if arr.ndim != 1:
        raise StatsInputError(
            f"`{arg}` must be 1-D with one value per example, got shape {arr.shape}; "
            "reduce other axes first (e.g. average over layers) or flatten explicitly."
        )
    if arr.size == 0:
        raise StatsInputError(f"`{arg}` is empty; at least one example is needed.")
    nan = np.isnan(arr)
    if nan.any():
        idx = np.flatnonzero(nan)[:5].tolist()
        raise StatsInputError(
            f"`{arg}` contains {int(nan.sum())} NaN value(s) (first at indices {idx}); "
            "drop or impute the affected examples before computing intervals "
            "(for paired inputs drop them from every condition)."
        )
    if np.isinf(arr).any():
        raise StatsInputError(
            f"`{arg}` contains infinite values; bootstrap intervals are undefined. "
            "Drop or clip those examples first."
        )
    return arr


def _as_1d_bool(values: Any, arg: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise StatsInputError(
            f"`{arg}` must be 1-D with one correctness flag per example, got shape {arr.shape}."
        )
    if arr.size == 0:
        raise StatsInputError(f"`{arg}` is empty; at least one example is needed.")
    if arr.dtype == np.bool_:
        return arr
    if arr.dtype.kind in "iuf":
        if np.all((arr == 0) | (arr == 1)):
            return arr.astype(bool)
    raise StatsInputError(
        f"`{arg}` must be boolean (or 0/1) correctness flags, got dtype {arr.dtype} "
        "with other values; compare predictions to labels first, e.g. `pred == label`."
    )


def _check_same_length(arrays: dict[str, np.ndarray]) -> int:
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) != 1:
        desc = ", ".join(f"{k}={n}" for k, n in lengths.items())
        raise StatsInputError(
            f"paired inputs must have one value per shared example, got lengths {desc}; "
            "align them on the same examples (same order) before calling."
        )
    return next(iter(lengths.values()))


def _check_boot_args(n_boot: int, confidence: float) -> None:
    if not isinstance(n_boot, (int, np.integer)) or isinstance(n_boot, bool) or n_boot < 1:
        raise StatsInputError(f"`n_boot` must be a positive integer, got {n_boot!r}.")
    if not (0.0 < float(confidence) < 1.0):
        raise StatsInputError(
            f"`confidence` must be strictly between 0 and 1 (e.g. 0.95), got {confidence!r}."
        )


def _index_blocks(n: int, n_boot: int, seed: int | None):
    """Yield bootstrap index matrices; rows are resamples of ``range(n)``.

    When ``n_boot * n`` is moderate (the usual case) a single matrix
    ``np.random.default_rng(seed).integers(0, n, size=(n_boot, n))`` is
    drawn. Larger problems are drawn in row blocks from the same generator.
    """
    rng = np.random.default_rng(seed)
    if n_boot * n <= _MAX_INDEX_ELEMENTS:
        yield rng.integers(0, n, size=(n_boot, n))
        return
    rows = max(1, _MAX_INDEX_ELEMENTS // n)
    done = 0
    while done < n_boot:
        k = min(rows, n_boot - done)
        yield rng.integers(0, n, size=(k, n))
        done += k


def _apply_statistic(statistic: Statistic, samples: np.ndarray) -> np.ndarray:
    """Apply ``statistic`` to every row of a 2-D array of resamples."""
    out = None
    try:
        out = np.asarray(statistic(samples, axis=1), dtype=np.float64)
    except TypeError:
        out = None
    if out is None or out.shape != (samples.shape[0],):
        out = np.array([float(statistic(row)) for row in samples], dtype=np.float64)
    return out


def _scalar_statistic(statistic: Statistic, values: np.ndarray, arg: str) -> float:
    if statistic in _LOCATION_STATISTICS and np.all(values == values[0]):
        # The mean/median of identical values is that value; avoid summation rounding.
        return float(values[0])
    try:
        val = float(np.asarray(statistic(values)))
    except (TypeError, ValueError) as exc:
        raise StatsInputError(
            f"`statistic` must map a 1-D array to a single number; applying it to "
            f"`{arg}` failed ({exc})."
        ) from exc
    return val


def _percentile_interval(boot: np.ndarray, confidence: float, what: str) -> tuple[float, float]:
    if not np.all(np.isfinite(boot)):
        raise StatsInputError(
            f"the statistic was not finite on some bootstrap resamples of {what}; "
            "use a statistic defined for every resample (e.g. avoid ddof=1 with n=1)."
        )
    alpha = 1.0 - float(confidence)
    lo, hi = np.quantile(boot, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(lo), float(hi)


def _method(confidence: float, n_boot: int, paired: bool, extra: str = "") -> str:
    kind = "paired percentile bootstrap" if paired else "percentile bootstrap"
    text = f"{kind} over examples ({int(round(confidence * 100))}% CI, n_boot={n_boot})"
    if extra:
        text += f"; {extra}"
    return text


# ---------------------------------------------------------------------------
# Public estimators
# ---------------------------------------------------------------------------


def bootstrap_ci(
    values: Any,
    *,
    statistic: Statistic = np.mean,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int | None = 0,
    name: str = "statistic",
) -> Effect:
    """Percentile bootstrap confidence interval of a statistic over examples.

    Parameters
    ----------
    values : array-like, shape (n,)
        One value per example. NaN or infinite values raise
        :class:`StatsInputError`.
    statistic : callable, default ``numpy.mean``
        Maps a 1-D array to a number. If it accepts ``axis=`` it is applied
        to all resamples at once, otherwise row by row.
    n_boot : int, default 2000
        Number of bootstrap resamples.
    confidence : float, default 0.95
        Nominal coverage of the interval.
    seed : int or None, default 0
        Seed for ``numpy.random.default_rng``. The resample indices are
        ``default_rng(seed).integers(0, n, size=(n_boot, n))`` (drawn in
        blocks of rows from the same generator when ``n_boot * n > 2**24``).
    name : str, default ``"statistic"``
        Label stored in the returned :class:`Effect`.

    Returns
    -------
    Effect
        ``estimate = statistic(values)``, the percentile interval,
        ``n = len(values)`` and ``p_value=None``. When all values are
        identical every resample equals the sample, so the interval is
        exactly ``[estimate, estimate]``.

    Notes
    -----
    The interval reflects resampling of the examples only; it is not a
    statement about other seeds, prompts or models, and percentile intervals
    under-cover for small ``n`` (see ``note``).
    """
    _check_boot_args(n_boot, confidence)
    x = _as_1d_float(values, "values")
    n = x.size
    estimate = _scalar_statistic(statistic, x, "values")
    if np.all(x == x[0]):
        lo = hi = estimate
    else:
        boot = np.concatenate(
            [_apply_statistic(statistic, x[idx]) for idx in _index_blocks(n, n_boot, seed)]
        )
        lo, hi = _percentile_interval(boot, confidence, "`values`")
    return Effect(
        name=name,
        estimate=estimate,
        ci_low=lo,
        ci_high=hi,
        n=n,
        p_value=None,
        method=_method(confidence, n_boot, paired=False),
        note=small_sample_note(n),
        confidence=float(confidence),
    )


def paired_bootstrap_diff(
    a: Any,
    b: Any,
    *,
    statistic: Statistic = np.mean,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int | None = 0,
    name: str = "difference",
) -> Effect:
    """Paired bootstrap interval of ``statistic(a) - statistic(b)``.

    Parameters
    ----------
    a, b : array-like, shape (n,)
        Per-example values of two conditions measured on the *same* examples,
        in the same order.
    statistic : callable, default ``numpy.mean``
        Applied to each condition separately.
    n_boot : int, default 2000
        Number of bootstrap resamples.
    confidence : float, default 0.95
        Nominal coverage of the interval.
    seed : int or None, default 0
        Seed for ``numpy.random.default_rng``; one index matrix is drawn and
        used for both ``a`` and ``b``.
    name : str, default ``"difference"``
        Label stored in the returned :class:`Effect`.

    Returns
    -------
    Effect
        ``estimate = statistic(a) - statistic(b)`` with its paired interval
        and ``n``; ``p_value=None``.

    Notes
    -----
    Pairing removes variance shared by the two conditions. It does not
    protect against confounds that differ between the conditions, and the
    interval does not correct for multiple comparisons.
    """
    _check_boot_args(n_boot, confidence)
    xa = _as_1d_float(a, "a")
    xb = _as_1d_float(b, "b")
    n = _check_same_length({"a": xa, "b": xb})
    estimate = _scalar_statistic(statistic, xa, "a") - _scalar_statistic(statistic, xb, "b")
    if np.all(xa == xa[0]) and np.all(xb == xb[0]):
        lo = hi = estimate
    else:
        parts = []
        for idx in _index_blocks(n, n_boot, seed):
            boot_a = _apply_statistic(statistic, xa[idx])
            parts.append(boot_a - _apply_statistic(statistic, xb[idx]))
        lo, hi = _percentile_interval(np.concatenate(parts), confidence, "`a` and `b`")
    return Effect(
        name=name,
        estimate=estimate,
        ci_low=lo,
        ci_high=hi,
        n=n,
        p_value=None,
        method=_method(confidence, n_boot, paired=True),
        note=small_sample_note(n),
        confidence=float(confidence),
    )


def mcnemar_exact(correct_a: Any, correct_b: Any) -> McNemarResult:
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
    correct_a: Any,
    correct_b: Any,
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
    correct_clean: Any,
    correct_other: Any,
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


def mediation_effects(
    y_clean: Any,
    y_treated: Any,
    y_direct: Any,
    y_indirect: Any,
    *,
    n_boot: int = 2000,
    seed: int | None = 0,
    confidence: float = 0.95,
    names: Sequence[str] = ("TE", "NDE", "NIE"),
) -> list[Effect]:
    """Total, natural direct and natural indirect effects with paired CIs.

    The four inputs are per-example outcomes (e.g. log-probability of the
    correct answer) of the four runs of a mediation design with input ``X``
    and mediator ``Z`` (for instance the latent reasoning tokens):

    * clean:    ``X = x``,  ``Z = Z(x)``
    * treated:  ``X = x'``, ``Z = Z(x')``
    * direct:   ``X = x'``, ``Z`` held at ``Z(x)``
    * indirect: ``X = x``,  ``Z`` set to ``Z(x')``

    Parameters
    ----------
    y_clean, y_treated, y_direct, y_indirect : array-like of float, shape (n,)
        Outcomes of the four runs on the same examples, in the same order.
    n_boot : int, default 2000
        Number of bootstrap resamples.
    seed : int or None, default 0
        Seed for the bootstrap. One index matrix is drawn and shared by all
        three effects, so their intervals are computed on the same resamples.
    confidence : float, default 0.95
        Nominal coverage of the intervals.
    names : sequence of three str, default ``("TE", "NDE", "NIE")``
        Labels of the total, direct and indirect effect.

    Returns
    -------
    list of Effect
        ``[TE, NDE, NIE]`` with, in the units of the outcome,

        * ``TE  = mean(y_treated  - y_clean)``: total effect of changing ``x`` to ``x'``;
        * ``NDE = mean(y_direct   - y_clean)``: natural direct effect, the change
          in ``X`` with the mediator held at its clean value;
        * ``NIE = mean(y_indirect - y_clean)``: natural indirect effect, the
          change transmitted through the mediator alone

        (Pearl 2001; Robins & Greenland 1992), each with a paired bootstrap
        interval and ``n``.

    Notes
    -----
    ``TE = NDE + NIE`` holds only when ``X`` and ``Z`` do not interact;
    otherwise the gap ``TE - NDE - NIE`` is an interaction term and the
    decomposition is not additive. These are effects of *interventions on
    the model's activations*: a large NIE shows the outcome depends on the
    mediator as patched, not that the model uses it in the same way on
    unpatched inputs, and patching can create off-distribution states.
    """
    _check_boot_args(n_boot, confidence)
    names = tuple(names)
    if len(names) != 3 or not all(isinstance(s, str) for s in names):
        raise StatsInputError(
            f"`names` must be three strings for (total, direct, indirect), got {names!r}."
        )
    arrays = {
        "y_clean": _as_1d_float(y_clean, "y_clean"),
        "y_treated": _as_1d_float(y_treated, "y_treated"),
        "y_direct": _as_1d_float(y_direct, "y_direct"),
        "y_indirect": _as_1d_float(y_indirect, "y_indirect"),
    }
    n = _check_same_length(arrays)
    clean = arrays["y_clean"]
    diffs = np.stack(
        [
            arrays["y_treated"] - clean,
            arrays["y_direct"] - clean,
            arrays["y_indirect"] - clean,
        ]
    )  # [3, n]
    estimates = np.array([_scalar_statistic(np.mean, d, label) for d, label in zip(diffs, names)])
    blocks = [
        np.stack([d[idx].mean(axis=1) for d in diffs]) for idx in _index_blocks(n, n_boot, seed)
    ]  # each [3, k]
    boot = np.concatenate(blocks, axis=1)
    method = _method(
        confidence, n_boot, paired=True, extra="indices shared by TE, NDE and NIE"
    )
    out = []
    for j, label in enumerate(names):
        d = diffs[j]
        if np.all(d == d[0]):
            lo = hi = float(estimates[j])
        else:
            lo, hi = _percentile_interval(boot[j], confidence, label)
        out.append(
            Effect(
                name=label,
                estimate=float(estimates[j]),
                ci_low=lo,
                ci_high=hi,
                n=n,
                p_value=None,
                method=method,
                note=small_sample_note(n),
                confidence=float(confidence),
            )
        )
    return out
