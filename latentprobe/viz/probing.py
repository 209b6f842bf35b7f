"""Figures of the probing analyses (:mod:`latentprobe.probing`): a layer x step heatmap of a probe
sweep, and a probe's score next to its baselines and controls.

Every figure takes the result the analysis returns (or its table) and reads its columns from
:mod:`latentprobe.schema`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from latentprobe import schema as S
from latentprobe.errors import VizInputError
from latentprobe.viz import _common as C

if TYPE_CHECKING:  # pragma: no cover
    from latentprobe.probing.sweep import ProbeSweepResult

__all__ = ["probe_heatmap", "probe_controls"]

_SWEEP = "a ProbeSweepResult (latentprobe.probing.probe_sweep) or its .scores"
_EITHER = "a ProbeSweepResult (probe_sweep), its .scores, or the compare_representations table"


def probe_heatmap(
    sweep: ProbeSweepResult | pd.DataFrame,
    value: str = S.PROBE_SCORES.SCORE,
    *,
    target: str | None = None,
    title: str | None = None,
    zmin: float | None = None,
    zmax: float | None = None,
    annotate: bool | None = None,
    mark: str | None = "holm",
    alpha: float = 0.05,
) -> go.Figure:
    """Layer x step heatmap of a probe sweep column (``score``, ``selectivity``, ...), surviving cells starred.

    Parameters
    ----------
    sweep : ProbeSweepResult or its ``scores`` table
        Columns :class:`latentprobe.schema.PROBE_SCORES`.
    value : str, default ``"score"``
        Column to colour by.  Values with both signs (e.g. ``selectivity``) use a diverging
        scale centred at 0.
    target : optional
        Target to show when the table holds several.
    title : str | None
        The figure's title (default: names the value).
    zmin : float | None
        Lower end of the colour scale (default: the score's range).
    zmax : float | None
        Upper end of the colour scale.
    annotate : bool | None
        Write each cell's value (default: when the grid is small).
    mark : {"holm", "bh"} or None, default "holm"
        Star the cells whose ``p_holm`` (or ``p_bh``) is at most ``alpha``: the cells that beat
        label-blind predictions after the adjustment over the sweep's cells.  ``None``, or a table
        without the column, stars nothing.
    alpha : float, default 0.05
        Level of the marks.

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Heatmap`` trace (rows = layers, columns = steps) and, when a cell survives, a
        ``Scatter`` of stars on the surviving cells.  The hover shows the CI of ``score`` and the
        simultaneous interval.  Only starred cells are distinguishable from chance after the
        multiple-comparison adjustment; the best cell is where the target is most decodable, not
        where the model uses it.

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe import viz
    >>> from latentprobe.probing import LinearProbe, probe_sweep
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1, 2], 20)
    >>> feats = rng.normal(size=(60, 2, 2, 4)) + 2.0 * y[:, None, None, None]
    >>> sweep = probe_sweep(feats, y, np.arange(60) // 2, n_splits=3, controls=False, progress=False,
    ...                     probe=LinearProbe(Cs=(1.0,), inner_cv=2))
    >>> fig = viz.probe_heatmap(sweep)
    >>> np.asarray(fig.data[0].z).shape  # layers x steps
    (2, 2)
    >>> len(fig.data[1].x)  # all four cells carry y and survive Holm
    4
    """
    func = "probe_heatmap"
    cols = S.PROBE_SCORES
    df = C.table(sweep, func, "scores", _SWEEP)
    C.require(df, [cols.LAYER, cols.STEP, value], func, _SWEEP)
    df = C.single_valued(df, cols.TARGET, target, func, "target")
    if df.duplicated([cols.LAYER, cols.STEP]).any():
        raise VizInputError(f"{func}: several rows share a (layer, step); filter the table (e.g. by task) first.")
    layers = sorted(pd.unique(df[cols.LAYER]))
    steps = sorted(pd.unique(df[cols.STEP]))
    index = pd.MultiIndex.from_frame(df[[cols.LAYER, cols.STEP]])

    def pivot(col: str) -> np.ndarray:
        s = pd.Series(C.num(df, col, func), index=index)
        return s.unstack(cols.STEP).reindex(index=layers, columns=steps).to_numpy(dtype=np.float64)

    z = pivot(value)
    finite = z[np.isfinite(z)]
    task = _task(df)
    diverging = value == cols.SELECTIVITY or (finite.size > 0 and finite.min() < 0 < finite.max())
    if zmin is None and zmax is None:
        zmin, zmax = _range(value, task, finite, diverging)
    hover = f"layer %{{y}}, step %{{x}}<br>{value}=%{{z:.3f}}"
    customdata = None
    if value == cols.SCORE and C.has_ci(df):
        parts = [pivot(cols.CI_LOW), pivot(cols.CI_HIGH)]
        hover += "<br>CI [%{customdata[0]:.3f}, %{customdata[1]:.3f}]"
        if cols.CI_LOW_SIMULTANEOUS in df.columns:
            parts += [pivot(cols.CI_LOW_SIMULTANEOUS), pivot(cols.CI_HIGH_SIMULTANEOUS)]
            hover += "<br>simultaneous CI [%{customdata[2]:.3f}, %{customdata[3]:.3f}]"
        customdata = np.stack(parts, axis=-1)
    if annotate is None:
        annotate = len(layers) * len(steps) <= 300
    fig = go.Figure(go.Heatmap(
        z=z, x=[str(s) for s in steps], y=[str(v) for v in layers], zmin=zmin, zmax=zmax,
        zmid=0.0 if diverging else None, colorscale=C.DIVERGING if diverging else C.SEQUENTIAL,
        colorbar={"title": {"text": _name(value, task)}}, customdata=customdata, hovertemplate=hover + "<extra></extra>",
        texttemplate="%{z:.2f}" if annotate else None, xgap=1, ygap=1,
    ))
    keep, mark_line = C.survivors(df, mark, alpha, func)
    if keep is not None and keep.any():
        hit = df[keep]
        fig.add_trace(go.Scatter(
            x=[str(v) for v in hit[cols.STEP]], y=[str(v) for v in hit[cols.LAYER]], mode="markers",
            marker={"symbol": "star", "size": 12, "color": "white", "line": {"color": "black", "width": 1}},
            name=f"survives {mark} at {alpha:g}", hoverinfo="skip", showlegend=False,
        ))
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category")
    tgt = f" — target: {df[cols.TARGET].iloc[0]}" if cols.TARGET in df.columns else ""
    if title is None:
        name = _name(value, task)
        title = (f"Linear probe {name} by layer and latent step{tgt}" if value == cols.SCORE
                 else f"{name[:1].upper()}{name[1:]} of the linear probe by layer and latent step{tgt}")
    subtitle = None
    if cols.CHANCE in df.columns:
        chance = C.num(df, cols.CHANCE, func)
        chance = chance[np.isfinite(chance)]
        if chance.size and np.allclose(chance, chance[0]):
            subtitle = f"chance = {chance[0]:.3g}; decodable is not the same as used by the model"
    if mark_line:
        subtitle = f"{subtitle}; {mark_line}" if subtitle else mark_line
    return C.finish(fig, title, kind=func, x_title="latent step", y_title="layer", subtitle=subtitle)


def _task(df: pd.DataFrame) -> str | None:
    """``"classification"`` or ``"regression"`` when the table says so for every row, else None."""
    col = S.PROBE_SCORES.TASK
    if col in df.columns:
        tasks = set(df[col].astype(str))
        if len(tasks) == 1:
            return tasks.pop()
    return None


#: Columns holding a classification accuracy (the score and its baselines): all in [0, 1].
_ACCURACIES = (S.PROBE_SCORES.SCORE, S.PROBE_SCORES.MAJORITY, S.PROBE_SCORES.SHUFFLE, S.PROBE_SCORES.CONTROL)


def _name(value: str, task: str | None) -> str:
    """The column's name for a title or colour bar: what the score is (accuracy, R²), never "probe probe score"."""
    cols = S.PROBE_SCORES
    score = {"classification": "accuracy", "regression": "R²"}.get(task or "", "score")
    if value == cols.SCORE:
        return f"held-out {score}"
    if value == cols.SELECTIVITY:
        return f"selectivity ({score} − control task)"
    return {cols.MAJORITY: f"majority-baseline {score}", cols.SHUFFLE: f"shuffled-label {score}",
            cols.CONTROL: f"control-task {score}"}.get(value, C.pretty(value))


def _range(value: str, task: str | None, finite: np.ndarray, diverging: bool) -> tuple[float | None, float | None]:
    """The colour scale on the value's own range: [0, 1] for an accuracy, [-1, 1] for the selectivity of one,
    [min(0, lowest), 1] for R², symmetric about 0 for other signed values."""
    if task == "classification" and value in _ACCURACIES:
        return 0.0, 1.0
    if task == "classification" and value == S.PROBE_SCORES.SELECTIVITY:
        return -1.0, 1.0
    if task == "regression" and value in _ACCURACIES:
        low = float(finite.min()) if finite.size else 0.0
        return min(0.0, low), 1.0
    if diverging and finite.size:
        bound = float(np.abs(finite).max()) or 1.0
        return -bound, bound
    return None, None


def probe_controls(
    result: ProbeSweepResult | pd.DataFrame,
    *,
    x: str | None = None,
    target: str | None = None,
    title: str = "Probe score next to its baselines and controls",
    y_title: str = "held-out score",
    subtitle: str | None = "Score well above majority, shuffled labels and the control task = decodable, not used.",
) -> go.Figure:
    """Grouped bars: probe score (with CI whiskers), majority, shuffled labels, control task; chance line.

    Parameters
    ----------
    result : DataFrame or ProbeSweepResult
        The :func:`~latentprobe.probing.compare_representations` table (one bar group per
        ``representation``; :class:`~latentprobe.schema.PROBE_COMPARISON`) or a probe sweep
        (one group per layer and step; filter a large sweep first).  ``majority``, ``shuffle``,
        ``control`` and ``chance`` are drawn when not all NaN.
    x : str, optional
        Category column; default ``representation`` when present, otherwise ``"layer L, step S"``.
    target : optional
        Keep one target; with several targets and none chosen, the target prefixes each category.
    title : str
        The figure's title.
    subtitle : str | None
        A line under the title (``None``: none).
    y_title : str
        The y axis' title.

    Returns
    -------
    plotly.graph_objects.Figure
        One bar trace per available column among score/majority/shuffle/control; chance is a
        dashed horizontal line when constant, else a marker trace.

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe import viz
    >>> from latentprobe.probing import LinearProbe, compare_representations
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 12)
    >>> reps = {"latent": rng.normal(size=(24, 4)) + y[:, None], "noise": rng.normal(size=(24, 4))}
    >>> table = compare_representations(reps, y, np.arange(24) // 2, n_splits=3, seed=0,
    ...                                 control_types=np.arange(24) % 3, probe=LinearProbe(Cs=(1.0,), inner_cv=2))
    >>> [t.name for t in viz.probe_controls(table).data]
    ['probe', 'majority baseline', 'shuffled labels', 'control task']
    """
    func = "probe_controls"
    cols = S.PROBE_COMPARISON
    df = C.table(result, func, "scores", _EITHER)
    C.require(df, [cols.SCORE], func, _EITHER)
    if target is not None:
        df = C.single_valued(df, cols.TARGET, target, func, "target")
    if x is None:
        if cols.REPRESENTATION in df.columns:
            labels = df[cols.REPRESENTATION].astype(str)
            x_title = "representation"
        elif S.PROBE_SCORES.LAYER in df.columns and S.PROBE_SCORES.STEP in df.columns:
            labels = ("layer " + df[S.PROBE_SCORES.LAYER].astype(str) + ", step "
                      + df[S.PROBE_SCORES.STEP].astype(str))
            x_title = "layer, latent step"
        else:
            raise VizInputError(
                f"{func}: cannot tell the bar groups apart: need a {cols.REPRESENTATION!r} column, "
                f"{S.PROBE_SCORES.LAYER!r} and {S.PROBE_SCORES.STEP!r} columns, or x=<column>; the table has "
                f"columns {C.columns_of(df)}. Pass {_EITHER}."
            )
    else:
        C.require(df, [x], func, _EITHER)
        labels = df[x].astype(str)
        x_title = x
    if cols.TARGET in df.columns and df[cols.TARGET].nunique() > 1:
        labels = df[cols.TARGET].astype(str) + ": " + labels
    labels = labels.tolist()
    if len(set(labels)) != len(labels):
        raise VizInputError(f"{func}: bar groups are not unique ({len(labels)} rows, {len(set(labels))} labels); "
                            "filter the table or pass x=<unique column>.")
    fig = go.Figure()
    score = C.num(df, cols.SCORE, func)
    custom: list[np.ndarray] = []
    hover = "%{x}<br>score=%{y:.3f}"
    err = None
    if C.has_ci(df):
        lo, hi = C.num(df, cols.CI_LOW, func), C.num(df, cols.CI_HIGH, func)
        err = C.error_bars(score, lo, hi, color=C.BAR_ERROR)
        custom += [lo, hi]
        hover += "<br>CI [%{customdata[0]:.3f}, %{customdata[1]:.3f}]"
    for extra in (cols.SELECTIVITY, cols.N, cols.N_GROUPS):
        if extra in df.columns:
            custom.append(C.num(df, extra, func))
            fmt = ".3f" if extra == cols.SELECTIVITY else ".0f"
            hover += f"<br>{extra}=%{{customdata[{len(custom) - 1}]:{fmt}}}"
    fig.add_trace(go.Bar(x=labels, y=score, name="probe", marker={"color": C.PALETTE[0]}, error_y=err,
                         customdata=np.column_stack(custom) if custom else None,
                         hovertemplate=hover + "<extra>probe</extra>"))
    for col, color in ((cols.MAJORITY, C.GREY), (cols.SHUFFLE, C.PALETTE[1]), (cols.CONTROL, C.PALETTE[4])):
        if col in df.columns:
            vals = C.num(df, col, func)
            if np.isfinite(vals).any():
                fig.add_trace(go.Bar(x=labels, y=vals, name=C.pretty(col), marker={"color": color},
                                     hovertemplate=f"%{{x}}<br>{col}=%{{y:.3f}}<extra>{C.pretty(col)}</extra>"))
    if cols.CHANCE in df.columns:
        chance = C.num(df, cols.CHANCE, func)
        ok = np.isfinite(chance)
        if ok.any():
            if np.allclose(chance[ok], chance[ok][0]):
                fig.add_hline(y=float(chance[ok][0]), line={"dash": "dash", "color": C.PALETTE[6], "width": 1.5},
                              annotation_text=f"chance = {chance[ok][0]:.3g}", annotation_position="top right")
            else:
                fig.add_trace(go.Scatter(
                    x=labels, y=chance, mode="markers", name="chance",
                    marker={"symbol": "line-ew-open", "size": 28, "color": C.PALETTE[6], "line": {"width": 2}},
                    hovertemplate="%{x}<br>chance=%{y:.3f}<extra>chance</extra>",
                ))
    fig.update_layout(barmode="group")
    fig.update_xaxes(type="category")
    if cols.TASK in df.columns and (df[cols.TASK] == "classification").all():
        C.set_range(fig, "accuracy", [0.0, 1.0])  # held-out accuracy: the whole [0, 1]
    return C.finish(fig, title, kind=func, x_title=x_title, y_title=y_title, subtitle=subtitle)
