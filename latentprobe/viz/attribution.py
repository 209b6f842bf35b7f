"""The layer x position heatmap of attribution patching (:func:`latentprobe.causal.attribution_patching`).

Examples with different prompt lengths are aligned by position *within its group* (``latent 0``,
``image 3``, ``text 5``): the column of a cell is its group and its index in that group.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from latentprobe import schema as S
from latentprobe.errors import VizInputError
from latentprobe.viz import _common as C

__all__ = ["attribution_heatmap"]

_WHAT = "an AttributionResult (latentprobe.causal.attribution_patching) or its .table"


def attribution_heatmap(result: Any, *, value: str = "attribution",
                        title: str = "Where patching from the counterfactual moves the answer (attribution patching)"
                        ) -> go.Figure:
    """Mean over examples of the estimate (or the exact effect) per residual layer x position.

    Parameters
    ----------
    result : AttributionResult or its ``table``
        Columns :class:`latentprobe.schema.ATTRIBUTION`.
    value : str
        ``"attribution"`` (the first-order estimate) or ``"effect"`` (exact patching, verified cells only).
    title : str
        The figure's title.

    Returns
    -------
    plotly.graph_objects.Figure

    Raises
    ------
    VizInputError
        For another object, a missing column or an unknown ``value``.

    Examples
    --------
    >>> from latentprobe import toy, viz
    >>> from latentprobe.causal import attribution_patching
    >>> tm = toy.load("bypass")
    >>> res = attribution_patching(tm.runner(), toy.toy_inputs(tm.examples("test", 2)), toy.Counterfactual(seed=0))
    >>> viz.attribution_heatmap(res).layout.meta["kind"]
    'attribution_heatmap'
    """
    A = S.ATTRIBUTION
    if value not in (A.ATTRIBUTION, A.EFFECT):
        raise VizInputError(f"attribution_heatmap(value={value!r}): use 'attribution' or 'effect'.")
    t = C.table(result, "attribution_heatmap", "table", _WHAT)
    C.require(t, [A.EXAMPLE_ID, A.LAYER, A.POSITION_GROUP, A.POSITION, value], "attribution_heatmap", _WHAT)
    t = t[np.isfinite(t[value].to_numpy(dtype=float))]
    if t.empty:
        raise VizInputError(f"attribution_heatmap: no finite {value!r} values (with value='effect', run "
                            "attribution_patching with verify_top=...).")
    t = t.sort_values([A.EXAMPLE_ID, A.LAYER, A.POSITION])
    idx = t.groupby([A.EXAMPLE_ID, A.LAYER, A.POSITION_GROUP]).cumcount()
    t = t.assign(cell=t[A.POSITION_GROUP] + " " + idx.astype(str))
    order = list(dict.fromkeys(t.sort_values([A.POSITION]).cell))
    m = t.pivot_table(index=A.LAYER, columns="cell", values=value, aggfunc="mean").reindex(columns=order)
    z = m.to_numpy(dtype=float)
    lim = float(np.nanmax(np.abs(z))) or 1.0
    fig = go.Figure(go.Heatmap(z=z, x=list(m.columns), y=[str(l) for l in m.index], zmin=-lim, zmax=lim,
                               colorscale="RdBu", reversescale=True, colorbar={"title": {"text": value}},
                               hovertemplate="layer %{y}<br>%{x}<br>%{z:.3f}<extra></extra>"))
    n = t[A.EXAMPLE_ID].nunique()
    return C.finish(fig, title, kind="attribution_heatmap", x_title="position (group and index in the group)",
                    y_title="residual layer", subtitle=f"mean over {n} example(s) of the {value}")
