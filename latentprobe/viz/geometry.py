"""Figures of the geometry analyses: step x step similarity, consecutive steps, across instances,
collapse statistics and norms (:mod:`latentprobe.geometry`).

Every figure takes the result the analysis returns (or its table) and reads its columns from
:mod:`latentprobe.schema`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from latentprobe import schema as S
from latentprobe.errors import VizInputError
from latentprobe.viz import _common as C

if TYPE_CHECKING:  # pragma: no cover
    from latentprobe.causal.results import XZResult
    from latentprobe.geometry.instances import AcrossInstancesResult, WithinInstanceResult

__all__ = ["similarity_heatmap", "consecutive_similarity", "across_instance_summary", "collapse_bars",
           "norm_profile"]

_SERIES = (S.SOURCE, S.CENTERING, S.XZ_ACROSS.LAYER, S.XZ_ACROSS.CENTER)


def similarity_heatmap(
    matrix: WithinInstanceResult | AcrossInstancesResult | np.ndarray | pd.DataFrame,
    *,
    step: int = 0,
    labels: Sequence[Any] | None = None,
    title: str = "Cosine similarity between latent steps",
    zmin: float | None = -1.0,
    zmax: float | None = 1.0,
    axis_title: str | None = None,
    colorbar_title: str = "cosine",
    annotate: bool | None = None,
    subtitle: str | None = None,
) -> go.Figure:
    """Heatmap of a square similarity matrix (step x step cosine, CKA, one step's n x n).

    Parameters
    ----------
    matrix : WithinInstanceResult, AcrossInstancesResult, array-like (K, K) or DataFrame
        A :func:`~latentprobe.geometry.within_instance` result (its ``step_matrix``), an
        :func:`~latentprobe.geometry.across_instances` result (its ``matrices[step]``),
        ``cka_matrix(...)`` (pass ``zmin=0``) or any square matrix.  A DataFrame's columns are
        used as labels.
    step : int, default 0
        Latent step shown for an ``AcrossInstancesResult``.
    labels : sequence, optional
        Tick labels; default ``0..K-1``.
    zmin, zmax : float or None
        Colour range (default -1..1, the range of a cosine).  A range that includes 0 uses a
        diverging scale centred at 0, otherwise Viridis.
    annotate : bool, optional
        Print values in the cells; default when K <= 16.
    title : str
        The figure's title.
    subtitle : str | None
        A line under the title (``None``: none).
    axis_title : str | None
        Both axes' title (default: the steps' name).
    colorbar_title : str
        The colour bar's title.

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Heatmap`` trace; row 0 at the top.

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe import viz
    >>> from latentprobe.geometry import within_instance
    >>> res = within_instance(np.random.default_rng(0).normal(size=(8, 4, 16)), n_boot=50)
    >>> fig = viz.similarity_heatmap(res)
    >>> fig.data[0].type, np.asarray(fig.data[0].z).shape
    ('heatmap', (4, 4))
    """
    func = "similarity_heatmap"
    instead = ("a WithinInstanceResult, an AcrossInstancesResult (with step=...) or a square matrix "
               "such as cka_matrix(...)")
    if axis_title is None:
        axis_title = "latent step"
    if hasattr(matrix, "step_matrix") and not isinstance(matrix, (np.ndarray, pd.DataFrame)):
        matrix = matrix.step_matrix
    elif hasattr(matrix, "matrices") and hasattr(matrix, "per_instance"):
        if matrix.matrices is None:
            raise VizInputError(f"{func}: the AcrossInstancesResult holds no matrices (n exceeded max_matrix); "
                                "rerun across_instances with a larger max_matrix.")
        if not 0 <= step < matrix.matrices.shape[0]:
            raise VizInputError(f"{func}: step={step} is out of range; the result has "
                                f"{matrix.matrices.shape[0]} steps.")
        matrix = matrix.matrices[step]
        axis_title = "instance"
        if subtitle is None:
            subtitle = f"latent step {step}"
    if isinstance(matrix, pd.DataFrame):
        if labels is None:
            labels = list(matrix.columns)
        matrix = matrix.to_numpy(dtype=np.float64, na_value=np.nan)
    if hasattr(matrix, "detach"):  # torch tensor
        matrix = matrix.detach().cpu().float().numpy()
    try:
        arr = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        raise VizInputError(f"{func}: expected {instead}, got {type(matrix).__name__}.") from None
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] == 0:
        hint = " For a stack (K, n, n) pass one step, e.g. matrices[k]." if arr.ndim == 3 else ""
        raise VizInputError(f"{func}: expected a non-empty square matrix, got shape {arr.shape}.{hint} "
                            f"Pass {instead}.")
    k = arr.shape[0]
    labels = [str(v) for v in (range(k) if labels is None else labels)]
    if len(labels) != k:
        raise VizInputError(f"{func}: {len(labels)} labels for a {k} x {k} matrix.")
    if annotate is None:
        annotate = k <= 16
    diverging = zmin is not None and zmax is not None and zmin < 0 < zmax
    trace = go.Heatmap(
        z=arr, x=labels, y=labels, zmin=zmin, zmax=zmax, zmid=0.0 if diverging else None,
        colorscale=C.DIVERGING if diverging else C.SEQUENTIAL, colorbar={"title": {"text": colorbar_title}},
        hovertemplate=f"{axis_title} %{{y}} vs %{{x}}<br>{colorbar_title}=%{{z:.3f}}<extra></extra>",
        texttemplate="%{z:.2f}" if annotate else None, xgap=1, ygap=1,
    )
    fig = go.Figure(trace)
    fig.update_xaxes(type="category", constrain="domain")
    fig.update_yaxes(type="category", autorange="reversed", scaleanchor="x", constrain="domain")
    return C.finish(fig, title, kind=func, x_title=axis_title, y_title=axis_title, subtitle=subtitle)


def consecutive_similarity(
    result: WithinInstanceResult | pd.DataFrame | Mapping[str, WithinInstanceResult | pd.DataFrame],
    *,
    by: str | Sequence[str] | None = None,
    title: str = "Cosine similarity of consecutive latent steps",
    x_title: str = "latent step k",
    y_title: str = "cosine(step k−1, step k)",
    subtitle: str | None = None,
) -> go.Figure:
    """Consecutive-step cosine per step, with its CI band, for one or several series.

    Parameters
    ----------
    result : WithinInstanceResult, its ``consecutive`` table, or a mapping name -> either
        Columns :class:`latentprobe.schema.CONSECUTIVE`.  A mapping ``{"latent": res,
        "text_tokens": res_text}`` is stacked with its keys as ``source``.
    by : column name(s), optional
        Series columns; default ``source`` and ``centering`` where they take several values.
    title : str
        The figure's title.
    subtitle : str | None
        A line under the title (``None``: none).
    x_title : str
        The x axis' title.
    y_title : str
        The y axis' title.

    Returns
    -------
    plotly.graph_objects.Figure
        Per series a CI band trace (when any bound is finite) and a line trace.

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe import viz
    >>> from latentprobe.geometry import within_instance
    >>> res = within_instance(np.random.default_rng(0).normal(size=(8, 4, 16)), n_boot=50)
    >>> fig = viz.consecutive_similarity(res)
    >>> [t.fill for t in fig.data], len(fig.data[1].y)
    (['toself', None], 3)
    """
    func = "consecutive_similarity"
    instead = "a WithinInstanceResult (latentprobe.geometry.within_instance), its .consecutive, or a mapping of them"
    attr = "consecutive"
    df = C.table(C.stack_mapping(result, func, attr, S.SOURCE, instead), func, attr, instead)
    cols = S.CONSECUTIVE
    C.require(df, [cols.STEP, cols.MEAN, cols.CI_LOW, cols.CI_HIGH], func, instead)
    series = C.auto_by(df, by, (S.SOURCE, S.CENTERING), func, instead)
    grouped = C.groups(df, series)
    labels = [name if name is not None else C.default_label(sub, "consecutive cosine") for name, sub in grouped]
    palette = C.colors(labels)
    fig = go.Figure()
    for (_, sub), label in zip(grouped, labels):
        dash = "dash" if S.CENTERING in series and sub[S.CENTERING].iloc[0] == S.CENTERINGS[1] else None
        C.line_with_band(fig, sub, x=cols.STEP, y=cols.MEAN, name=label, color=palette[label], func=func, dash=dash)
    fig.update_xaxes(dtick=1)
    C.set_range(fig, "cosine", np.concatenate([C.num(df, c, func) for c in (cols.MEAN, cols.CI_LOW, cols.CI_HIGH)]))
    return C.finish(fig, title, kind=func, x_title=x_title, y_title=y_title, subtitle=subtitle)


def across_instance_summary(
    result: AcrossInstancesResult | XZResult | pd.DataFrame | Mapping[str, Any],
    *,
    by: str | Sequence[str] | None = None,
    by_group: pd.DataFrame | None = None,
    title: str = "Mean cosine similarity between different instances, per latent step",
    x_title: str = "latent step",
    y_title: str = "mean cosine (pairs of distinct instances)",
    subtitle: str | None = None,
) -> go.Figure:
    """Across-instance mean cosine per step with CI band; optionally same- vs different-group lines.

    Parameters
    ----------
    result : AcrossInstancesResult, XZResult, a table, or a mapping name -> result
        An :func:`~latentprobe.geometry.across_instances` result (its ``summary`` and
        ``by_group``), an :func:`~latentprobe.causal.x_to_z` result (its ``across`` table: one
        series per layer and centring), or one of those tables (:class:`~latentprobe.schema.ACROSS_SUMMARY`,
        :class:`~latentprobe.schema.XZ_ACROSS`).  A mapping is stacked with its keys as ``source``.
    by : column name(s), optional
        Series columns; default those of ``source``, ``centering``, ``layer``, ``center`` that vary.
    by_group : DataFrame, optional
        :class:`~latentprobe.schema.ACROSS_BY_GROUP` table; drawn as dotted / dash-dot lines.
    title : str
        The figure's title.
    subtitle : str | None
        A line under the title (``None``: none).
    x_title : str
        The x axis' title.
    y_title : str
        The y axis' title.

    Returns
    -------
    plotly.graph_objects.Figure
        Per series a CI band trace (when any bound is finite) and a line trace, plus two line
        traces per series of ``by_group``.

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe import viz
    >>> from latentprobe.geometry import across_instances
    >>> lat = np.random.default_rng(0).normal(size=(12, 3, 16))
    >>> res = across_instances(lat, groups=[i % 3 for i in range(12)], n_boot=50)
    >>> [t.name for t in viz.across_instance_summary(res).data][1:]
    ['all pairs', 'same-group cosine', 'different-group cosine']
    """
    func = "across_instance_summary"
    instead = ("an AcrossInstancesResult (latentprobe.geometry.across_instances), an XZResult, "
               "their .summary / .across table, or a mapping of results")
    if isinstance(result, pd.DataFrame) or isinstance(result, Mapping):
        pass
    elif isinstance(getattr(result, "across", None), pd.DataFrame):  # XZResult
        result = result.across
    elif by_group is None and hasattr(result, "by_group"):
        by_group = result.by_group
    df = C.table(C.stack_mapping(result, func, "summary", S.SOURCE, instead), func, "summary", instead)
    cols = S.ACROSS_SUMMARY
    C.require(df, [cols.STEP, cols.MEAN_OFFDIAG, cols.CI_LOW, cols.CI_HIGH], func, instead)
    series = C.auto_by(df, by, _SERIES, func, instead)
    grouped = C.groups(df, series)
    labels = [name if name is not None else C.default_label(sub, "all pairs") for name, sub in grouped]
    palette = C.colors(labels)
    fig = go.Figure()
    for (_, sub), label in zip(grouped, labels):
        C.line_with_band(fig, sub, x=cols.STEP, y=cols.MEAN_OFFDIAG, name=label, color=palette[label], func=func)
    if by_group is not None:
        g = S.ACROSS_BY_GROUP
        bg = C.table(by_group, func + " (by_group)", None, "AcrossInstancesResult.by_group")
        C.require(bg, [g.STEP, g.WITHIN_GROUP_MEAN, g.BETWEEN_GROUP_MEAN], func + " (by_group)",
                  "AcrossInstancesResult.by_group (across_instances(..., groups=...))")
        for name, sub in C.groups(bg, [c for c in series if c in bg.columns]):
            color = palette.get(name, C.PALETTE[0]) if name is not None else C.GREY
            prefix = f"{name}: " if name is not None else ""
            s = sub.sort_values(g.STEP, kind="stable")
            for column, dash in ((g.WITHIN_GROUP_MEAN, "dot"), (g.BETWEEN_GROUP_MEAN, "dashdot")):
                fig.add_trace(go.Scatter(
                    x=C.num(s, g.STEP, func), y=C.num(s, column, func), mode="lines+markers",
                    name=prefix + C.pretty(column), line={"color": color, "dash": dash, "width": 1.5},
                    marker={"color": color, "size": 5, "symbol": "diamond"},
                    hovertemplate=f"step=%{{x}}<br>{column}=%{{y:.3f}}<extra></extra>",
                ))
    fig.update_xaxes(dtick=1)
    drawn = [C.num(df, c, func) for c in (cols.MEAN_OFFDIAG, cols.CI_LOW, cols.CI_HIGH)]
    drawn += [np.asarray(t.y, dtype=np.float64) for t in fig.data if t.y is not None and t.fill is None]
    C.set_range(fig, "cosine", np.concatenate(drawn))
    return C.finish(fig, title, kind=func, x_title=x_title, y_title=y_title, subtitle=subtitle)


def collapse_bars(
    collapse_df: pd.DataFrame,
    *,
    metrics: str | Sequence[str] = (S.COLLAPSE_TABLE.WITHIN_INSTANCE_MEAN, S.COLLAPSE_TABLE.ACROSS_INSTANCE_MEAN,
                                    S.COLLAPSE_TABLE.EFFECTIVE_RANK),
    title: str = "Collapse statistics: latents next to baselines, raw and centred",
    subtitle: str | None = "Collapse is a comparison: read the latent bars against the baselines.",
) -> go.Figure:
    """Grouped bars of :func:`~latentprobe.geometry.collapse_table`: one panel per metric.

    Parameters
    ----------
    collapse_df : DataFrame
        The ``collapse_table`` output (:class:`~latentprobe.schema.COLLAPSE_TABLE`).
    metrics : column name(s)
        Panels, left to right (each with its own y axis).
    title : str
        The figure's title.
    subtitle : str | None
        A line under the title (``None``: none).

    Returns
    -------
    plotly.graph_objects.Figure
        One bar trace per (metric, centering); x = source with ``latent`` first, colour =
        centering.  The table has no intervals, so there are no error bars.

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe import viz
    >>> from latentprobe.geometry import collapse_table
    >>> table = collapse_table(np.random.default_rng(0).normal(size=(8, 3, 16)))
    >>> fig = viz.collapse_bars(table)
    >>> len(fig.data), list(fig.data[0].x)
    (6, ['latent', 'random_matched_norm'])
    """
    func = "collapse_bars"
    instead = "the DataFrame returned by latentprobe.geometry.collapse_table"
    cols = S.COLLAPSE_TABLE
    df = C.table(collapse_df, func, None, instead)
    metrics = C.as_list(metrics)
    if not metrics:
        raise VizInputError(f"{func}: metrics is empty; name at least one of {list(cols.COLUMNS[2:])}.")
    C.require(df, [cols.SOURCE, cols.CENTERING, *metrics], func, instead)
    sources = [str(s) for s in C.ordered(df[cols.SOURCE], first=S.SOURCES[:1])]
    centerings = C.ordered(df[cols.CENTERING], first=S.CENTERINGS)
    palette = {c: C.PALETTE[i % len(C.PALETTE)] for i, c in enumerate(centerings)}
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[C.pretty(m) for m in metrics],
                        horizontal_spacing=0.08 if len(metrics) > 1 else 0.0)
    for j, metric in enumerate(metrics, start=1):
        for centering in centerings:
            sub = df[df[cols.CENTERING] == centering]
            sub = sub.set_index(sub[cols.SOURCE].astype(str)).reindex(sources)
            fig.add_trace(go.Bar(
                x=sources, y=C.num(sub, metric, func), name=str(centering), legendgroup=str(centering),
                showlegend=j == 1, marker={"color": palette[centering]},
                hovertemplate=f"%{{x}} ({centering})<br>{metric}=%{{y:.3f}}<extra></extra>",
            ), row=1, col=j)
        C.set_range(fig, metric, C.num(df, metric, func), include_zero=True, row=1, col=j)
    fig.update_layout(barmode="group")
    fig.update_xaxes(type="category", title_text="source")
    return C.finish(fig, title, kind=func, subtitle=subtitle)


def norm_profile(
    norm_df: pd.DataFrame,
    *,
    title: str = "L2 norm of the latents per step, against token embeddings",
    x_title: str = "latent step",
    y_title: str = "L2 norm",
    subtitle: str | None = None,
) -> go.Figure:
    """Mean latent norm per step (±1 s.d. band) with the token-embedding norm as a reference line.

    Parameters
    ----------
    norm_df : DataFrame
        The :func:`~latentprobe.geometry.norm_table` output (:class:`~latentprobe.schema.NORM_TABLE`).
        Rows without a ``step`` (the ``token_embedding`` row) become dashed horizontal lines.
    title : str
        The figure's title.
    subtitle : str | None
        A line under the title (``None``: none).
    x_title : str
        The x axis' title.
    y_title : str
        The y axis' title.

    Returns
    -------
    plotly.graph_objects.Figure
        Per stepwise source a ±1 s.d. band (spread, not a confidence interval) and a line trace.

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe import viz
    >>> from latentprobe.geometry import norm_table
    >>> rng = np.random.default_rng(0)
    >>> fig = viz.norm_profile(norm_table(rng.normal(size=(8, 3, 16)), rng.normal(size=(50, 16))))
    >>> len(fig.data), len(fig.layout.shapes)
    (2, 1)
    """
    func = "norm_profile"
    instead = "the DataFrame returned by latentprobe.geometry.norm_table"
    cols = S.NORM_TABLE
    df = C.table(norm_df, func, None, instead)
    C.require(df, [cols.SOURCE, cols.STEP, cols.MEAN_NORM], func, instead)
    has_step = df[cols.STEP].notna()
    steps, refs = df[has_step], df[~has_step]
    fig = go.Figure()
    if not steps.empty:
        grouped = C.groups(steps, [cols.SOURCE])
        palette = C.colors([g for g, _ in grouped])
        for name, sub in grouped:
            sub = sub.copy()
            lo = hi = None
            if cols.STD_NORM in sub.columns:
                mean, sd = C.num(sub, cols.MEAN_NORM, func), C.num(sub, cols.STD_NORM, func)
                lo, hi = "_lo", "_hi"
                sub[lo], sub[hi] = mean - sd, mean + sd
            C.line_with_band(fig, sub, x=cols.STEP, y=cols.MEAN_NORM, name=str(name), color=palette[name], func=func,
                             lo=lo or "", hi=hi or "", band_label="±1 s.d.")
    for source, value in zip(refs[cols.SOURCE], C.num(refs, cols.MEAN_NORM, func)):
        if math.isfinite(value):
            fig.add_hline(y=value, line={"dash": "dash", "color": C.PALETTE[6], "width": 1},
                          annotation_text=f"{source} mean norm = {value:.3g}", annotation_position="top left")
    fig.update_xaxes(dtick=1)
    return C.finish(fig, title, kind=func, x_title=x_title, y_title=y_title, subtitle=subtitle)
