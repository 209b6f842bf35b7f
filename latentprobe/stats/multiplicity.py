"""Multiple-comparison control for sweeps: adjusted p-values and simultaneous intervals.

A sweep asks one question per cell (probe layer x step x target, intervention x mode, patching
site). Reading the best cell, or every cell whose interval excludes the baseline, as a finding
inflates the error: with 20 null cells, a cell beating chance at p < 0.05 turns up in most runs
(the tests measure it). The family-wise tools here:

* :func:`adjust_pvalues`: Holm's step-down adjustment (controls the family-wise error rate, the
  chance of *any* false positive, under any dependence) and Benjamini-Hochberg's (controls the
  false discovery rate, the expected share of false positives among the cells called, under
  independence or positive dependence), through
  :func:`statsmodels.stats.multitest.multipletests`.
* :func:`simultaneous_level`: the per-cell level of Bonferroni-simultaneous intervals: ``m``
  intervals at ``1 - (1 - level)/m`` all cover together with probability at least ``level``.
* :func:`add_adjusted_columns`: the ``p_holm`` and ``p_bh`` columns of a table, one family per
  group of rows.

NaN p-values (cells without a test) stay NaN and are not counted in the family.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from statsmodels.stats.multitest import multipletests

from latentprobe.errors import StatsInputError
from latentprobe.validate import positive_int, probability

__all__ = ["ADJUSTMENTS", "adjust_pvalues", "simultaneous_level", "add_adjusted_columns"]

#: Adjustments :func:`adjust_pvalues` accepts (statsmodels' names).
ADJUSTMENTS: tuple[str, ...] = ("holm", "fdr_bh", "bonferroni")


def adjust_pvalues(p: ArrayLike, method: str = "holm") -> np.ndarray:
    """Adjusted p-values over one family of tests; a cell survives at ``alpha`` when its adjusted p <= alpha.

    Parameters
    ----------
    p : array-like of float
        Raw p-values in [0, 1]; NaN marks a cell without a test (kept NaN, left out of the family).
    method : {"holm", "fdr_bh", "bonferroni"}, default "holm"
        ``"holm"`` controls the family-wise error rate; ``"fdr_bh"`` (Benjamini-Hochberg) the false
        discovery rate; ``"bonferroni"`` the family-wise error rate, more conservatively than Holm.

    Returns
    -------
    numpy.ndarray of float64, the shape of ``p``

    Raises
    ------
    StatsInputError
        On an unknown ``method`` or p-values outside [0, 1].

    Examples
    --------
    >>> from latentprobe.stats import adjust_pvalues
    >>> adjust_pvalues([0.01, 0.04, 0.03, float("nan")], "holm").round(3).tolist()
    [0.03, 0.06, 0.06, nan]
    >>> adjust_pvalues([0.01, 0.04, 0.03], "fdr_bh").round(3).tolist()
    [0.03, 0.04, 0.04]
    """
    if method not in ADJUSTMENTS:
        raise StatsInputError(f"adjust_pvalues: unknown method {method!r}; choose one of {ADJUSTMENTS}.")
    arr = np.asarray(p, dtype=np.float64)
    out = np.full(arr.shape, np.nan)
    flat, res = arr.ravel(), out.reshape(-1)
    ok = ~np.isnan(flat)
    if np.any((flat[ok] < 0) | (flat[ok] > 1)):
        raise StatsInputError("adjust_pvalues: p-values must lie in [0, 1] (NaN for cells without a test).")
    if ok.any():
        res[ok] = _holm(flat[ok]) if method == "holm" else multipletests(flat[ok], method=method)[1]
    return out


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm's adjusted p-values, the formula of ``multipletests(p, method="holm")``.

    Computed here because statsmodels' Holm branch runs ``gc.collect()`` on every call (0.1 s with
    torch loaded, which a simulation of many sweeps cannot afford); the tests check the two agree.
    """
    order = np.argsort(p, kind="mergesort")
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * np.arange(p.size, 0, -1)))
    out = np.empty_like(adjusted)
    out[order] = adjusted
    return out


def simultaneous_level(level: float, m: int) -> float:
    """Per-interval level that makes ``m`` intervals cover together with probability >= ``level``.

    Bonferroni: ``1 - (1 - level) / m``; it holds under any dependence between the intervals.

    Parameters
    ----------
    level : float
        Joint (family-wise) coverage, e.g. 0.95.
    m : int
        Intervals in the family.

    Returns
    -------
    float

    Examples
    --------
    >>> from latentprobe.stats import simultaneous_level
    >>> simultaneous_level(0.95, 20)
    0.9975
    """
    probability(level, "level", hint="e.g. 0.95", error=StatsInputError)
    positive_int(m, "m", error=StatsInputError)
    return 1.0 - (1.0 - float(level)) / int(m)


def add_adjusted_columns(
    frame: pd.DataFrame,
    *,
    p_col: str = "p_value",
    by: Sequence[str] | None = None,
    holm_col: str = "p_holm",
    bh_col: str = "p_bh",
) -> pd.DataFrame:
    """A copy of ``frame`` with Holm and Benjamini-Hochberg adjusted p-values, one family per ``by`` group.

    Parameters
    ----------
    frame : pandas.DataFrame
        Holds ``p_col``.
    p_col : str, default "p_value"
        The raw p-values (NaN: no test).
    by : sequence of str, optional
        Columns whose values split the rows into families (e.g. ``["metric"]``: each metric's
        cells form a family). Default: all rows are one family.
    holm_col, bh_col : str
        Names of the added (or replaced) columns.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    StatsInputError
        When ``p_col`` or a ``by`` column is missing.

    Examples
    --------
    >>> import pandas as pd
    >>> from latentprobe.stats import add_adjusted_columns
    >>> t = pd.DataFrame({"metric": ["a", "a", "b"], "p_value": [0.01, 0.04, 0.04]})
    >>> add_adjusted_columns(t, by=["metric"])["p_holm"].round(3).tolist()
    [0.02, 0.04, 0.04]
    """
    missing = [c for c in (p_col, *(by or ())) if c not in frame.columns]
    if missing:
        raise StatsInputError(f"add_adjusted_columns: the table has no column(s) {missing}; it has {list(frame.columns)}.")
    out = frame.copy()
    p = out[p_col].to_numpy(dtype=np.float64)
    holm, bh = np.full(len(out), np.nan), np.full(len(out), np.nan)
    if by:
        families = out.groupby(list(by), sort=False, dropna=False).indices.values()
    else:
        families = [np.arange(len(out))]
    for rows in families:
        holm[rows] = adjust_pvalues(p[rows], "holm")
        bh[rows] = adjust_pvalues(p[rows], "fdr_bh")
    out[holm_col], out[bh_col] = holm, bh
    return out
