"""Figures of activation patching (:func:`latentprobe.causal.patch`): a layer x position-group heatmap per mode."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from latentprobe.errors import VizInputError
from latentprobe.viz import _common as C

__all__ = ["patching_heatmap"]

_ORDER = ("image", "question", "markers", "latents", "answer", "image|latents_frozen", "latents|image_frozen")


def patching_heatmap(result: Any, metric: str = "flip_rate", *, title: str | None = None) -> go.Figure:
    """Layer x position-group heatmap of one patching metric, one panel per mode.

    Parameters
    ----------
    result : PatchResult or DataFrame
        What :func:`latentprobe.causal.patch` returned, or its ``summary``.
    metric : str
        A summary metric (``flip_rate``, ``to_source_rate``, ``accuracy_change``, ``clean_logprob_change``,
        ``source_logprob_change``, ``kl``).
    title : str, optional
        The figure's title.

    Returns
    -------
    plotly.graph_objects.Figure

    Raises
    ------
    VizInputError
        When the summary lacks the columns or holds no row of ``metric``.

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.DataFrame({"mode": ["replay"] * 2, "position_group": ["image", "latents"], "layer": [1, 1],
    ...                   "metric": ["flip_rate"] * 2, "estimate": [1.0, 0.0], "ci_low": [0.8, 0.0],
    ...                   "ci_high": [1.0, 0.2], "p_value": [0.001, 1.0], "p_holm": [0.002, 1.0]})
    >>> fig = patching_heatmap(s)
    >>> fig.data[0].z.tolist()
    [[1.0, 0.0]]
    """
    func = "patching_heatmap"
    s = C.table(result, func, "summary", "a PatchResult (latentprobe.causal.patch) or its summary")
    C.require(s, ["mode", "position_group", "layer", "metric", "estimate"], func, "PatchResult.summary")
    known = sorted(set(s["metric"]))
    s = s[s["metric"] == metric]
    if s.empty:
        raise VizInputError(f"{func}: the summary holds no row of metric {metric!r}; choose one of {known}.")
    modes = C.ordered(list(dict.fromkeys(s["mode"])), ("replay", "propagate", "redecode"))
    fig = make_subplots(rows=1, cols=len(modes), subplot_titles=modes, shared_yaxes=True, horizontal_spacing=0.04)
    lo, hi = float(np.nanmin(s["estimate"])), float(np.nanmax(s["estimate"]))
    if metric in ("flip_rate", "to_source_rate"):
        lo, hi = 0.0, 1.0
    for i, mode in enumerate(modes, start=1):
        d = s[s["mode"] == mode]
        cols = C.ordered(list(dict.fromkeys(d["position_group"])), _ORDER)
        layers = sorted(int(v) for v in set(d["layer"]))
        z = np.full((len(layers), len(cols)), np.nan)
        text = [["" for _ in cols] for _ in layers]
        for _, r in d.iterrows():
            a, b = layers.index(int(r["layer"])), cols.index(r["position_group"])
            z[a, b] = r["estimate"]
            parts = [f"{metric} {r['estimate']:.3f}"]
            if "ci_low" in d.columns:
                parts.append(f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]")
            for k in ("p_value", "p_holm"):
                if k in d.columns and np.isfinite(r[k]):
                    parts.append(f"{k} {r[k]:.2g}")
            text[a][b] = " ".join(parts)
        fig.add_trace(go.Heatmap(z=z, x=cols, y=layers, zmin=lo, zmax=hi, colorscale="Viridis", showscale=i == 1,
                                 text=text, hovertemplate="%{x}, layer %{y}<br>%{text}<extra>" + mode + "</extra>",
                                 colorbar={"title": {"text": C.pretty(metric)}}), row=1, col=i)
    fig.update_yaxes(title_text="residual layer", row=1, col=1)
    return C.finish(fig, title or f"Activation patching: {C.pretty(metric)} by layer and position",
                    kind="patching_heatmap", height=380 + 12 * len(set(s["layer"])))
