"""Plotly figures for latentprobe results.

Every function takes the tidy tables (or result objects) produced by
:mod:`latentprobe.similarity`, :mod:`latentprobe.probing` and
:mod:`latentprobe.stats`, or tidy mediation tables with the columns listed
below, and returns a :class:`plotly.graph_objects.Figure`.  Nothing is shown
or written: call ``fig.show()``, ``fig.write_html(...)`` or add the figure to
a :class:`latentprobe.report.Report`.

Conventions
-----------
* Template ``"plotly_white"`` and the Okabe-Ito colour-blind-safe palette
  (:data:`PALETTE`); signed matrices use a diverging scale centred at zero,
  unsigned ones Viridis.  Sources with fixed meaning always get the same
  colour (``latent`` blue, ``text_tokens`` orange, ``image_tokens`` green,
  ``random_matched_norm`` grey).
* Wherever the table has ``ci_low``/``ci_high`` the figure shows them, as
  a shaded band around lines or as whiskers on points and bars.  Rows with
  NaN bounds (e.g. ``n_boot=0``) are drawn without an interval.  The bands
  are whatever interval the producing function computed (usually a 95%
  percentile bootstrap over examples); a figure does not make them more
  than that.
* A table missing a required column raises :class:`VizInputError` (a
  :class:`ValueError`) naming the missing columns and the columns present.

Mediation tables
----------------
The mediation figures read generic tidy frames:

``xz_lines`` (X -> Z: how much the latents move when the input is perturbed)
    ``perturbation`` (str), ``step`` (int), ``metric`` (``"cosine"`` or
    ``"rel_l2"``; other names are plotted too), ``value`` or ``mean``
    (float), optional ``ci_low``/``ci_high``, optional ``source``
    (``"latent"``, ``"text_tokens"``, ``"image_tokens"``; one facet row
    each), optional ``layer`` (must be single-valued or chosen with
    ``layer=``), optional ``n``.
``zy_bars`` (Z -> Y: how the output moves when the latents are intervened on)
    ``intervention`` (str), ``mode`` (str), ``metric`` (``"accuracy"``,
    ``"flip_rate"``, ``"gold_logprob"``, ``"kl_first_token"``; other names
    are plotted too, one facet column each), ``estimate``, ``ci_low``,
    ``ci_high`` (float), optional ``n`` and ``p_value``.
``decomposition_bars`` (total / direct / indirect effects)
    ``effect`` (``"TE"``, ``"NDE"``, ``"NIE"``; a ``name`` column as written
    by :func:`latentprobe.stats.effects_frame` is accepted instead),
    ``estimate``, ``ci_low``, ``ci_high``, optional ``n``, ``p_value``, and an
    optional grouping column such as ``model`` or ``variant`` (e.g. a
    latent versus a text mediator) passed as ``by=``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .errors import LatentProbeError
from latentprobe.errors import VizInputError

__all__ = [
    "PALETTE",
    "TEMPLATE",
    "VizInputError",
    "similarity_heatmap",
    "consecutive_similarity",
    "across_instance_summary",
    "collapse_bars",
    "norm_profile",
    "probe_heatmap",
    "probe_controls",
    "effects_forest",
    "decomposition_bars",
    "xz_lines",
    "zy_bars",
]

#: Plotly template used by every figure.
TEMPLATE = "plotly_white"

#: Okabe & Ito (2008) qualitative palette, safe for the common colour-vision
#: deficiencies.  Yellow comes last because it is hard to see on white.
PALETTE: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#000000",  # black
    "#F0E442",  # yellow
)

_GREY = "#8C8C8C"
_DIVERGING = "RdBu_r"  # ColorBrewer RdBu: colour-blind safe, blue < 0 < red
_SEQUENTIAL = "Viridis"

# Sources that keep the same colour in every figure.
_FIXED_COLORS = {
    "latent": PALETTE[0],
    "text_tokens": PALETTE[1],
    "image_tokens": PALETTE[2],
    "random_matched_norm": _GREY,
}

_PRETTY = {
    "within_instance_mean": "within-instance cosine",
    "consecutive_mean": "consecutive-step cosine",
    "across_instance_mean": "across-instance cosine",
    "within_group_mean": "same-group cosine",
    "between_group_mean": "different-group cosine",
    "effective_rank": "effective rank",
    "participation_ratio": "participation ratio",
    "mean_norm": "mean L2 norm",
    "score": "probe score",
    "selectivity": "selectivity (score − control)",
    "majority": "majority baseline",
    "shuffle": "shuffled labels",
    "control": "control task",
    "cosine": "cosine(clean, perturbed)",
    "rel_l2": "relative L2 change ‖z′−z‖/‖z‖",
    "accuracy": "accuracy",
    "flip_rate": "answer flip rate",
    "gold_logprob": "log p(gold answer)",
    "kl_first_token": "KL at first answer token",
}




# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #
def _pretty(name: Any) -> str:
    return _PRETTY.get(str(name), str(name))


def _frame(obj: Any, func: str, attr: str | None = None) -> pd.DataFrame:
    """Return ``obj`` as a non-empty DataFrame (taking ``obj.<attr>`` for result objects)."""
    if attr is not None and not isinstance(obj, pd.DataFrame) and hasattr(obj, attr):
        obj = getattr(obj, attr)
    if not isinstance(obj, pd.DataFrame):
        raise VizInputError(
            f"{func}: expected a pandas DataFrame, got {type(obj).__name__}."
        )
    if obj.empty:
        raise VizInputError(f"{func}: the table has no rows; there is nothing to plot.")
    return obj


def _concat_mapping(obj: Any, func: str, attr: str, key: str = "source") -> Any:
    """``{name: frame or result}`` -> one frame with a ``key`` column; else ``obj``."""
    if not isinstance(obj, Mapping):
        return obj
    if not obj:
        raise VizInputError(f"{func}: the mapping is empty; there is nothing to plot.")
    parts = []
    for name, value in obj.items():
        part = _frame(value, func, attr).copy()
        part[key] = name
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _require(df: pd.DataFrame, columns: Sequence[str], func: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise VizInputError(
            f"{func}: missing column(s) {missing}; the table has columns "
            f"{[str(c) for c in df.columns]}."
        )


def _num(df: pd.DataFrame, col: str, func: str) -> np.ndarray:
    try:
        return pd.to_numeric(df[col], errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        raise VizInputError(
            f"{func}: column {col!r} must be numeric, got dtype {df[col].dtype}."
        ) from None


def _as_list(by: str | Sequence[str] | None) -> list[str]:
    if by is None:
        return []
    if isinstance(by, str):
        return [by]
    return list(by)


def _auto_by(
    df: pd.DataFrame, by: str | Sequence[str] | None, candidates: Sequence[str], func: str
) -> list[str]:
    """Grouping columns: ``by`` if given (validated), else varying ``candidates``."""
    if by is None:
        return [c for c in candidates if c in df.columns and df[c].nunique(dropna=False) > 1]
    cols = _as_list(by)
    _require(df, cols, func)
    return cols


def _groups(df: pd.DataFrame, cols: list[str]) -> list[tuple[str | None, pd.DataFrame]]:
    """Groups in order of first appearance with a display label."""
    if not cols:
        return [(None, df)]
    out = []
    for key, sub in df.groupby(cols, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        out.append((", ".join(str(k) for k in key), sub))
    return out


def _default_label(df: pd.DataFrame, fallback: str) -> str:
    """Legend label of a single series: its ``source``/``centering`` values if present."""
    parts = [str(df[c].iloc[0]) for c in ("source", "centering") if c in df.columns]
    return ", ".join(parts) if parts else fallback


def _colors(names: Sequence[Any]) -> dict[Any, str]:
    """Colour per name: fixed colours for known sources, palette order otherwise."""
    out: dict[Any, str] = {}
    used = {_FIXED_COLORS[str(n)] for n in names if str(n) in _FIXED_COLORS}
    free = [c for c in PALETTE if c not in used]
    i = 0
    for name in names:
        if name in out:
            continue
        if str(name) in _FIXED_COLORS:
            out[name] = _FIXED_COLORS[str(name)]
        else:
            out[name] = free[i % len(free)] if free else PALETTE[i % len(PALETTE)]
            i += 1
    return out


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _has_ci(df: pd.DataFrame, lo: str = "ci_low", hi: str = "ci_high") -> bool:
    return lo in df.columns and hi in df.columns


def _error(est: np.ndarray, lo: np.ndarray, hi: np.ndarray, color: str | None = None) -> dict | None:
    """Asymmetric error-bar spec from interval bounds; ``None`` when all bounds are NaN."""
    if not (np.isfinite(lo).any() or np.isfinite(hi).any()):
        return None
    with np.errstate(invalid="ignore"):
        plus = np.clip(hi - est, 0.0, None)
        minus = np.clip(est - lo, 0.0, None)
    spec: dict[str, Any] = {
        "type": "data",
        "symmetric": False,
        "array": plus,
        "arrayminus": minus,
        "visible": True,
        "thickness": 1.5,
        "width": 4,
    }
    if color is not None:
        spec["color"] = color
    return spec


def _band(
    x: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, color: str, name: str,
    legendgroup: str, label: str = "95% CI",
) -> go.Scatter | None:
    """Closed polygon between ``lo`` and ``hi`` (rows with NaN bounds dropped)."""
    ok = np.isfinite(x) & np.isfinite(lo) & np.isfinite(hi)
    if not ok.any():
        return None
    order = np.argsort(x[ok], kind="stable")
    xs, los, his = x[ok][order], lo[ok][order], hi[ok][order]
    return go.Scatter(
        x=np.concatenate([xs, xs[::-1]]),
        y=np.concatenate([his, los[::-1]]),
        fill="toself",
        fillcolor=_rgba(color, 0.18),
        line={"width": 0, "color": _rgba(color, 0.0)},
        mode="lines",
        hoverinfo="skip",
        name=f"{name} ({label})",
        legendgroup=legendgroup,
        showlegend=False,
    )


def _line_with_band(
    fig: go.Figure, df: pd.DataFrame, *, x: str, y: str, name: str, color: str,
    func: str, lo: str = "ci_low", hi: str = "ci_high", showlegend: bool = True,
    legendgroup: str | None = None, dash: str | None = None, row: int | None = None,
    col: int | None = None, band_label: str = "95% CI",
) -> None:
    """Add an optional CI band plus a line-with-markers trace for one group."""
    df = df.sort_values(x, kind="stable")
    xs = _num(df, x, func)
    ys = _num(df, y, func)
    group = legendgroup if legendgroup is not None else name
    cell = {} if row is None else {"row": row, "col": col}
    custom_cols = []
    hover = f"{x}=%{{x}}<br>{y}=%{{y:.3f}}"
    if lo in df.columns and hi in df.columns:
        los, his = _num(df, lo, func), _num(df, hi, func)
        band = _band(xs, los, his, color=color, name=name, legendgroup=group, label=band_label)
        if band is not None:
            fig.add_trace(band, **cell)
        custom_cols += [los, his]
        hover += f"<br>{band_label} [%{{customdata[0]:.3f}}, %{{customdata[1]:.3f}}]"
    if "n" in df.columns:
        custom_cols.append(_num(df, "n", func))
        hover += f"<br>n=%{{customdata[{len(custom_cols) - 1}]:.0f}}"
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="lines+markers",
            name=name,
            legendgroup=group,
            showlegend=showlegend,
            line={"color": color, "width": 2, **({"dash": dash} if dash else {})},
            marker={"color": color, "size": 6},
            customdata=np.column_stack(custom_cols) if custom_cols else None,
            hovertemplate=hover + f"<extra>{_escape_hover(name)}</extra>",
        ),
        **cell,
    )


def _escape_hover(text: str) -> str:
    # Plotly renders a small HTML subset in hover labels; keep names literal.
    return str(text).replace("<", "&lt;").replace(">", "&gt;")


def _finish(
    fig: go.Figure, title: str, *, x_title: str | None = None, y_title: str | None = None,
    subtitle: str | None = None, height: int | None = None,
) -> go.Figure:
    title_spec: dict[str, Any] = {"text": title, "x": 0.01, "xanchor": "left"}
    if subtitle:
        title_spec["subtitle"] = {"text": subtitle}
    fig.update_layout(
        template=TEMPLATE,
        title=title_spec,
        colorway=list(PALETTE),
        font={"size": 13},
        legend={"title": {"text": ""}, "tracegroupgap": 2},
        margin={"l": 70, "r": 30, "t": 90 if subtitle else 70, "b": 60},
        hoverlabel={"align": "left"},
    )
    if x_title is not None:
        fig.update_xaxes(title_text=x_title)
    if y_title is not None:
        fig.update_yaxes(title_text=y_title)
    if height is not None:
        fig.update_layout(height=height)
    return fig


def _ordered(values: Sequence[Any], first: Sequence[Any] = ()) -> list[Any]:
    uniq = list(pd.unique(pd.Series(list(values), dtype=object)))
    head = [v for v in first if v in uniq]
    return head + [v for v in uniq if v not in head]


def _single_valued(
    df: pd.DataFrame, col: str, chosen: Any, func: str, arg: str
) -> pd.DataFrame:
    """Filter ``df`` to ``col == chosen`` or check that ``col`` has one value."""
    if col not in df.columns:
        if chosen is not None:
            raise VizInputError(
                f"{func}: {arg}={chosen!r} was given but the table has no {col!r} column; "
                f"columns are {[str(c) for c in df.columns]}."
            )
        return df
    values = _ordered(df[col])
    if chosen is None:
        if len(values) > 1:
            raise VizInputError(
                f"{func}: the table holds several {col} values {values}; "
                f"choose one with {arg}=..."
            )
        return df
    sub = df[df[col] == chosen]
    if sub.empty:
        raise VizInputError(f"{func}: {arg}={chosen!r} not found; available: {values}.")
    return sub


# --------------------------------------------------------------------------- #
# Similarity
# --------------------------------------------------------------------------- #
def similarity_heatmap(
    matrix: Any,
    *,
    labels: Sequence[Any] | None = None,
    title: str = "Cosine similarity between latent steps",
    zmin: float | None = -1.0,
    zmax: float | None = 1.0,
    axis_title: str = "latent step",
    colorbar_title: str = "cosine",
    annotate: bool | None = None,
    subtitle: str | None = None,
) -> go.Figure:
    """Heatmap of a square similarity matrix (step x step cosine, CKA, one step's n x n).

    Parameters
    ----------
    matrix : array-like (K, K), DataFrame, or a result with ``step_matrix``
        E.g. ``WithinInstanceResult.step_matrix``, ``cka_matrix(...)`` (pass
        ``zmin=0``), or ``AcrossInstancesResult.matrices[k]``.  A DataFrame's
        columns are used as labels.
    labels : sequence, optional
        Tick labels (length K); default ``0..K-1``.
    zmin, zmax : float or None
        Colour range (default -1..1, the range of a cosine).  A range that
        includes 0 uses a diverging scale centred at 0, otherwise Viridis.
    annotate : bool, optional
        Print values in the cells; default when K <= 16.

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Heatmap`` trace; row 0 at the top.
    """
    func = "similarity_heatmap"
    if hasattr(matrix, "step_matrix") and not isinstance(matrix, (np.ndarray, pd.DataFrame)):
        matrix = matrix.step_matrix
    if isinstance(matrix, pd.DataFrame):
        if labels is None:
            labels = list(matrix.columns)
        matrix = matrix.to_numpy(dtype=np.float64, na_value=np.nan)
    if hasattr(matrix, "detach"):  # torch tensor
        matrix = matrix.detach().cpu().float().numpy()
    try:
        arr = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        raise VizInputError(f"{func}: matrix must be numeric, got {type(matrix).__name__}.") from None
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] == 0:
        hint = " For a stack (K, n, n) pass one step, e.g. matrices[k]." if arr.ndim == 3 else ""
        raise VizInputError(f"{func}: expected a non-empty square matrix, got shape {arr.shape}.{hint}")
    k = arr.shape[0]
    if labels is None:
        labels = list(range(k))
    labels = [str(v) for v in labels]
    if len(labels) != k:
        raise VizInputError(f"{func}: {len(labels)} labels for a {k} x {k} matrix.")
    if annotate is None:
        annotate = k <= 16
    diverging = zmin is not None and zmax is not None and zmin < 0 < zmax
    trace = go.Heatmap(
        z=arr,
        x=labels,
        y=labels,
        zmin=zmin,
        zmax=zmax,
        zmid=0.0 if diverging else None,
        colorscale=_DIVERGING if diverging else _SEQUENTIAL,
        colorbar={"title": {"text": colorbar_title}},
        hovertemplate=f"{axis_title} %{{y}} vs %{{x}}<br>{colorbar_title}=%{{z:.3f}}<extra></extra>",
        texttemplate="%{z:.2f}" if annotate else None,
        xgap=1,
        ygap=1,
    )
    fig = go.Figure(trace)
    fig.update_xaxes(type="category", constrain="domain")
    fig.update_yaxes(type="category", autorange="reversed", scaleanchor="x", constrain="domain")
    return _finish(fig, title, x_title=axis_title, y_title=axis_title, subtitle=subtitle)


def consecutive_similarity(
    df: Any,
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
    df : DataFrame, WithinInstanceResult, or mapping name -> either
        Columns ``step``, ``mean``, ``ci_low``, ``ci_high`` (optional ``n``)
        as in ``WithinInstanceResult.consecutive``.  Several series are
        stacked in one frame with a ``source`` and/or ``centering`` column;
        a mapping ``{"latent": result, "text_tokens": result}`` is stacked
        with its keys as ``source``.
    by : column name(s), optional
        Series columns; default ``source`` and ``centering`` where they take
        more than one value.

    Returns
    -------
    plotly.graph_objects.Figure
        Per series a CI band trace (when any bound is finite) and a line trace.
    """
    func = "consecutive_similarity"
    df = _frame(_concat_mapping(df, func, "consecutive"), func, "consecutive")
    _require(df, ["step", "mean", "ci_low", "ci_high"], func)
    cols = _auto_by(df, by, ("source", "centering"), func)
    groups = _groups(df, cols)
    labels = [name if name is not None else _default_label(sub, "consecutive cosine") for name, sub in groups]
    colors = _colors(labels)
    fig = go.Figure()
    for (name, sub), label in zip(groups, labels):
        dash = "dash" if "centering" in cols and sub["centering"].iloc[0] == "centered" else None
        _line_with_band(fig, sub, x="step", y="mean", name=label, color=colors[label], func=func, dash=dash)
    fig.update_xaxes(dtick=1)
    return _finish(fig, title, x_title=x_title, y_title=y_title, subtitle=subtitle)


def across_instance_summary(
    df: Any,
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
    df : DataFrame, AcrossInstancesResult, or mapping name -> either
        Columns ``step``, ``mean_offdiag``, ``ci_low``, ``ci_high`` (optional
        ``n``) as in ``AcrossInstancesResult.summary``.  A result object
        also supplies ``by_group``; a mapping is stacked with its keys as
        ``source``.
    by : column name(s), optional
        Series columns; default ``source``/``centering`` where they vary.
    by_group : DataFrame, optional
        ``step``, ``within_group_mean``, ``between_group_mean`` (as in
        ``AcrossInstancesResult.by_group``); drawn as dotted / dash-dot lines
        without intervals.

    Returns
    -------
    plotly.graph_objects.Figure
        Per series a CI band trace (when any bound is finite) and a line
        trace, plus two line traces per series of ``by_group``.
    """
    func = "across_instance_summary"
    if by_group is None and not isinstance(df, (pd.DataFrame, Mapping)) and hasattr(df, "by_group"):
        by_group = df.by_group
    df = _frame(_concat_mapping(df, func, "summary"), func, "summary")
    _require(df, ["step", "mean_offdiag", "ci_low", "ci_high"], func)
    cols = _auto_by(df, by, ("source", "centering"), func)
    groups = _groups(df, cols)
    labels = [name if name is not None else _default_label(sub, "all pairs") for name, sub in groups]
    colors = _colors(labels)
    fig = go.Figure()
    for (name, sub), label in zip(groups, labels):
        _line_with_band(fig, sub, x="step", y="mean_offdiag", name=label, color=colors[label], func=func)
    if by_group is not None:
        bg = _frame(by_group, func + " (by_group)")
        _require(bg, ["step", "within_group_mean", "between_group_mean"], func + " (by_group)")
        bg_cols = [c for c in cols if c in bg.columns]
        for name, sub in _groups(bg, bg_cols):
            color = colors.get(name, PALETTE[0]) if name is not None else _GREY
            prefix = f"{name}: " if name is not None else ""
            for column, dash in (("within_group_mean", "dot"), ("between_group_mean", "dashdot")):
                s = sub.sort_values("step", kind="stable")
                fig.add_trace(
                    go.Scatter(
                        x=_num(s, "step", func), y=_num(s, column, func), mode="lines+markers",
                        name=prefix + _pretty(column),
                        line={"color": color, "dash": dash, "width": 1.5},
                        marker={"color": color, "size": 5, "symbol": "diamond"},
                        hovertemplate=f"step=%{{x}}<br>{column}=%{{y:.3f}}<extra></extra>",
                    )
                )
    fig.update_xaxes(dtick=1)
    return _finish(fig, title, x_title=x_title, y_title=y_title, subtitle=subtitle)


def collapse_bars(
    collapse_df: pd.DataFrame,
    *,
    metrics: str | Sequence[str] = ("within_instance_mean", "across_instance_mean", "effective_rank"),
    title: str = "Collapse statistics: latents next to baselines, raw and centred",
    subtitle: str | None = "Collapse is a comparison: read the latent bars against the baselines.",
) -> go.Figure:
    """Grouped bars of :func:`~latentprobe.similarity.collapse_table`: one panel per metric.

    Parameters
    ----------
    collapse_df : DataFrame
        Columns ``source``, ``centering`` and each of ``metrics``.
    metrics : column name(s)
        Panels, left to right (each with its own y axis).

    Returns
    -------
    plotly.graph_objects.Figure
        One bar trace per (metric, centering); x = source with ``latent``
        first, colour = centering.  The table has no intervals, so there are
        no error bars.
    """
    func = "collapse_bars"
    df = _frame(collapse_df, func)
    metrics = _as_list(metrics)
    if not metrics:
        raise VizInputError(f"{func}: metrics is empty; name at least one column to plot.")
    _require(df, ["source", "centering", *metrics], func)
    sources = [str(s) for s in _ordered(df["source"], first=("latent",))]
    centerings = _ordered(df["centering"], first=("raw", "centered"))
    colors = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(centerings)}
    fig = make_subplots(
        rows=1, cols=len(metrics), subplot_titles=[_pretty(m) for m in metrics],
        horizontal_spacing=0.08 if len(metrics) > 1 else 0.0,
    )
    for j, metric in enumerate(metrics, start=1):
        for centering in centerings:
            sub = df[df["centering"] == centering].copy()
            sub["_source"] = sub["source"].astype(str)
            sub = sub.set_index("_source").reindex(sources)
            fig.add_trace(
                go.Bar(
                    x=sources,
                    y=_num(sub, metric, func),
                    name=str(centering),
                    legendgroup=str(centering),
                    showlegend=j == 1,
                    marker={"color": colors[centering]},
                    hovertemplate=f"%{{x}} ({centering})<br>{metric}=%{{y:.3f}}<extra></extra>",
                ),
                row=1, col=j,
            )
    fig.update_layout(barmode="group")
    fig.update_xaxes(type="category", title_text="source")
    return _finish(fig, title, subtitle=subtitle)


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
        :func:`~latentprobe.similarity.norm_table` output: ``source``,
        ``step``, ``mean_norm`` and optional ``std_norm``.  Rows with a
        missing ``step`` (the ``token_embedding`` row) become dashed
        horizontal lines.

    Returns
    -------
    plotly.graph_objects.Figure
        Per stepwise source a ±1 s.d. band (spread, not a confidence
        interval) and a line trace.
    """
    func = "norm_profile"
    df = _frame(norm_df, func)
    _require(df, ["source", "step", "mean_norm"], func)
    has_step = df["step"].notna()
    steps, refs = df[has_step].copy(), df[~has_step]
    fig = go.Figure()
    if not steps.empty:
        groups = _groups(steps, ["source"])
        colors = _colors([g for g, _ in groups])
        for name, sub in groups:
            sub = sub.copy()
            if "std_norm" in sub.columns:
                mean, sd = _num(sub, "mean_norm", func), _num(sub, "std_norm", func)
                sub["_lo"], sub["_hi"] = mean - sd, mean + sd
            _line_with_band(
                fig, sub, x="step", y="mean_norm", name=str(name), color=colors[name], func=func,
                lo="_lo", hi="_hi", band_label="±1 s.d.",
            )
    for source, value in zip(refs["source"], _num(refs, "mean_norm", func)):
        if math.isfinite(value):
            fig.add_hline(
                y=value, line={"dash": "dash", "color": PALETTE[6], "width": 1},
                annotation_text=f"{source} mean norm = {value:.3g}",
                annotation_position="top left",
            )
    fig.update_xaxes(dtick=1)
    return _finish(fig, title, x_title=x_title, y_title=y_title, subtitle=subtitle)


# --------------------------------------------------------------------------- #
# Probing
# --------------------------------------------------------------------------- #
def probe_heatmap(
    scores_df: Any,
    value: str = "score",
    *,
    target: Any = None,
    title: str | None = None,
    zmin: float | None = None,
    zmax: float | None = None,
    annotate: bool | None = None,
) -> go.Figure:
    """Layer x step heatmap of a probe sweep column (``score``, ``selectivity``, ...).

    Parameters
    ----------
    scores_df : DataFrame or ProbeSweepResult
        Columns ``layer``, ``step`` and ``value`` (optional ``target``,
        ``ci_low``, ``ci_high``, ``n``, ``chance``).
    value : str, default ``"score"``
        Column to colour by.  Values with both signs (e.g. ``selectivity``)
        use a diverging scale centred at 0.
    target : optional
        Target to show when the table holds several.

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Heatmap`` trace (rows = layers, columns = steps).  The hover
        shows the CI of ``score`` when present.  Cells are not corrected for
        multiple comparisons; the best cell is where the target is most
        decodable, not where the model uses it.
    """
    func = "probe_heatmap"
    df = _frame(scores_df, func, "scores")
    _require(df, ["layer", "step", value], func)
    df = _single_valued(df, "target", target, func, "target")
    if df.duplicated(["layer", "step"]).any():
        raise VizInputError(
            f"{func}: several rows share a (layer, step); filter the table (e.g. by task) first."
        )
    layers = sorted(pd.unique(df["layer"]))
    steps = sorted(pd.unique(df["step"]))
    grid = df.set_index(["layer", "step"])

    def pivot(col: str) -> np.ndarray:
        s = pd.Series(_num(df, col, func), index=grid.index)
        return s.unstack("step").reindex(index=layers, columns=steps).to_numpy(dtype=np.float64)

    z = pivot(value)
    finite = z[np.isfinite(z)]
    diverging = value == "selectivity" or (finite.size > 0 and finite.min() < 0 < finite.max())
    if diverging and zmin is None and zmax is None and finite.size:
        bound = float(np.abs(finite).max()) or 1.0
        zmin, zmax = -bound, bound
    hover = f"layer %{{y}}, step %{{x}}<br>{value}=%{{z:.3f}}"
    customdata = None
    if value == "score" and _has_ci(df):
        customdata = np.stack([pivot("ci_low"), pivot("ci_high")], axis=-1)
        hover += "<br>CI [%{customdata[0]:.3f}, %{customdata[1]:.3f}]"
    if annotate is None:
        annotate = len(layers) * len(steps) <= 300
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[str(s) for s in steps],
            y=[str(v) for v in layers],
            zmin=zmin,
            zmax=zmax,
            zmid=0.0 if diverging else None,
            colorscale=_DIVERGING if diverging else _SEQUENTIAL,
            colorbar={"title": {"text": value}},
            customdata=customdata,
            hovertemplate=hover + "<extra></extra>",
            texttemplate="%{z:.2f}" if annotate else None,
            xgap=1,
            ygap=1,
        )
    )
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category")
    tgt = ""
    if "target" in df.columns:
        tgt = f" — target: {df['target'].iloc[0]}"
    if title is None:
        title = f"Linear probe {_pretty(value)} by layer and latent step{tgt}"
    subtitle = None
    if "chance" in df.columns:
        chance = _num(df, "chance", func)
        chance = chance[np.isfinite(chance)]
        if chance.size and np.allclose(chance, chance[0]):
            subtitle = f"chance = {chance[0]:.3g}; decodable is not the same as used by the model"
    return _finish(fig, title, x_title="latent step", y_title="layer", subtitle=subtitle)


def probe_controls(
    df: Any,
    *,
    x: str | None = None,
    target: Any = None,
    title: str = "Probe score next to its baselines and controls",
    y_title: str = "held-out score",
    subtitle: str | None = (
        "Score well above majority, shuffled labels and the control task = decodable, not used."
    ),
) -> go.Figure:
    """Grouped bars: probe score (with CI whiskers), majority, shuffled labels, control task; chance line.

    Parameters
    ----------
    df : DataFrame or ProbeSweepResult
        A ``compare_representations`` table (one bar group per
        ``representation``) or probe-sweep scores (one group per layer and
        step; filter a large sweep first).  Needs ``score`` and, for the
        whiskers, ``ci_low``/``ci_high``; ``majority``, ``shuffle``,
        ``control`` and ``chance`` are drawn when present and not all NaN.
    x : str, optional
        Category column; default ``representation`` when present, otherwise
        ``"layer L, step S"`` from ``layer``/``step``.
    target : optional
        Keep one target; with several targets and none chosen, the target
        is prefixed to each category.

    Returns
    -------
    plotly.graph_objects.Figure
        One bar trace per available column among score/majority/shuffle/
        control; chance is a dashed horizontal line when constant, else a
        marker trace.
    """
    func = "probe_controls"
    df = _frame(df, func, "scores")
    _require(df, ["score"], func)
    if target is not None:
        df = _single_valued(df, "target", target, func, "target")
    if x is None:
        if "representation" in df.columns:
            labels = df["representation"].astype(str)
            x_title = "representation"
        elif "layer" in df.columns and "step" in df.columns:
            labels = "layer " + df["layer"].astype(str) + ", step " + df["step"].astype(str)
            x_title = "layer, latent step"
        else:
            raise VizInputError(
                f"{func}: cannot tell the bar groups apart: need a 'representation' column, "
                f"'layer' and 'step' columns, or x=<column>; the table has columns "
                f"{[str(c) for c in df.columns]}."
            )
    else:
        _require(df, [x], func)
        labels = df[x].astype(str)
        x_title = x
    if "target" in df.columns and df["target"].nunique() > 1:
        labels = df["target"].astype(str) + ": " + labels
    labels = labels.tolist()
    if len(set(labels)) != len(labels):
        raise VizInputError(
            f"{func}: bar groups are not unique ({len(labels)} rows, {len(set(labels))} labels); "
            f"filter the table or pass x=<unique column>."
        )
    fig = go.Figure()
    score = _num(df, "score", func)
    custom = []
    hover = "%{x}<br>score=%{y:.3f}"
    err = None
    if _has_ci(df):
        lo, hi = _num(df, "ci_low", func), _num(df, "ci_high", func)
        err = _error(score, lo, hi, color="#333333")
        custom += [lo, hi]
        hover += "<br>CI [%{customdata[0]:.3f}, %{customdata[1]:.3f}]"
    for extra in ("selectivity", "n", "n_groups"):
        if extra in df.columns:
            custom.append(_num(df, extra, func))
            fmt = ".3f" if extra == "selectivity" else ".0f"
            hover += f"<br>{extra}=%{{customdata[{len(custom) - 1}]:{fmt}}}"
    fig.add_trace(
        go.Bar(
            x=labels, y=score, name="probe", marker={"color": PALETTE[0]}, error_y=err,
            customdata=np.column_stack(custom) if custom else None,
            hovertemplate=hover + "<extra>probe</extra>",
        )
    )
    for col, color in (("majority", _GREY), ("shuffle", PALETTE[1]), ("control", PALETTE[4])):
        if col in df.columns:
            vals = _num(df, col, func)
            if np.isfinite(vals).any():
                fig.add_trace(
                    go.Bar(
                        x=labels, y=vals, name=_pretty(col), marker={"color": color},
                        hovertemplate=f"%{{x}}<br>{col}=%{{y:.3f}}<extra>{_pretty(col)}</extra>",
                    )
                )
    if "chance" in df.columns:
        chance = _num(df, "chance", func)
        ok = np.isfinite(chance)
        if ok.any():
            if np.allclose(chance[ok], chance[ok][0]):
                fig.add_hline(
                    y=float(chance[ok][0]), line={"dash": "dash", "color": PALETTE[6], "width": 1.5},
                    annotation_text=f"chance = {chance[ok][0]:.3g}", annotation_position="top right",
                )
            else:
                fig.add_trace(
                    go.Scatter(
                        x=labels, y=chance, mode="markers", name="chance",
                        marker={"symbol": "line-ew-open", "size": 28, "color": PALETTE[6],
                                "line": {"width": 2}},
                        hovertemplate="%{x}<br>chance=%{y:.3f}<extra>chance</extra>",
                    )
                )
    fig.update_layout(barmode="group")
    fig.update_xaxes(type="category")
    return _finish(fig, title, x_title=x_title, y_title=y_title, subtitle=subtitle)


# --------------------------------------------------------------------------- #
# Effects and mediation
# --------------------------------------------------------------------------- #
def _effects_input(effects: Any, func: str) -> pd.DataFrame:
    if isinstance(effects, Sequence) and not isinstance(effects, (str, pd.DataFrame)):
        from .stats import Effect, effects_frame

        if effects and all(isinstance(e, Effect) for e in effects):
            return effects_frame(list(effects))
    return _frame(effects, func)


def effects_forest(
    effects_df: Any,
    *,
    by: str | None = None,
    label: str | None = None,
    title: str | None = None,
    x_title: str = "estimate",
    subtitle: str | None = None,
) -> go.Figure:
    """Forest plot: one row per effect, point estimate with CI whiskers and a zero line.

    Parameters
    ----------
    effects_df : DataFrame or sequence of Effect
        ``effects_frame`` output or any table with a label column,
        ``estimate``, ``ci_low``, ``ci_high`` (optional ``n``, ``p_value``,
        ``note``, ``confidence``).  Rows with a non-empty ``note`` (e.g. a
        small-sample warning) are drawn with open markers.
    by : str, optional
        Column whose values become separately coloured, side-by-side series.
    label : str, optional
        Row-label column; default the first of ``name``, ``effect``,
        ``intervention`` present.

    Returns
    -------
    plotly.graph_objects.Figure
        One scatter trace with horizontal error bars per series (one without
        ``by``); the first row is at the top.  Intervals are not corrected
        for multiple comparisons.
    """
    func = "effects_forest"
    df = _effects_input(effects_df, func)
    if label is None:
        label = next((c for c in ("name", "effect", "intervention") if c in df.columns), None)
        if label is None:
            raise VizInputError(
                f"{func}: missing a label column (one of ['name', 'effect', 'intervention'] or "
                f"label=<column>); the table has columns {[str(c) for c in df.columns]}."
            )
    _require(df, [label, "estimate", "ci_low", "ci_high"], func)
    if by is not None:
        _require(df, [by], func)
    rows = [str(v) for v in _ordered(df[label])]
    groups = _groups(df, [by] if by else [])
    colors = _colors([g for g, _ in groups])
    fig = go.Figure()
    for name, sub in groups:
        est = _num(sub, "estimate", func)
        lo, hi = _num(sub, "ci_low", func), _num(sub, "ci_high", func)
        color = colors[name] if name is not None else PALETTE[0]
        custom = [lo, hi]
        hover = "%{y}<br>estimate=%{x:.4g}<br>CI [%{customdata[0]:.4g}, %{customdata[1]:.4g}]"
        for extra, fmt in (("n", ".0f"), ("p_value", ".3g")):
            if extra in sub.columns:
                custom.append(_num(sub, extra, func))
                hover += f"<br>{extra}=%{{customdata[{len(custom) - 1}]:{fmt}}}"
        notes = sub["note"].fillna("").astype(str).tolist() if "note" in sub.columns else [""] * len(sub)
        fig.add_trace(
            go.Scatter(
                x=est,
                y=sub[label].astype(str).tolist(),
                mode="markers",
                name=name if name is not None else "estimate",
                showlegend=name is not None,
                marker={
                    "color": color, "size": 9,
                    "symbol": ["circle-open" if n else "circle" for n in notes],
                    "line": {"width": 2, "color": color},
                },
                error_x=_error(est, lo, hi, color=color),
                customdata=np.column_stack(custom),
                text=[_escape_hover(n) for n in notes],
                hovertemplate=hover + "<br>%{text}<extra></extra>",
            )
        )
    fig.add_vline(x=0.0, line={"color": PALETTE[6], "width": 1, "dash": "dot"})
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=rows[::-1])
    if by is not None:
        fig.update_layout(scattermode="group", scattergap=0.5)
    if title is None:
        level = 0.95
        if "confidence" in df.columns:
            conf = _num(df, "confidence", func)
            conf = conf[np.isfinite(conf)]
            if conf.size and np.allclose(conf, conf[0]):
                level = float(conf[0])
        title = f"Effect estimates with {level:.0%} confidence intervals"
    if subtitle is None and "note" in df.columns and (df["note"].fillna("").astype(str) != "").any():
        subtitle = "Open markers: the row carries a note (e.g. small sample); hover for details."
    per_row = 34 if by is None else 12 + 20 * len(groups)
    return _finish(
        fig, title, x_title=x_title, y_title=label, subtitle=subtitle,
        height=max(320, 150 + per_row * len(rows)),
    )


def decomposition_bars(
    df: Any,
    *,
    by: str | None = None,
    title: str = "Mediation: total, direct and indirect effects",
    y_title: str = "effect on the outcome",
    subtitle: str | None = "TE = NDE + NIE holds only without an X×Z interaction.",
) -> go.Figure:
    """Bars of TE / NDE / NIE with CI whiskers, side by side per ``by`` group.

    Parameters
    ----------
    df : DataFrame or sequence of Effect
        Columns ``effect`` (or ``name``), ``estimate``, ``ci_low``,
        ``ci_high``; optional ``n``, ``p_value`` and a grouping column.
        Effects are ordered TE, NDE, NIE, then any others.
    by : str, optional
        Grouping column (e.g. ``model`` or ``variant``: latent vs text
        mediator).  When omitted and an effect appears more than once, a
        ``variant`` or ``model`` column is used if present.

    Returns
    -------
    plotly.graph_objects.Figure
        One bar trace per group (one without grouping).  With TE, NDE and
        NIE present, the hover shows the gap ``TE − NDE − NIE``.
    """
    func = "decomposition_bars"
    df = _effects_input(df, func)
    if "effect" not in df.columns and "name" in df.columns:
        df = df.rename(columns={"name": "effect"})
    _require(df, ["effect", "estimate", "ci_low", "ci_high"], func)
    if by is None and df["effect"].duplicated().any():
        by = next((c for c in ("variant", "model") if c in df.columns), None)
        if by is None:
            raise VizInputError(
                f"{func}: some effects appear more than once; pass by=<column> naming what tells "
                f"the rows apart (columns: {[str(c) for c in df.columns]})."
            )
    if by is not None:
        _require(df, [by], func)
    order = [str(e) for e in _ordered(df["effect"].astype(str), first=("TE", "NDE", "NIE"))]
    groups = _groups(df, [by] if by else [])
    colors = _colors([g for g, _ in groups])
    fig = go.Figure()
    for name, sub in groups:
        if sub["effect"].duplicated().any():
            raise VizInputError(
                f"{func}: group {name!r} has several rows for one effect; filter the table first."
            )
        sub = sub.assign(_effect=sub["effect"].astype(str)).set_index("_effect").reindex(order)
        est = _num(sub, "estimate", func)
        lo, hi = _num(sub, "ci_low", func), _num(sub, "ci_high", func)
        color = colors[name] if name is not None else PALETTE[0]
        custom = [lo, hi]
        hover = "%{x}=%{y:.4g}<br>CI [%{customdata[0]:.4g}, %{customdata[1]:.4g}]"
        for extra, fmt in (("n", ".0f"), ("p_value", ".3g")):
            if extra in sub.columns:
                custom.append(_num(sub, extra, func))
                hover += f"<br>{extra}=%{{customdata[{len(custom) - 1}]:{fmt}}}"
        if all(e in order for e in ("TE", "NDE", "NIE")):
            v = dict(zip(order, est))
            gap = v["TE"] - v["NDE"] - v["NIE"]
            custom.append(np.full(len(order), gap))
            hover += f"<br>TE − NDE − NIE = %{{customdata[{len(custom) - 1}]:.4g}}"
        fig.add_trace(
            go.Bar(
                x=order, y=est, name=name if name is not None else "estimate",
                showlegend=name is not None, marker={"color": color},
                error_y=_error(est, lo, hi, color="#333333"),
                customdata=np.column_stack(custom),
                hovertemplate=hover + f"<extra>{_escape_hover(name or '')}</extra>",
            )
        )
    fig.add_hline(y=0.0, line={"color": PALETTE[6], "width": 1})
    fig.update_layout(barmode="group")
    fig.update_xaxes(type="category")
    return _finish(fig, title, x_title="effect", y_title=y_title, subtitle=subtitle)


def xz_lines(
    df: pd.DataFrame,
    *,
    value: str | None = None,
    layer: Any = None,
    title: str = "How much the latents change when the input is perturbed (X → Z)",
    x_title: str = "latent step",
    subtitle: str | None = None,
) -> go.Figure:
    """Change of the latents vs step, one coloured line (with CI band) per perturbation.

    Parameters
    ----------
    df : DataFrame
        Columns ``perturbation``, ``step``, ``metric`` and ``value`` or
        ``mean``; optional ``ci_low``/``ci_high`` (bands), ``source`` (one
        facet row per source, e.g. latent / text_tokens / image_tokens),
        ``layer`` and ``n``.  One facet column per metric (``cosine``,
        ``rel_l2``), each with its own y axis.
    value : str, optional
        Value column; default ``value``, else ``mean``.
    layer : optional
        Layer to show when the ``layer`` column holds several.

    Returns
    -------
    plotly.graph_objects.Figure
        Per (source, metric, perturbation): a band trace (when any bound is
        finite) and a line trace.  Small changes of the latents do not show
        that the answer ignores the input; compare with the baselines.
    """
    func = "xz_lines"
    df = _frame(df, func)
    if value is None:
        value = "value" if "value" in df.columns else "mean"
    _require(df, ["perturbation", "step", "metric", value], func)
    df = _single_valued(df, "layer", layer, func, "layer")
    sources: list[Any] = [None]
    if "source" in df.columns:
        sources = _ordered(df["source"], first=("latent", "text_tokens", "image_tokens"))
    metrics = _ordered(df["metric"], first=("cosine", "rel_l2"))
    perturbations = _ordered(df["perturbation"])
    colors = _colors(perturbations)
    titles = [
        (f"{s} — {_pretty(m)}" if s is not None else _pretty(m)) for s in sources for m in metrics
    ]
    fig = make_subplots(
        rows=len(sources), cols=len(metrics), subplot_titles=titles,
        horizontal_spacing=0.1 if len(metrics) > 1 else 0.0,
        vertical_spacing=min(0.12, 0.3 / max(1, len(sources) - 1)) if len(sources) > 1 else 0.0,
    )
    seen: set[Any] = set()
    for i, source in enumerate(sources, start=1):
        for j, metric in enumerate(metrics, start=1):
            panel = df[df["metric"] == metric]
            if source is not None:
                panel = panel[panel["source"] == source]
            for pert in perturbations:
                sub = panel[panel["perturbation"] == pert]
                if sub.empty:
                    continue
                if sub["step"].duplicated().any():
                    raise VizInputError(
                        f"{func}: several rows for perturbation {pert!r}, metric {metric!r}"
                        f"{'' if source is None else f', source {source!r}'} at one step; "
                        f"filter the table (e.g. by layer) first."
                    )
                _line_with_band(
                    fig, sub, x="step", y=value, name=str(pert), color=colors[pert], func=func,
                    showlegend=pert not in seen, legendgroup=str(pert), row=i, col=j,
                )
                seen.add(pert)
            fig.update_yaxes(title_text=_pretty(metric), row=i, col=j)
            fig.update_xaxes(dtick=1, row=i, col=j)
            if i == len(sources):
                fig.update_xaxes(title_text=x_title, row=i, col=j)
    if subtitle is None and layer is not None:
        subtitle = f"layer {layer}"
    return _finish(fig, title, subtitle=subtitle, height=max(420, 320 * len(sources)))


def zy_bars(
    df: pd.DataFrame,
    *,
    metric: Any = None,
    title: str = "How the output changes when the latents are intervened on (Z → Y)",
    x_title: str = "intervention",
    subtitle: str | None = None,
) -> go.Figure:
    """Outcome per intervention, bars coloured by mode, CI whiskers; one panel per metric.

    Parameters
    ----------
    df : DataFrame
        Columns ``intervention``, ``mode``, ``metric``, ``estimate``,
        ``ci_low``, ``ci_high``; optional ``n`` and ``p_value`` (hover).
    metric : optional
        Show only this metric (``accuracy``, ``flip_rate``,
        ``gold_logprob``, ``kl_first_token``, ...).

    Returns
    -------
    plotly.graph_objects.Figure
        One bar trace per (metric, mode).  Patched activations can be out of
        distribution: a drop in accuracy shows sensitivity to the patch, not
        that the latents carry the reasoning in normal runs.
    """
    func = "zy_bars"
    df = _frame(df, func)
    _require(df, ["intervention", "mode", "metric", "estimate", "ci_low", "ci_high"], func)
    if metric is not None:
        df = _single_valued(df, "metric", metric, func, "metric")
    metrics = _ordered(df["metric"], first=("accuracy", "flip_rate", "gold_logprob", "kl_first_token"))
    modes = _ordered(df["mode"])
    interventions = [str(v) for v in _ordered(df["intervention"])]
    colors = _colors(modes)
    fig = make_subplots(
        rows=1, cols=len(metrics), subplot_titles=[_pretty(m) for m in metrics],
        horizontal_spacing=0.08 if len(metrics) > 1 else 0.0,
    )
    seen: set[Any] = set()
    for j, m in enumerate(metrics, start=1):
        panel = df[df["metric"] == m]
        for mode in modes:
            sub = panel[panel["mode"] == mode]
            if sub.empty:
                continue
            if sub["intervention"].duplicated().any():
                raise VizInputError(
                    f"{func}: several rows for metric {m!r}, mode {mode!r} and one intervention; "
                    f"filter the table first."
                )
            sub = sub.assign(_iv=sub["intervention"].astype(str)).set_index("_iv").reindex(interventions)
            est = _num(sub, "estimate", func)
            lo, hi = _num(sub, "ci_low", func), _num(sub, "ci_high", func)
            custom = [lo, hi]
            hover = "%{x}<br>estimate=%{y:.4g}<br>CI [%{customdata[0]:.4g}, %{customdata[1]:.4g}]"
            for extra, fmt in (("n", ".0f"), ("p_value", ".3g")):
                if extra in sub.columns:
                    custom.append(_num(sub, extra, func))
                    hover += f"<br>{extra}=%{{customdata[{len(custom) - 1}]:{fmt}}}"
            fig.add_trace(
                go.Bar(
                    x=interventions, y=est, name=str(mode), legendgroup=str(mode),
                    showlegend=mode not in seen,
                    marker={"color": colors[mode]},
                    error_y=_error(est, lo, hi, color="#333333"),
                    customdata=np.column_stack(custom),
                    hovertemplate=hover + f"<extra>{_escape_hover(str(mode))}</extra>",
                ),
                row=1, col=j,
            )
            seen.add(mode)
        fig.add_hline(y=0.0, line={"color": PALETTE[6], "width": 1}, row=1, col=j)
        fig.update_yaxes(title_text=_pretty(m), row=1, col=j)
        fig.update_xaxes(type="category", title_text=x_title, row=1, col=j)
    fig.update_layout(barmode="group", legend={"title": {"text": "mode"}})
    out = _finish(fig, title, subtitle=subtitle)
    out.update_layout(legend_title_text="mode")
    return out
