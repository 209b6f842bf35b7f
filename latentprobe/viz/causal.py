"""Figures of the causal analyses (:mod:`latentprobe.causal`): X -> Z lines, Z -> Y bars, the
mediation decomposition and a forest plot of effects.

Every figure takes the result the analysis returns (``XZResult``, ``ZYResult``,
``MediationResult``, :class:`~latentprobe.stats.Effect` objects) or its ``summary`` table, and
reads its columns from :mod:`latentprobe.schema`.
"""

from __future__ import annotations

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
    from latentprobe.causal.results import MediationResult, XZResult, ZYResult
    from latentprobe.stats import Effect

__all__ = ["xz_lines", "zy_bars", "decomposition_bars", "effects_forest"]

_LATENT = S.SOURCES[0]
_BASELINE_DASH = ("dot", "dash", "dashdot", "longdash", "longdashdot")
_XZ = "an XZResult (latentprobe.causal.x_to_z) or its .summary"
_ZY = "a ZYResult (latentprobe.causal.z_to_y) or its .summary"
_MED = "a MediationResult (latentprobe.causal.decompose), its .summary, or effects_frame(...) / a list of Effect"
_LABELS = (S.EFFECTS.NAME, S.MEDIATION_SUMMARY.EFFECT, S.ZY_SUMMARY.INTERVENTION)
_KNOWN = set(S.MEDIATION_SUMMARY.COLUMNS) | set(S.EFFECTS.COLUMNS)


def xz_lines(
    result: XZResult | pd.DataFrame,
    *,
    layer: int | Sequence[int] | None = None,
    baselines: bool | Sequence[str] = True,
    title: str = "How much the latents change when the input is perturbed (X → Z)",
    x_title: str = "latent step",
    subtitle: str | None = None,
) -> go.Figure:
    """Change of the latents vs step, one line (with CI band) per perturbation; baselines as flat lines.

    Parameters
    ----------
    result : XZResult or its ``summary`` table
        Columns :class:`latentprobe.schema.XZ_SUMMARY`.  One facet row per residual layer, one
        facet column per metric (``cosine``, ``rel_l2``), each with its own y axis.
    layer : int or list of int, optional
        Layer(s) to show; default all.
    baselines : bool or list of str, default True
        Draw the prompt-token baselines (sources other than ``latent``, e.g. ``image_mean``) as
        flat dotted lines in the perturbation's colour: the same comparison at prompt positions.
    title : str
        The figure's title.
    subtitle : str | None
        A line under the title (``None``: none).
    x_title : str
        The x axis' title.

    Returns
    -------
    plotly.graph_objects.Figure
        Per (layer, metric, perturbation): a band trace (when any bound is finite), a line trace
        and one flat trace per baseline.  Small changes of the latents do not show that the
        answer ignores the input; compare with the baselines.
    """
    func = "xz_lines"
    cols = S.XZ_SUMMARY
    df = C.table(result, func, "summary", _XZ)
    C.require(df, [cols.PERTURBATION, cols.SOURCE, cols.STEP, cols.LAYER, cols.METRIC, cols.ESTIMATE], func, _XZ)
    df = C.select(df, cols.LAYER, layer, func, "layer")
    lat = df[df[cols.SOURCE] == _LATENT]
    if lat.empty:
        raise VizInputError(f"{func}: the table has no {cols.SOURCE}={_LATENT!r} rows; pass {_XZ} with latents.")
    base = df[df[cols.SOURCE] != _LATENT]
    if baselines is False:
        base = base.iloc[:0]
    elif baselines is not True:
        base = base[base[cols.SOURCE].isin(C.as_list(baselines))]
    layers = C.ordered(lat[cols.LAYER])
    metrics = C.ordered(lat[cols.METRIC], first=S.XZ_METRICS)
    perturbations = C.ordered(lat[cols.PERTURBATION])
    palette = C.colors(perturbations)
    dashes = {s: _BASELINE_DASH[i % len(_BASELINE_DASH)] for i, s in enumerate(C.ordered(base[cols.SOURCE]))}
    multi = len(layers) > 1
    titles = [f"layer {l} — {C.pretty(m)}" if multi else C.pretty(m) for l in layers for m in metrics]
    fig = make_subplots(
        rows=len(layers), cols=len(metrics), subplot_titles=titles,
        horizontal_spacing=0.1 if len(metrics) > 1 else 0.0,
        vertical_spacing=min(0.12, 0.3 / max(1, len(layers) - 1)) if multi else 0.0,
    )
    seen: set[Any] = set()
    for i, lay in enumerate(layers, start=1):
        for j, metric in enumerate(metrics, start=1):
            cell = (df[cols.LAYER] == lay) & (df[cols.METRIC] == metric)
            for pert in perturbations:
                sub = lat[cell.loc[lat.index] & (lat[cols.PERTURBATION] == pert)]
                if sub.empty:
                    continue
                C.line_with_band(fig, sub, x=cols.STEP, y=cols.ESTIMATE, name=str(pert), color=palette[pert],
                                 func=func, showlegend=pert not in seen, legendgroup=str(pert), row=i, col=j)
                seen.add(pert)
                steps = C.num(sub, cols.STEP, func)
                ref = base[cell.loc[base.index] & (base[cols.PERTURBATION] == pert)]
                for src, value in zip(ref[cols.SOURCE], C.num(ref, cols.ESTIMATE, func)):
                    fig.add_trace(go.Scatter(
                        x=[steps.min(), steps.max()], y=[value, value], mode="lines", name=f"{pert}: {src}",
                        legendgroup=str(pert), showlegend=False,
                        line={"color": palette[pert], "dash": dashes[src], "width": 1},
                        hovertemplate=f"{C.escape_hover(src)} (prompt baseline)<br>{metric}=%{{y:.3f}}"
                                      f"<extra>{C.escape_hover(str(pert))}</extra>",
                    ), row=i, col=j)
            fig.update_yaxes(title_text=C.pretty(metric), row=i, col=j)
            drawn = df[cell & (df[cols.SOURCE] == _LATENT)]
            drawn = pd.concat([drawn, base[cell.loc[base.index]]])
            values = [C.num(drawn, c, func) for c in (cols.ESTIMATE, S.CI_LOW, S.CI_HIGH) if c in drawn.columns]
            C.set_range(fig, metric, np.concatenate(values) if values else [], row=i, col=j)
            fig.update_xaxes(dtick=1, row=i, col=j)
            if i == len(layers):
                fig.update_xaxes(title_text=x_title, row=i, col=j)
    if subtitle is None and dashes:
        subtitle = "Flat lines: the same comparison at prompt positions (" + ", ".join(
            f"{d}: {s}" for s, d in dashes.items()) + ")"
    if subtitle is None and not multi:
        subtitle = f"layer {layers[0]}"
    return C.finish(fig, title, kind=func, subtitle=subtitle, height=max(420, 320 * len(layers)))


def zy_bars(
    result: ZYResult | pd.DataFrame,
    *,
    metrics: str | Sequence[str] | None = None,
    modes: str | Sequence[str] | None = None,
    title: str = "How the output changes when the latents are intervened on (Z → Y)",
    x_title: str = "intervention",
    subtitle: str | None = None,
    mark: str | None = "holm",
    alpha: float = 0.05,
) -> go.Figure:
    """Outcome per intervention, bars coloured by mode, CI whiskers; one panel per metric; surviving effects starred.

    Parameters
    ----------
    result : ZYResult or its ``summary`` table
        Columns :class:`latentprobe.schema.ZY_SUMMARY`.  The original run's accuracy
        (``mode="run"``) is drawn as a dashed line on the ``accuracy`` panel.
    metrics : str or list, optional
        Panels, left to right; default every metric present (order of :data:`~latentprobe.schema.ZY_METRICS`).
    modes : str or list, optional
        Modes to show; default all.
    title : str
        The figure's title.
    subtitle : str | None
        A line under the title (``None``: none).
    x_title : str
        The x axis' title.
    mark : {"holm", "bh"} or None, default "holm"
        Star the bars whose ``p_holm`` (or ``p_bh``) is at most ``alpha``: the effects that survive
        the adjustment over the intervention x mode cells of their metric.  Metrics without a test
        (NaN p-values), ``None`` or a table without the column star nothing.
    alpha : float, default 0.05
        Level of the marks.

    Returns
    -------
    plotly.graph_objects.Figure
        One bar trace per (metric, mode), the control ``none`` included.  Patched activations can
        be out of distribution: a drop in accuracy shows sensitivity to the patch, not that the
        latents carry the reasoning in normal runs.
    """
    func = "zy_bars"
    cols = S.ZY_SUMMARY
    df = C.table(result, func, "summary", _ZY)
    C.require(df, [cols.INTERVENTION, cols.MODE, cols.METRIC, cols.ESTIMATE, cols.CI_LOW, cols.CI_HIGH], func, _ZY)
    run = df[df[cols.MODE] == S.RUN_MODE]
    df = C.select(df[df[cols.MODE] != S.RUN_MODE], cols.MODE, modes, func, "modes")
    df = C.select(df, cols.METRIC, metrics, func, "metrics")
    if df.empty:
        raise VizInputError(f"{func}: no intervened rows to plot (only mode={S.RUN_MODE!r}); pass {_ZY}.")
    shown = C.ordered(df[cols.METRIC], first=C.as_list(metrics) if metrics is not None else S.ZY_METRICS)
    mode_names = C.ordered(df[cols.MODE])
    interventions = [str(v) for v in C.ordered(df[cols.INTERVENTION])]
    palette = C.colors(mode_names)
    keep, mark_line = C.survivors(df, mark, alpha, func)
    df = df.assign(_star=np.where(keep, "★", "") if keep is not None else "")
    if mark_line:
        subtitle = f"{subtitle}; {mark_line}" if subtitle else mark_line
    fig = make_subplots(rows=1, cols=len(shown), subplot_titles=[C.pretty(m) for m in shown],
                        horizontal_spacing=min(0.12, 0.36 / (len(shown) - 1)) if len(shown) > 1 else 0.0)
    seen: set[Any] = set()
    for j, m in enumerate(shown, start=1):
        panel = df[df[cols.METRIC] == m]
        for mode in mode_names:
            sub = panel[panel[cols.MODE] == mode]
            if sub.empty:
                continue
            if sub[cols.INTERVENTION].duplicated().any():
                raise VizInputError(f"{func}: several rows for metric {m!r}, mode {mode!r} and one intervention; "
                                    "filter the table first (e.g. one model or variant).")
            sub = sub.set_index(sub[cols.INTERVENTION].astype(str)).reindex(interventions)
            est = C.num(sub, cols.ESTIMATE, func)
            lo, hi = C.num(sub, cols.CI_LOW, func), C.num(sub, cols.CI_HIGH, func)
            custom = [lo, hi]
            hover = C.hover_extras(sub, custom, "%{x}<br>estimate=%{y:.4g}<br>CI [%{customdata[0]:.4g}, "
                                   "%{customdata[1]:.4g}]", func)
            fig.add_trace(go.Bar(
                x=interventions, y=est, name=str(mode), legendgroup=str(mode), showlegend=mode not in seen,
                marker={"color": palette[mode]}, error_y=C.error_bars(est, lo, hi, color=C.BAR_ERROR),
                customdata=np.column_stack(custom), text=sub["_star"].fillna("").tolist(),
                textposition="outside", cliponaxis=False,
                hovertemplate=hover + f"<extra>{C.escape_hover(str(mode))}</extra>",
            ), row=1, col=j)
            seen.add(mode)
        ref = run[run[cols.METRIC] == m]
        if len(ref):
            level = float(ref[cols.ESTIMATE].iloc[0])
            fig.add_hline(y=level, row=1, col=j, line={"color": C.PALETTE[6], "width": 1.5, "dash": "dash"},
                          annotation_text="original run",  # below the line near the top: clear of the panel title
                          annotation_position="bottom right" if level > 0.85 else "top right")
        fig.add_hline(y=0.0, line={"color": C.PALETTE[6], "width": 1}, row=1, col=j)
        fig.update_yaxes(title_text=C.axis_title(m), row=1, col=j)
        shown_values = [C.num(panel, c, func) for c in (cols.ESTIMATE, cols.CI_LOW, cols.CI_HIGH)]
        if len(ref):
            shown_values.append(C.num(ref, cols.ESTIMATE, func))
        C.set_range(fig, m, np.concatenate(shown_values), include_zero=True, row=1, col=j)
        fig.update_xaxes(type="category", title_text=x_title, row=1, col=j)
    fig.update_layout(barmode="group")
    out = C.finish(fig, title, kind=func, subtitle=subtitle)
    out.update_layout(legend_title_text=S.ZY_SUMMARY.MODE)
    return out


def _effects_table(effects: Any, func: str, instead: str) -> pd.DataFrame:
    """Effects as a table: Effect sequences/mappings via ``effects_frame``; results via ``summary``."""
    from latentprobe.stats import Effect, effects_frame

    if isinstance(effects, Mapping) and effects and all(isinstance(e, Effect) for e in effects.values()):
        effects = list(effects.values())
    if isinstance(effects, Sequence) and not isinstance(effects, (str, pd.DataFrame)):
        if effects and all(isinstance(e, Effect) for e in effects):
            return effects_frame(list(effects))
    df = C.table(effects, func, "summary", instead)
    if S.MEDIATION_SUMMARY.KIND in df.columns:
        df = df[df[S.MEDIATION_SUMMARY.KIND] == S.EFFECT_KINDS[0]]
        if df.empty:
            raise VizInputError(f"{func}: no rows of kind {S.EFFECT_KINDS[0]!r}; pass {instead}.")
    return df


def _ci_hover(sub: pd.DataFrame, est_axis: str, func: str) -> tuple[np.ndarray, np.ndarray, list, str]:
    lo, hi = C.num(sub, S.CI_LOW, func), C.num(sub, S.CI_HIGH, func)
    custom = [lo, hi]
    hover = C.hover_extras(sub, custom, f"%{{{est_axis}:.4g}}<br>CI [%{{customdata[0]:.4g}}, "
                           "%{customdata[1]:.4g}]", func)
    return lo, hi, custom, hover


def effects_forest(
    effects: MediationResult | Sequence[Effect] | Mapping[str, Effect] | pd.DataFrame,
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
    effects : MediationResult, Effect list or mapping, or a table
        A :func:`~latentprobe.causal.decompose` result (its TE, NDE, NIE and interaction),
        ``MediationResult.effects``, a list of :class:`~latentprobe.stats.Effect`, an
        :func:`~latentprobe.stats.effects_frame` table, or any table with a label column and
        ``estimate, ci_low, ci_high``.  Rows with a non-empty ``note`` are drawn with open markers.
    by : str, optional
        Column whose values become separately coloured, side-by-side series.
    label : str, optional
        Row-label column; default the first of ``name``, ``effect``, ``intervention`` present.
    title : str | None
        The figure's title.
    subtitle : str | None
        A line under the title (``None``: none).
    x_title : str
        The x axis' title.

    Returns
    -------
    plotly.graph_objects.Figure
        One scatter trace with horizontal error bars per series; the first row is at the top.
        Intervals are not corrected for multiple comparisons.

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe import viz
    >>> from latentprobe.stats import bootstrap_ci
    >>> rng = np.random.default_rng(0)
    >>> effs = [bootstrap_ci(rng.normal(m, 1, 40), name=f"shift {m}", n_boot=200) for m in (0.0, 1.0)]
    >>> fig = viz.effects_forest(effs)
    >>> list(fig.data[0].y), bool(np.allclose(fig.data[0].x, [e.estimate for e in effs]))
    (['shift 0.0', 'shift 1.0'], True)
    """
    func = "effects_forest"
    df = _effects_table(effects, func, _MED)
    if label is None:
        label = next((c for c in _LABELS if c in df.columns), None)
        if label is None:
            raise VizInputError(f"{func}: missing a label column (one of {[str(c) for c in _LABELS]} or "
                                f"label=<column>); the table has columns {C.columns_of(df)}. Pass {_MED}.")
    C.require(df, [label, S.ESTIMATE, S.CI_LOW, S.CI_HIGH], func, _MED)
    if by is not None:
        C.require(df, [by], func, _MED)
    rows = [str(v) for v in C.ordered(df[label])]
    grouped = C.groups(df, [by] if by else [])
    palette = C.colors([g for g, _ in grouped])
    fig = go.Figure()
    for name, sub in grouped:
        est = C.num(sub, S.ESTIMATE, func)
        lo, hi, custom, hover = _ci_hover(sub, "x", func)
        color = palette[name] if name is not None else C.PALETTE[0]
        notes = sub[S.NOTE].fillna("").astype(str).tolist() if S.NOTE in sub.columns else [""] * len(sub)
        fig.add_trace(go.Scatter(
            x=est, y=sub[label].astype(str).tolist(), mode="markers",
            name=name if name is not None else "estimate", showlegend=name is not None,
            marker={"color": color, "size": 9, "symbol": ["circle-open" if n else "circle" for n in notes],
                    "line": {"width": 2, "color": color}},
            error_x=C.error_bars(est, lo, hi, color=color), customdata=np.column_stack(custom),
            text=[C.escape_hover(n) for n in notes], hovertemplate="%{y}<br>estimate=" + hover + "<br>%{text}<extra></extra>",
        ))
    fig.add_vline(x=0.0, line={"color": C.PALETTE[6], "width": 1, "dash": "dot"})
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=rows[::-1])
    if by is not None:
        fig.update_layout(scattermode="group", scattergap=0.5)
    if title is None:
        level = 0.95
        if S.EFFECTS.CONFIDENCE in df.columns:
            conf = C.num(df, S.EFFECTS.CONFIDENCE, func)
            conf = conf[np.isfinite(conf)]
            if conf.size and np.allclose(conf, conf[0]):
                level = float(conf[0])
        title = f"Effect estimates with {level:.0%} confidence intervals"
    if subtitle is None and S.NOTE in df.columns and (df[S.NOTE].fillna("").astype(str) != "").any():
        subtitle = "Open markers: the row carries a note (e.g. small sample); hover for details."
    per_row = 34 if by is None else 12 + 20 * len(grouped)
    return C.finish(fig, title, kind=func, x_title=x_title, y_title=label, subtitle=subtitle,
                    height=max(320, 150 + per_row * len(rows)))


def decomposition_bars(
    result: MediationResult | pd.DataFrame | Mapping[str, MediationResult],
    *,
    by: str | None = None,
    title: str = "Mediation: total, direct and indirect effects",
    y_title: str = "effect on the outcome (treated − clean)",
    subtitle: str | None = "TE = NDE + NIE holds only without an X×Z interaction.",
) -> go.Figure:
    """Bars of TE / NDE / NIE (and the interaction) with CI whiskers, side by side per ``by`` group.

    Parameters
    ----------
    result : MediationResult, its ``summary``, a mapping name -> MediationResult, or effects
        Rows of kind ``effect`` of :class:`latentprobe.schema.MEDIATION_SUMMARY` (TE, NDE, NIE,
        interaction, in that order), an :func:`~latentprobe.stats.effects_frame` table or a list
        of :class:`~latentprobe.stats.Effect`.  A mapping is stacked into one bar group per name.
    by : str, optional
        Grouping column (e.g. ``variant`` when summaries of several models are stacked).  When
        omitted and an effect appears more than once, the one added column that varies is used.
    title : str
        The figure's title.
    subtitle : str | None
        A line under the title (``None``: none).
    y_title : str
        The y axis' title.

    Returns
    -------
    plotly.graph_objects.Figure
        One bar trace per group (one without grouping).  With TE, NDE and NIE present, the hover
        shows the gap ``TE − NDE − NIE``.

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe import viz
    >>> from latentprobe.stats import mediation_effects
    >>> clean = np.ones(40)
    >>> treated = (np.random.default_rng(0).random(40) < 0.3).astype(float)
    >>> effects = mediation_effects(clean, treated, clean, treated, n_boot=200)  # all through Z
    >>> fig = viz.decomposition_bars(effects)
    >>> list(fig.data[0].x), float(fig.data[0].y[1])
    (['TE', 'NDE', 'NIE'], 0.0)
    """
    func = "decomposition_bars"
    if isinstance(result, Mapping) and result and all(hasattr(v, "summary") for v in result.values()):
        by = by or "result"
        result = C.stack_mapping(result, func, "summary", by, _MED)
    df = _effects_table(result, func, _MED)
    effect = S.MEDIATION_SUMMARY.EFFECT
    if effect not in df.columns and S.EFFECTS.NAME in df.columns:
        df = df.rename(columns={S.EFFECTS.NAME: effect})
    C.require(df, [effect, S.ESTIMATE, S.CI_LOW, S.CI_HIGH], func, _MED)
    if by is None and df[effect].duplicated().any():
        extra = [c for c in df.columns if c not in _KNOWN and df[c].nunique(dropna=False) > 1]
        if len(extra) != 1:
            raise VizInputError(f"{func}: some effects appear more than once; pass by=<column> naming what tells "
                                f"the rows apart (columns: {C.columns_of(df)}).")
        by = extra[0]
    if by is not None:
        C.require(df, [by], func, _MED)
    order = [str(e) for e in C.ordered(df[effect].astype(str), first=S.EFFECT_NAMES)]
    grouped = C.groups(df, [by] if by else [])
    palette = C.colors([g for g, _ in grouped])
    fig = go.Figure()
    for name, sub in grouped:
        if sub[effect].duplicated().any():
            raise VizInputError(f"{func}: group {name!r} has several rows for one effect; filter the table first.")
        sub = sub.set_index(sub[effect].astype(str)).reindex(order)
        est = C.num(sub, S.ESTIMATE, func)
        lo, hi, custom, hover = _ci_hover(sub, "y", func)
        if all(e in order for e in S.EFFECT_NAMES[:3]):
            v = dict(zip(order, est))
            te, nde, nie = S.EFFECT_NAMES[:3]
            custom.append(np.full(len(order), v[te] - v[nde] - v[nie]))
            hover += f"<br>TE − NDE − NIE = %{{customdata[{len(custom) - 1}]:.4g}}"
        fig.add_trace(go.Bar(
            x=order, y=est, name=name if name is not None else "estimate", showlegend=name is not None,
            marker={"color": palette[name] if name is not None else C.PALETTE[0]},
            error_y=C.error_bars(est, lo, hi, color=C.BAR_ERROR), customdata=np.column_stack(custom),
            hovertemplate="%{x}=" + hover + f"<extra>{C.escape_hover(name or '')}</extra>",
        ))
    fig.add_hline(y=0.0, line={"color": C.PALETTE[6], "width": 1})
    fig.update_layout(barmode="group")
    fig.update_xaxes(type="category")
    return C.finish(fig, title, kind=func, x_title=effect, y_title=y_title, subtitle=subtitle)
