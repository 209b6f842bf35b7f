"""Figures of the attention-flow readout (:func:`latentprobe.readouts.attention`): mass to each region per
query step (stacked bars) and mass to one region per layer x step (heatmap).

Both take an :class:`~latentprobe.readouts.attention.AttentionResult` or its ``table``
(:class:`latentprobe.readout_schema.ATTENTION_MASS`) and average over examples (and over layers and heads
for the bars).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from latentprobe import readout_schema as RS
from latentprobe.errors import VizInputError
from latentprobe.viz import _common as C

__all__ = ["attention_regions", "attention_heatmap", "REGION_COLORS"]

_M = RS.ATTENTION_MASS
_INSTEAD = "an AttentionResult (latentprobe.readouts.attention) or its table"
#: One colour per region, the same in every figure.
REGION_COLORS: dict[str, str] = {"first": C.PALETTE[7], "system": C.GREY, "question": C.PALETTE[1],
                                 "image": C.PALETTE[2], "markers": C.PALETTE[6], "latents": C.PALETTE[0],
                                 "generated": C.PALETTE[4], "self": C.PALETTE[5]}


def _mass_table(result: Any, func: str) -> pd.DataFrame:
    df = C.table(result, func, "table", _INSTEAD)
    C.require(df, [_M.QUERY_GROUP, _M.STEP, _M.LAYER, _M.HEAD, _M.REGION, _M.MASS], func, _INSTEAD)
    return df


def _filter(df: pd.DataFrame, col: str, chosen: Sequence[Any] | None, func: str) -> pd.DataFrame:
    if chosen is None:
        return df
    out = df[df[col].isin(list(chosen))]
    if out.empty:
        raise VizInputError(f"{func}: no rows with {col} in {list(chosen)}; the table has "
                            f"{sorted(df[col].unique().tolist())}.")
    return out


def attention_regions(result: Any, *, query_groups: Sequence[str] | None = None,
                      layers: Sequence[int] | None = None,
                      title: str = "Where the query positions attend") -> go.Figure:
    """Stacked bars: for each query group and step, the mean attention mass to each region.

    Parameters
    ----------
    result : AttentionResult or pandas.DataFrame
        The readout, or its mass table.
    query_groups : sequence of str, optional
        Groups shown (default all, in the table's order).
    layers : sequence of int, optional
        Layers averaged (default all).
    title : str
        The figure's title.

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Bar`` trace per region; the bars of a step sum to 1.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"example_id": "0", "query_group": "latents", "step": [0, 0, 1, 1], "layer": 0, "head": 0,
    ...                   "region": ["image", "question"] * 2, "mass": [0.25, 0.75, 0.5, 0.5]})
    >>> fig = attention_regions(t)
    >>> [tr.name for tr in fig.data], list(fig.data[0].y)
    (['question', 'image'], [0.75, 0.5])
    """
    func = "attention_regions"
    df = _filter(_filter(_mass_table(result, func), _M.QUERY_GROUP, query_groups, func), _M.LAYER, layers, func)
    means = df.groupby([_M.QUERY_GROUP, _M.STEP, _M.REGION], sort=False, as_index=False)[_M.MASS].mean()
    order = C.ordered(means[_M.QUERY_GROUP].unique().tolist())
    cats = [(g, int(s)) for g in order for s in sorted(means.loc[means[_M.QUERY_GROUP] == g, _M.STEP].unique())]
    labels = [f"{g} {s}" for g, s in cats]
    fig = go.Figure()
    regions = [r for r in REGION_COLORS if r in set(means[_M.REGION])] + \
        [r for r in means[_M.REGION].unique() if r not in REGION_COLORS]
    for region in regions:
        sub = means[means[_M.REGION] == region].set_index([_M.QUERY_GROUP, _M.STEP])[_M.MASS]
        y = [float(sub.get((g, s), 0.0)) for g, s in cats]
        if not any(v > 0 for v in y):
            continue
        fig.add_bar(x=labels, y=y, name=region, marker_color=REGION_COLORS.get(region, C.GREY),
                    hovertemplate=f"{region}: %{{y:.3f}}<extra>%{{x}}</extra>")
    fig.update_layout(barmode="stack")
    fig.update_yaxes(range=[0, 1.0])
    return C.finish(fig, title, kind=func, x_title="query (group, step)", y_title="attention mass (mean)",
                    subtitle=f"mean over {df[RS.EXAMPLE_ID].nunique() if RS.EXAMPLE_ID in df else '?'} examples, "
                             f"{df[_M.LAYER].nunique()} layers, {df[_M.HEAD].nunique()} heads")


def attention_heatmap(result: Any, *, region: str = "image", query_group: str = "latents",
                      title: str | None = None) -> go.Figure:
    """Heatmap of the mean attention mass to ``region`` per layer (rows) and step (columns) of ``query_group``.

    Parameters
    ----------
    result : AttentionResult or pandas.DataFrame
        The readout, or its mass table.
    region : str
        The region attended to.
    query_group : str
        The query rows (``"latents"``: one column per latent step).
    title : str, optional
        The figure's title.

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Heatmap`` trace, layer 0 at the bottom, colour range 0..1.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"example_id": "0", "query_group": "latents", "step": [0, 1, 0, 1], "layer": [0, 0, 1, 1],
    ...                   "head": 0, "region": "image", "mass": [0.1, 0.2, 0.3, 0.4]})
    >>> attention_heatmap(t).data[0].z.tolist()
    [[0.1, 0.2], [0.3, 0.4]]
    """
    func = "attention_heatmap"
    df = _filter(_filter(_mass_table(result, func), _M.QUERY_GROUP, [query_group], func), _M.REGION, [region], func)
    grid = df.groupby([_M.LAYER, _M.STEP])[_M.MASS].mean().unstack(_M.STEP).sort_index()
    z = grid.to_numpy(dtype=np.float64)
    fig = go.Figure(go.Heatmap(z=z, x=[int(s) for s in grid.columns], y=[int(l) for l in grid.index], zmin=0.0,
                               zmax=1.0, colorscale=C.SEQUENTIAL, colorbar={"title": {"text": "mass"}},
                               hovertemplate="layer %{y}, step %{x}: %{z:.3f}<extra></extra>"))
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category")
    return C.finish(fig, title or f"Attention from {query_group} to {region}", kind=func,
                    x_title=f"{query_group} step", y_title="decoder layer",
                    subtitle=f"mean over examples and {df[_M.HEAD].nunique()} heads")
