"""Figure of the step-structure analysis (:func:`latentprobe.causal.step_influence`): the influence matrix."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from latentprobe.errors import VizInputError
from latentprobe.viz import _common as C

__all__ = ["influence_heatmap"]

_ANSWER_TITLES = {"flip": "answer flip rate", "gold_logprob_change": "gold log-prob change",
                  "correct": "accuracy"}


def influence_heatmap(result: Any, *, metric: str = "one_minus_cos", answer_metric: str = "flip",
                      title: str = "Step → step influence", annotate: bool | None = None) -> go.Figure:
    """Heatmap of the K x K influence matrix (row: step ``i`` intervened on; column: latent ``z_j``), with the
    answer column beside it.

    Parameters
    ----------
    result : StepResult or DataFrame
        A :func:`~latentprobe.causal.step_influence` result, or its ``matrix()`` (columns ``z_0..`` and ``answer``).
    metric : str
        ``"one_minus_cos"`` or ``"rel_l2"``: the latent change shown (0 = unchanged).
    answer_metric : str
        The answer column: ``"flip"``, ``"gold_logprob_change"`` or ``"correct"``.
    title : str
        The figure's title.
    annotate : bool, optional
        Print the values in the cells (default when K <= 16).

    Returns
    -------
    plotly.graph_objects.Figure
        Two heatmaps: the latents (K x K) and the answer (K x 1).

    Examples
    --------
    >>> import pandas as pd
    >>> from latentprobe import viz
    >>> m = pd.DataFrame([[0.5, 0.2, 1.0], [0.0, 0.4, 0.0]], columns=["z_0", "z_1", "answer"])
    >>> fig = viz.influence_heatmap(m)
    >>> [t.type for t in fig.data], fig.layout.meta["kind"]
    (['heatmap', 'heatmap'], 'influence_heatmap')
    """
    func = "influence_heatmap"
    m = result.matrix(metric, answer_metric) if hasattr(result, "matrix") else result
    if not isinstance(m, pd.DataFrame) or "answer" not in m.columns:
        raise VizInputError(f"{func}: expected a StepResult (latentprobe.causal.step_influence) or its matrix(), a "
                            f"DataFrame with columns z_0.. and 'answer'; got {type(result).__name__}.")
    zcols = [c for c in m.columns if c != "answer"]
    k = len(zcols)
    if k == 0 or len(m) != k:
        raise VizInputError(f"{func}: the matrix has {len(m)} rows and {k} latent columns; it must be K x K plus "
                            "'answer'.")
    z = m[zcols].to_numpy(dtype=np.float64, na_value=np.nan)
    a = m[["answer"]].to_numpy(dtype=np.float64, na_value=np.nan)
    rows = [f"do(z_{i})" for i in range(k)]
    if annotate is None:
        annotate = k <= 16
    text = "%{z:.2f}" if annotate else None
    fig = make_subplots(rows=1, cols=2, column_widths=[0.82, 0.18], horizontal_spacing=0.08,
                        subplot_titles=(f"latent change ({metric})", _ANSWER_TITLES.get(answer_metric, answer_metric)))
    fig.add_trace(go.Heatmap(z=z, x=zcols, y=rows, zmin=0.0, colorscale=C.SEQUENTIAL, texttemplate=text, xgap=1,
                             ygap=1, colorbar={"title": {"text": metric}, "x": 0.78},
                             hovertemplate="%{y} → %{x}<br>" + metric + "=%{z:.4f}<extra></extra>"), row=1, col=1)
    diverging = answer_metric == "gold_logprob_change"
    fig.add_trace(go.Heatmap(z=a, x=["answer"], y=rows, colorscale=C.DIVERGING if diverging else C.SEQUENTIAL,
                             zmid=0.0 if diverging else None, zmin=None if diverging else 0.0,
                             zmax=None if diverging else 1.0, texttemplate=text, xgap=1, ygap=1,
                             colorbar={"title": {"text": answer_metric}, "x": 1.02},
                             hovertemplate="%{y} → answer<br>" + answer_metric + "=%{z:.3f}<extra></extra>"),
                  row=1, col=2)
    fig.update_yaxes(type="category", autorange="reversed")
    fig.update_xaxes(type="category")
    return C.finish(fig, title, kind=func, x_title=None, y_title=None,
                    subtitle="mean over examples; entries left of the diagonal are the untouched prefix (exactly 0)")
