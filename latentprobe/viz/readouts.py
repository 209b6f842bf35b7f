"""Figures of the readouts (:mod:`latentprobe.readouts`): the lens's rank trajectory of a target token per
latent step x layer.

Every figure takes the result the readout returns (or its table) and reads its columns from
:mod:`latentprobe.readouts.tables`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from latentprobe.errors import VizInputError
from latentprobe.readouts.tables import LENS_TRAJECTORY
from latentprobe.viz import _common as C

__all__ = ["lens_rank_heatmap"]

_LENS = "a LensResult (latentprobe.readouts.lens), its .trajectory, or the [analyses.lens] result"


def lens_rank_heatmap(result: Any, target: str = "answer", *, group: str = "latents",
                      title: str | None = None) -> go.Figure:
    """Rank trajectory of a target token under the lens: median rank over examples per layer x latent step.

    Parameters
    ----------
    result : LensResult, its ``trajectory`` table, or a mapping holding ``"trajectory"``
        Columns :class:`latentprobe.readouts.tables.LENS_TRAJECTORY`.
    target : str
        ``"answer"`` (the run's own answer's first token), ``"gold"`` or a user-given target.
    group : str
        The position group (default the latents; ``"answer"``, ``"close"``, ... where they were read).
    title : str, optional
        The figure's title.

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Heatmap`` (rows = residual layers, columns = steps), coloured by log10 of the median rank
        (0 = top-1); the hover shows the rank, the mean log-probability and the share of examples whose top-1 it is.

    Raises
    ------
    VizInputError
        A table without the trajectory's columns, or a target / group it does not hold.

    Examples
    --------
    >>> from latentprobe import readouts, toy, viz
    >>> tm = toy.load("mediated")
    >>> ex = tm.examples("test", 3)
    >>> runner = tm.runner()
    >>> res = readouts.lens(runner, runner.run(tm.prompts(ex), tm.images(ex), progress=False))
    >>> np.asarray(viz.lens_rank_heatmap(res).data[0].z).shape  # layers x steps
    (5, 4)
    """
    func = "lens_rank_heatmap"
    if isinstance(result, pd.DataFrame):
        df = result
    elif isinstance(result, dict) and "trajectory" in result:
        df = result["trajectory"]
    else:
        df = C.table(result, func, "trajectory", _LENS)
    cols = LENS_TRAJECTORY
    C.require(df, [cols.POSITION_GROUP, cols.TARGET, cols.STEP, cols.LAYER, cols.MEDIAN_RANK], func, _LENS)
    sub = df[(df[cols.TARGET] == target) & (df[cols.POSITION_GROUP] == group)]
    if sub.empty:
        have = sorted({f"{g}/{t}" for g, t in zip(df[cols.POSITION_GROUP], df[cols.TARGET])})
        raise VizInputError(f"{func}: no rows for target {target!r} at position group {group!r}; the table holds "
                            f"{', '.join(have) or 'nothing'} (group/target).")
    layers = sorted(pd.unique(sub[cols.LAYER]))
    steps = sorted(pd.unique(sub[cols.STEP]))
    index = pd.MultiIndex.from_frame(sub[[cols.LAYER, cols.STEP]])

    def pivot(col: str) -> np.ndarray:
        s = pd.Series(C.num(sub, col, func), index=index)
        return s.unstack(cols.STEP).reindex(index=layers, columns=steps).to_numpy(dtype=np.float64)

    rank = pivot(cols.MEDIAN_RANK)
    custom = np.stack([rank, pivot(cols.MEAN_LOGPROB), pivot(cols.TOP1_RATE)], axis=-1)
    z = np.log10(rank)
    fig = go.Figure(go.Heatmap(
        z=z, x=[str(s) for s in steps], y=[str(v) for v in layers], zmin=0.0,
        zmax=max(1.0, float(np.nanmax(z))) if np.isfinite(z).any() else 1.0, colorscale=C.SEQUENTIAL,
        reversescale=True, colorbar={"title": {"text": "log10 median rank<br>(0 = top-1)"}}, customdata=custom,
        hovertemplate=("layer %{y}, step %{x}<br>median rank %{customdata[0]:.1f}<br>mean log p "
                       "%{customdata[1]:.2f}<br>top-1 in %{customdata[2]:.0%} of examples<extra></extra>"),
        texttemplate="%{customdata[0]:.0f}" if len(layers) * len(steps) <= 300 else None, xgap=1, ygap=1,
    ))
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category")
    n = int(sub[cols.N].max()) if cols.N in sub.columns and len(sub) else 0
    x_title = "latent step" if group == "latents" else f"{group.replace('_', ' ')} index"
    return C.finish(fig, title or f"Lens rank of the {target} token by layer and step ({group})", kind=func,
                    x_title=x_title, y_title="residual layer",
                    subtitle=f"median over {n} example(s); read out, not shown to be used")
