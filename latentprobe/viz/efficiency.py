"""Figure of the decoding cost (:func:`latentprobe.efficiency.cost_summary`): per model, the mean cost per example."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from latentprobe.errors import VizInputError
from latentprobe.schema_efficiency import DECODE_COST_SUMMARY as S
from latentprobe.viz import _common as C

__all__ = ["efficiency_bars"]

_TITLES = {"decode_seconds": "seconds per example", "generated_tokens": "generated positions",
           "latent_steps": "latent steps", "text_tokens": "text positions", "answer_tokens": "answer tokens"}


def efficiency_bars(summary: pd.DataFrame, *, metrics: Sequence[str] = ("decode_seconds", "generated_tokens",
                                                                        "latent_steps"),
                    title: str = "Decoding cost per example") -> go.Figure:
    """Bars of the mean decoding cost per model (one panel per metric, 95% intervals as error bars).

    Parameters
    ----------
    summary : DataFrame
        :func:`latentprobe.efficiency.cost_summary` (:class:`~latentprobe.schema_efficiency.DECODE_COST_SUMMARY`).
    metrics : sequence of str
        Panels, left to right; metrics absent from the table are left out.
    title : str
        The figure's title.

    Returns
    -------
    plotly.graph_objects.Figure

    Raises
    ------
    VizInputError
        Not a cost summary, or none of ``metrics`` in it.

    Examples
    --------
    >>> import pandas as pd
    >>> from latentprobe import viz
    >>> s = pd.DataFrame({"model": ["monet", "plain"], "metric": "generated_tokens", "mean": [40.0, 120.0],
    ...                   "ci_low": [35.0, 100.0], "ci_high": [45.0, 140.0], "n": 10, "method": "studentized bootstrap"})
    >>> fig = viz.efficiency_bars(s)
    >>> list(fig.data[0].x), fig.layout.meta["kind"]
    (['monet', 'plain'], 'efficiency_bars')
    """
    func = "efficiency_bars"
    instead = "latentprobe.efficiency.cost_summary(decode_costs(trace))"
    df = C.table(summary, func, None, instead)
    C.require(df, [S.MODEL, S.METRIC, S.MEAN, S.CI_LOW, S.CI_HIGH], func, instead)
    shown = [m for m in metrics if (df[S.METRIC] == m).any()]
    if not shown:
        raise VizInputError(f"{func}: none of the metrics {list(metrics)} is in the table (it has "
                            f"{sorted(set(df[S.METRIC]))}); pass metrics= from those.")
    models = [str(m) for m in pd.unique(df[S.MODEL])]
    fig = make_subplots(rows=1, cols=len(shown), subplot_titles=[_TITLES.get(m, m) for m in shown],
                        horizontal_spacing=0.1 if len(shown) > 1 else 0.0)
    for j, metric in enumerate(shown, start=1):
        sub = df[df[S.METRIC] == metric].set_index(df[df[S.METRIC] == metric][S.MODEL].astype(str)).reindex(models)
        mean = sub[S.MEAN].to_numpy(dtype=np.float64)
        err = {"type": "data", "array": np.nan_to_num(sub[S.CI_HIGH].to_numpy(dtype=np.float64) - mean),
               "arrayminus": np.nan_to_num(mean - sub[S.CI_LOW].to_numpy(dtype=np.float64)), "visible": True}
        fig.add_trace(go.Bar(x=models, y=mean, error_y=err, name=_TITLES.get(metric, metric), showlegend=False,
                             marker={"color": [C.PALETTE[i % len(C.PALETTE)] for i in range(len(models))]},
                             hovertemplate="%{x}<br>" + metric + "=%{y:.4g}<extra></extra>"), row=1, col=j)
        top = np.nanmax(np.concatenate([mean, sub[S.CI_HIGH].to_numpy(dtype=np.float64)]))
        fig.update_yaxes(range=[0.0, float(top) * 1.1 if np.isfinite(top) and top > 0 else 1.0], row=1, col=j)
    fig.update_xaxes(type="category")
    return C.finish(fig, title, kind=func, subtitle="mean over examples; times from one machine and one batch size")
