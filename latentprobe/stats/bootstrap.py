"""The one bootstrap: percentile intervals over examples from one documented index draw.

Every interval resamples examples with ``numpy.random.default_rng(seed).integers(0, n,
size=(n_boot, n))`` (:func:`resample_indices`; drawn in row blocks from the same generator when
``n_boot * n > 2**24``) and takes the percentile interval of the statistic over the resamples.
A sample of identical values gets exactly ``[v, v]``.

Why not :func:`scipy.stats.bootstrap`: its percentile interval is the same estimator, but it draws
the resamples internally (in batches, through indices that are not part of its documented
interface), so the intervals here could no longer be reproduced from the documented draws (the
tests recompute them with a plain loop over ``default_rng(seed).integers``) and could change with
the scipy version. It also cannot share one draw between statistics of different inputs (TE, NDE
and NIE; the columns of :func:`bootstrap_mean_columns`; the proportion mediated), and it warns
and returns NaN-prone intervals on constant samples, where the convention here is exactly
``[v, v]``.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import numpy as np
from numpy.typing import ArrayLike

from latentprobe.errors import StatsInputError
from latentprobe.stats.effects import Effect, small_sample_note
from latentprobe.validate import as_1d_float as _as_1d_float
from latentprobe.validate import positive_int, probability
from latentprobe.validate import same_length as _check_same_length

__all__ = ["resample_indices", "bootstrap_ci", "paired_bootstrap_diff", "bootstrap_mean_columns",
           "mediation_effects"]

# Above this many resampled values the index matrix is drawn in blocks of rows
# to bound memory (at most 128 MiB of int64 indices per block).
_MAX_INDEX_ELEMENTS = 1 << 24

Statistic = Callable[..., Any]

# Statistics that return v exactly for a sample of identical values v.
_LOCATION_STATISTICS = (np.mean, np.median, np.nanmean, np.nanmedian, np.average)


def resample_indices(n: int, n_boot: int, seed: int | None) -> Iterator[np.ndarray]:
    """Yield bootstrap index matrices; rows are resamples of ``range(n)``.

    The one source of resamples of every interval in latentprobe: :func:`bootstrap_ci`,
    :func:`paired_bootstrap_diff`, :func:`bootstrap_mean_columns`, :func:`mediation_effects` and
    the proportion mediated of :func:`latentprobe.causal.summarize_mediation` all read it.

    When ``n_boot * n`` is moderate (the usual case) a single matrix
    ``np.random.default_rng(seed).integers(0, n, size=(n_boot, n))`` is
    drawn. Larger problems are drawn in row blocks from the same generator.

    Parameters
    ----------
    n : int
        Examples.
    n_boot : int
        Resamples.
    seed : int | None
        Seed.

    Returns
    -------
    Iterator[np.ndarray]
        Chunks of ``[b, n]`` indices.
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


def bootstrap_ci(
    values: ArrayLike,
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
            [_apply_statistic(statistic, x[idx]) for idx in resample_indices(n, n_boot, seed)]
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
    a: ArrayLike,
    b: ArrayLike,
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
        for idx in resample_indices(n, n_boot, seed):
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


def bootstrap_mean_columns(values: ArrayLike, *, n_boot: int = 2000, seed: int | None = 0,
                           confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and percentile bootstrap interval of every column of ``values [n, G]`` (no NaN).

    Same resamples and conventions as :func:`bootstrap_ci` with ``np.mean``
    (``default_rng(seed).integers(0, n, size=(n_boot, n))``, one draw shared by all columns;
    a constant column gets exactly ``[v, v]``): column ``j`` gives the numbers
    ``bootstrap_ci(values[:, j], n_boot=n_boot, seed=seed)`` gives.

    Parameters
    ----------
    values : array-like
        ``[n, m]`` values, one column per quantity.
    n_boot : int
        Bootstrap resamples.
    seed : int | None
        Seed of the resamples.
    confidence : float
        Confidence level.

    Returns
    -------
    (estimate, ci_low, ci_high) : three float arrays of shape ``[G]``
    """
    _check_boot_args(n_boot, confidence)
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] == 0:
        raise StatsInputError(f"`values` must be [n examples, G columns] with n >= 1, got shape {v.shape}.")
    if np.isnan(v).any():
        raise StatsInputError("`values` contains NaN; drop those cells first (summarise them one column at a time).")
    n, g = v.shape
    est = np.empty(g)
    lo = np.empty(g)
    hi = np.empty(g)
    const = np.all(v == v[:1], axis=0)
    est[const] = v[0, const]
    lo[const] = hi[const] = v[0, const]
    var = np.flatnonzero(~const)
    if var.size:
        est[var] = [float(np.mean(v[:, j])) for j in var]
        alpha = 1.0 - float(confidence)
        boots: list[list[np.ndarray]] = [[] for _ in range(var.size)]
        for idx in resample_indices(n, n_boot, seed):
            for j, col in enumerate(var):
                boots[j].append(np.mean(np.ascontiguousarray(v[:, col])[idx], axis=1))
        for j, col in enumerate(var):
            lo[col], hi[col] = np.quantile(np.concatenate(boots[j]), [alpha / 2.0, 1.0 - alpha / 2.0])
    return est, lo, hi


def mediation_effects(
    y_clean: ArrayLike,
    y_treated: ArrayLike,
    y_direct: ArrayLike,
    y_indirect: ArrayLike,
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
        np.stack([d[idx].mean(axis=1) for d in diffs]) for idx in resample_indices(n, n_boot, seed)
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


def _check_boot_args(n_boot: int, confidence: float) -> None:
    positive_int(n_boot, "n_boot", hint="bootstrap resamples; 2000 is usual", error=StatsInputError)
    probability(confidence, "confidence", hint="e.g. 0.95", error=StatsInputError)
