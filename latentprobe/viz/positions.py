"""Figure of :func:`latentprobe.geometry.position_similarity`: per layer and position group, the mean cosine
between instances and their spread around the group's mean."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from latentprobe.schema_similarity import POSITION_SIMILARITY as S
from latentprobe.viz import _common as C

__all__ = ["position_similarity_lines"]


def position_similarity_lines(result: Any, *, title: str = "Similarity between instances per position group",
                              subtitle: str | None = "raw cosine; spread: share of the second moment off the "
                                                     "group's mean") -> go.Figure:
    """Lines over layers of each position group's mean cosine between instances (95% band) and of its spread.

    Parameters
    ----------
    result : PositionSimilarityResult or DataFrame
        :func:`latentprobe.geometry.position_similarity` or its ``table``
        (:class:`~latentprobe.schema_similarity.POSITION_SIMILARITY`).
    title : str
        The figure's title.
    subtitle : str | None
        A line under the title (``None``: none).

    Returns
    -------
    plotly.graph_objects.Figure
        Two panels: per group a band and a line of ``mean_offdiag``, and a line of ``spread``.

    Raises
    ------
    VizInputError
        Not a position-similarity table.

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe import geometry, viz
    >>> rng = np.random.default_rng(0)
    >>> feats = {"latents": rng.normal(size=(10, 2, 3, 8)) + 2.0, "image": rng.normal(size=(10, 2, 8))}
    >>> fig = viz.position_similarity_lines(geometry.position_similarity(feats))
    >>> [t.name for t in fig.data if t.showlegend is not False], fig.layout.meta["kind"]
    (['latents', 'image'], 'position_similarity_lines')
    """
    func = "position_similarity_lines"
    instead = "a PositionSimilarityResult (latentprobe.geometry.position_similarity) or its .table"
    df = C.table(result, func, "table", instead)
    C.require(df, [S.POSITION_GROUP, S.LAYER, S.MEAN_OFFDIAG, S.CI_LOW, S.CI_HIGH, S.SPREAD], func, instead)
    fig = make_subplots(rows=1, cols=2, subplot_titles=["mean cosine between instances",
                                                        "spread (share off the mean)"], horizontal_spacing=0.12)
    names = C.ordered([str(g) for g in pd.unique(df[S.POSITION_GROUP])], first=("latents",))
    palette = C.colors(names)
    for name in names:
        sub = df[df[S.POSITION_GROUP].astype(str) == name]
        C.line_with_band(fig, sub, x=S.LAYER, y=S.MEAN_OFFDIAG, name=name, color=palette[name], func=func, row=1,
                         col=1)
        C.line_with_band(fig, sub, x=S.LAYER, y=S.SPREAD, name=name, color=palette[name], func=func, lo="-",
                         hi="-", showlegend=False, row=1, col=2)
    drawn = np.concatenate([C.num(df, c, func) for c in (S.MEAN_OFFDIAG, S.CI_LOW, S.CI_HIGH)])
    C.set_range(fig, "cosine", drawn, row=1, col=1)
    fig.update_yaxes(range=[0.0, 1.0], autorange=False, row=1, col=2)
    fig.update_xaxes(dtick=1, title_text="residual layer")
    return C.finish(fig, title, kind=func, subtitle=subtitle)
