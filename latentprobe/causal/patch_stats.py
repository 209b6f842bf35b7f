"""Summary of activation patching: per-cell intervals, tests and multiplicity-adjusted p-values.

Every cell (mode x position group x layer) is compared with the same mode's unpatched control on the
same examples. ``flip_rate`` and ``to_source_rate`` get Wilson intervals
(:func:`latentprobe.stats.one_sample_ci`) and, as p-value, the paired score test of "no change" from
:func:`latentprobe.stats.paired_difference_ci` on (control flips = 0, cell flips) (the McNemar score test);
``accuracy_change`` and the log-prob changes get :func:`~latentprobe.stats.paired_difference_ci` (Tango's
score interval for 0/1 outcomes, the studentised bootstrap otherwise); ``kl`` a one-sample interval.
Holm and Benjamini-Hochberg adjusted p-values are computed over the cells of each metric
(:func:`latentprobe.stats.adjust_pvalues`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from latentprobe import stats as _stats
from latentprobe.causal.patch_schema import PATCH_ROWS, PATCH_SUMMARY
from latentprobe.display import SummarizedResult

__all__ = ["PatchResult", "summarize_patching"]


def _row(iv: Any, **keys: Any) -> dict[str, Any]:
    T = PATCH_SUMMARY
    return {**keys, T.ESTIMATE: iv.estimate, T.CI_LOW: iv.low, T.CI_HIGH: iv.high, T.N: iv.n,
            T.P_VALUE: np.nan if iv.p_value is None else iv.p_value, T.METHOD: iv.method, T.NOTE: iv.note}


def summarize_patching(table: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0, ci: float = 0.95) -> pd.DataFrame:
    """One row per mode x position group x layer x metric (:data:`~latentprobe.causal.patch_schema.PATCH_METRICS`).

    Parameters
    ----------
    table : DataFrame
        :class:`~latentprobe.causal.patch_schema.PATCH_ROWS`.
    n_boot : int
        Bootstrap resamples of continuous intervals.
    seed : int
        Their seed.
    ci : float
        Nominal coverage.

    Returns
    -------
    DataFrame
        :class:`~latentprobe.causal.patch_schema.PATCH_SUMMARY`.
    """
    R, T = PATCH_ROWS, PATCH_SUMMARY
    out: list[dict[str, Any]] = []
    kw = {"level": ci, "seed": seed, "n_boot": n_boot}
    cells = table[table[R.POSITION_GROUP] != "none"]
    for (mode, g, layer), d in cells.groupby([R.MODE, R.POSITION_GROUP, R.LAYER], sort=False):
        keys = {T.MODE: mode, T.POSITION_GROUP: g, T.LAYER: int(layer)}
        for metric, col in (("flip_rate", R.FLIP), ("to_source_rate", R.TO_SOURCE)):
            x = d[col].to_numpy(dtype=float)
            iv = _stats.one_sample_ci(x, **kw)
            test = _stats.paired_difference_ci(np.zeros_like(x), x, **kw)
            out.append({**_row(iv, **{T.METRIC: metric}, **keys), T.P_VALUE: test.p_value})
        pairs = [("accuracy_change", R.REF_CORRECT, R.CORRECT), ("clean_logprob_change", R.REF_CLEAN_LOGPROB,
                 R.CLEAN_LOGPROB), ("source_logprob_change", R.REF_SOURCE_LOGPROB, R.SOURCE_LOGPROB)]
        for metric, before, after in pairs:
            ok = d[before].notna() & d[after].notna()
            if ok.sum() >= 2:
                iv = _stats.paired_difference_ci(d.loc[ok, before].to_numpy(float), d.loc[ok, after].to_numpy(float), **kw)
                out.append(_row(iv, **{T.METRIC: metric}, **keys))
        kl = d[R.KL].dropna().to_numpy(float)
        if len(kl) >= 2:
            out.append(_row(_stats.one_sample_ci(kl, **kw), **{T.METRIC: "kl"}, **keys))
    if not out:
        return T.empty()
    raw = pd.DataFrame(out)
    raw[T.P_HOLM] = np.nan
    raw[T.P_BH] = np.nan
    for _, idx in raw.groupby(T.METRIC, sort=False).groups.items():
        raw.loc[idx, T.P_HOLM] = _stats.adjust_pvalues(raw.loc[idx, T.P_VALUE].to_numpy(float), "holm")
        raw.loc[idx, T.P_BH] = _stats.adjust_pvalues(raw.loc[idx, T.P_VALUE].to_numpy(float), "fdr_bh")
    frame = T.frame(raw.to_dict("records"))
    return frame


@dataclass(frozen=True, eq=False, repr=False)
class PatchResult(SummarizedResult):
    """Result of :func:`latentprobe.causal.patch`.

    Attributes
    ----------
    table : DataFrame
        :class:`~latentprobe.causal.patch_schema.PATCH_ROWS`: one row per example x mode x position group x layer,
        with the control as ``position_group == "none"``.
    summary : DataFrame
        :class:`~latentprobe.causal.patch_schema.PATCH_SUMMARY`: intervals, p-values, Holm and BH adjusted.
    config : dict
        Every setting; ``skipped``: the cells a mode could not patch, and why.
    """

    table: pd.DataFrame
    summary: pd.DataFrame
    config: dict[str, Any]

    def grid(self, metric: str = "flip_rate", mode: str = "replay") -> pd.DataFrame:
        """``metric``'s estimate as a layer x position-group frame (one mode).

        Parameters
        ----------
        metric : str
            A summary metric.
        mode : str
            The mode.

        Returns
        -------
        DataFrame
        """
        T = PATCH_SUMMARY
        s = self.summary[(self.summary[T.METRIC] == metric) & (self.summary[T.MODE] == mode)]
        return s.pivot(index=T.LAYER, columns=T.POSITION_GROUP, values=T.ESTIMATE)
