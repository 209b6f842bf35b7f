"""Shared styling and building blocks of the figures: palette, input checks, error bars, bands, finishing.

Column names come from :mod:`latentprobe.schema` only; this module holds no analysis column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from latentprobe import schema as S
from latentprobe.errors import VizInputError
from latentprobe.viz.captions import AXIS_TITLES, CAPTIONS, metric_range

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

GREY = "#8C8C8C"
DIVERGING = "RdBu_r"  # ColorBrewer RdBu: colour-blind safe, blue < 0 < red
SEQUENTIAL = "Viridis"
BAR_ERROR = "#333333"

# Sources that keep the same colour in every figure.
_FIXED_COLORS = {
    S.SOURCES[0]: PALETTE[0],  # latent
    "text_tokens": PALETTE[1],
    "image_tokens": PALETTE[2],
    "prompt_last": PALETTE[3],
    S.SOURCES[1]: GREY,  # random_matched_norm
}

_PRETTY = {
    S.COLLAPSE_TABLE.WITHIN_INSTANCE_MEAN: "within-instance cosine",
    S.COLLAPSE_TABLE.CONSECUTIVE_MEAN: "consecutive-step cosine",
    S.COLLAPSE_TABLE.ACROSS_INSTANCE_MEAN: "across-instance cosine",
    S.ACROSS_BY_GROUP.WITHIN_GROUP_MEAN: "same-group cosine",
    S.ACROSS_BY_GROUP.BETWEEN_GROUP_MEAN: "different-group cosine",
    S.COLLAPSE_TABLE.EFFECTIVE_RANK: "effective rank",
    S.COLLAPSE_TABLE.PARTICIPATION_RATIO: "participation ratio",
    S.COLLAPSE_TABLE.MEAN_NORM: "mean L2 norm",
    S.PROBE_SCORES.SCORE: "probe score",
    S.PROBE_SCORES.SELECTIVITY: "selectivity (score − control)",
    S.PROBE_SCORES.MAJORITY: "majority baseline",
    S.PROBE_SCORES.SHUFFLE: "shuffled labels",
    S.PROBE_SCORES.CONTROL: "control task",
    S.XZ_ROWS.COSINE: "cosine(clean, perturbed)",
    S.XZ_ROWS.REL_L2: "relative L2 change ‖z′−z‖/‖z‖",
    "accuracy": "accuracy",
    "accuracy_change": "accuracy change vs control",
    "flip_rate": "answer flip rate",
    "gold_logprob_change": "Δ log p(gold answer)",
    "recorded_logprob_change": "Δ log p(recorded answer)",
    S.ZY_ROWS.KL: "KL at first answer token",
}


def pretty(name: Any) -> str:
    return _PRETTY.get(str(name), str(name))


def axis_title(name: Any) -> str:
    """Axis title with direction and unit where known (:data:`latentprobe.viz.captions.AXIS_TITLES`)."""
    return AXIS_TITLES.get(str(name), pretty(name))


def columns_of(df: pd.DataFrame) -> list[str]:
    return [str(c) for c in df.columns]


def table(obj: Any, func: str, attr: str | None, instead: str) -> pd.DataFrame:
    """``obj`` as a non-empty DataFrame (``obj.<attr>`` for a result object); ``instead`` says what to pass."""
    if attr is not None and not isinstance(obj, pd.DataFrame) and hasattr(obj, attr):
        obj = getattr(obj, attr)
    if not isinstance(obj, pd.DataFrame):
        raise VizInputError(f"{func}: expected {instead}, got {type(obj).__name__}.")
    if obj.empty:
        raise VizInputError(f"{func}: the table has no rows; there is nothing to plot (pass {instead}).")
    return obj


def stack_mapping(obj: Any, func: str, attr: str, key: str, instead: str) -> Any:
    """``{name: frame or result}`` -> one frame with a ``key`` column holding the names; else ``obj``."""
    if not isinstance(obj, Mapping):
        return obj
    if not obj:
        raise VizInputError(f"{func}: the mapping is empty; there is nothing to plot.")
    parts = []
    for name, value in obj.items():
        part = table(value, func, attr, instead).copy()
        part[key] = name
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def require(df: pd.DataFrame, columns: Sequence[str], func: str, instead: str) -> None:
    missing = [str(c) for c in columns if c not in df.columns]
    if missing:
        raise VizInputError(
            f"{func}: missing column(s) {missing}; the table has columns {columns_of(df)}. "
            f"Pass {instead}."
        )


def num(df: pd.DataFrame, col: str, func: str) -> np.ndarray:
    try:
        return pd.to_numeric(df[col], errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        raise VizInputError(f"{func}: column {str(col)!r} must be numeric, got dtype {df[col].dtype}.") from None


def as_list(by: str | Sequence[str] | None) -> list[str]:
    if by is None:
        return []
    if isinstance(by, str):
        return [by]
    return list(by)


def auto_by(df: pd.DataFrame, by: str | Sequence[str] | None, candidates: Sequence[str], func: str,
            instead: str) -> list[str]:
    """Grouping columns: ``by`` if given (validated), else those ``candidates`` that vary."""
    if by is None:
        return [c for c in candidates if c in df.columns and df[c].nunique(dropna=False) > 1]
    cols = as_list(by)
    require(df, cols, func, instead)
    return cols


def _label(col: str, value: Any) -> str:
    if col == S.XZ_ACROSS.CENTER:
        return S.CENTERINGS[int(bool(value))]
    if isinstance(value, (bool, np.bool_)):
        return f"{col}={bool(value)}"
    if isinstance(value, (int, np.integer)):
        return f"{col} {value}"
    return str(value)


def groups(df: pd.DataFrame, cols: list[str]) -> list[tuple[str | None, pd.DataFrame]]:
    """Groups in order of first appearance, each with a display label."""
    if not cols:
        return [(None, df)]
    out = []
    for key, sub in df.groupby(cols, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        out.append((", ".join(_label(c, k) for c, k in zip(cols, key)), sub))
    return out


def default_label(df: pd.DataFrame, fallback: str) -> str:
    """Legend label of a single series: its ``source``/``centering`` values if present."""
    parts = [str(df[c].iloc[0]) for c in (S.SOURCE, S.CENTERING) if c in df.columns]
    return ", ".join(parts) if parts else fallback


def colors(names: Sequence[Any]) -> dict[Any, str]:
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


def rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def has_ci(df: pd.DataFrame) -> bool:
    return S.CI_LOW in df.columns and S.CI_HIGH in df.columns


def error_bars(est: np.ndarray, lo: np.ndarray, hi: np.ndarray, color: str | None = None) -> dict | None:
    """Asymmetric error-bar spec from interval bounds; ``None`` when all bounds are NaN."""
    if not (np.isfinite(lo).any() or np.isfinite(hi).any()):
        return None
    with np.errstate(invalid="ignore"):
        plus = np.clip(hi - est, 0.0, None)
        minus = np.clip(est - lo, 0.0, None)
    spec: dict[str, Any] = {"type": "data", "symmetric": False, "array": plus, "arrayminus": minus,
                            "visible": True, "thickness": 1.5, "width": 4}
    if color is not None:
        spec["color"] = color
    return spec


#: ``mark=`` of the figures that mark surviving cells -> the adjusted p-value column read.
ADJUSTED = {"holm": S.P_HOLM, "bh": S.P_BH}
_ADJUSTED_NAMES = {"holm": "Holm (family-wise error)", "bh": "Benjamini-Hochberg (false discovery rate)"}


def survivors(df: pd.DataFrame, mark: str | None, alpha: float, func: str) -> tuple[np.ndarray | None, str]:
    """Rows whose adjusted p-value (``mark``: "holm", "bh" or None) is at most ``alpha``, and a line
    that says what the marks mean (``None`` and "" when nothing is marked or the column is absent)."""
    if mark is None:
        return None, ""
    if mark not in ADJUSTED:
        raise VizInputError(f"{func}: mark={mark!r} is not one of {sorted(ADJUSTED)} or None.")
    col = ADJUSTED[mark]
    if col not in df.columns:
        return None, ""
    p = num(df, col, func)
    keep = np.isfinite(p) & (p <= alpha)
    family = int(np.isfinite(p).sum())
    text = (f"★ = survives {_ADJUSTED_NAMES[mark]} at {alpha:g} over {family} tests" if keep.any()
            else f"none survives {_ADJUSTED_NAMES[mark]} at {alpha:g} over {family} tests")
    return keep, text


def hover_extras(sub: pd.DataFrame, custom: list[np.ndarray], hover: str, func: str) -> str:
    """Append ``n``, ``p_value`` and ``p_holm`` (when present) to ``custom`` and the hover template."""
    for extra, fmt in ((S.N, ".0f"), (S.P_VALUE, ".3g"), (S.P_HOLM, ".3g")):
        if extra in sub.columns:
            custom.append(num(sub, extra, func))
            hover += f"<br>{extra}=%{{customdata[{len(custom) - 1}]:{fmt}}}"
    return hover


def band(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, color: str, name: str, legendgroup: str,
         label: str = "95% CI") -> go.Scatter | None:
    """Closed polygon between ``lo`` and ``hi`` (rows with NaN bounds dropped)."""
    ok = np.isfinite(x) & np.isfinite(lo) & np.isfinite(hi)
    if not ok.any():
        return None
    order = np.argsort(x[ok], kind="stable")
    xs, los, his = x[ok][order], lo[ok][order], hi[ok][order]
    return go.Scatter(
        x=np.concatenate([xs, xs[::-1]]), y=np.concatenate([his, los[::-1]]), fill="toself",
        fillcolor=rgba(color, 0.18), line={"width": 0, "color": rgba(color, 0.0)}, mode="lines",
        hoverinfo="skip", name=f"{name} ({label})", legendgroup=legendgroup, showlegend=False,
    )


def line_with_band(
    fig: go.Figure, df: pd.DataFrame, *, x: str, y: str, name: str, color: str, func: str,
    lo: str = S.CI_LOW, hi: str = S.CI_HIGH, showlegend: bool = True, legendgroup: str | None = None,
    dash: str | None = None, row: int | None = None, col: int | None = None, band_label: str = "95% CI",
) -> None:
    """Add an optional CI band plus a line-with-markers trace for one group."""
    df = df.sort_values(x, kind="stable")
    xs = num(df, x, func)
    ys = num(df, y, func)
    group = legendgroup if legendgroup is not None else name
    cell = {} if row is None else {"row": row, "col": col}
    custom_cols = []
    hover = f"{x}=%{{x}}<br>{y}=%{{y:.3f}}"
    if lo in df.columns and hi in df.columns:
        los, his = num(df, lo, func), num(df, hi, func)
        b = band(xs, los, his, color=color, name=name, legendgroup=group, label=band_label)
        if b is not None:
            fig.add_trace(b, **cell)
        custom_cols += [los, his]
        hover += f"<br>{band_label} [%{{customdata[0]:.3f}}, %{{customdata[1]:.3f}}]"
    if S.N in df.columns:
        custom_cols.append(num(df, S.N, func))
        hover += f"<br>n=%{{customdata[{len(custom_cols) - 1}]:.0f}}"
    fig.add_trace(
        go.Scatter(
            x=xs, y=ys, mode="lines+markers", name=name, legendgroup=group, showlegend=showlegend,
            line={"color": color, "width": 2, **({"dash": dash} if dash else {})},
            marker={"color": color, "size": 6},
            customdata=np.column_stack(custom_cols) if custom_cols else None,
            hovertemplate=hover + f"<extra>{escape_hover(name)}</extra>",
        ),
        **cell,
    )


def escape_hover(text: str) -> str:
    # Plotly renders a small HTML subset in hover labels; keep names literal.
    return str(text).replace("<", "&lt;").replace(">", "&gt;")


def finish(fig: go.Figure, title: str, *, kind: str | None = None, x_title: str | None = None,
           y_title: str | None = None, subtitle: str | None = None, height: int | None = None) -> go.Figure:
    """Apply the house template, palette, title (and subtitle) and axis titles; store the figure's
    ``kind`` and caption (:data:`latentprobe.viz.captions.CAPTIONS`) in ``layout.meta``."""
    title_spec: dict[str, Any] = {"text": title, "x": 0.01, "xanchor": "left"}
    if subtitle:
        title_spec["subtitle"] = {"text": subtitle}
    fig.update_layout(
        template=TEMPLATE, title=title_spec, colorway=list(PALETTE), font={"size": 13},
        legend={"title": {"text": ""}, "tracegroupgap": 2},
        margin={"l": 70, "r": 30, "t": 110 if subtitle else 70, "b": 60}, hoverlabel={"align": "left"},
    )
    if x_title is not None:
        fig.update_xaxes(title_text=x_title)
    if y_title is not None:
        fig.update_yaxes(title_text=y_title)
    if height is not None:
        fig.update_layout(height=height)
    if kind is not None:
        fig.update_layout(meta={"kind": kind, "caption": CAPTIONS.get(kind, "")})
    return fig


def set_range(fig: go.Figure, metric: Any, values: Any, *, axis: str = "y", include_zero: bool = False,
              row: int | None = None, col: int | None = None) -> None:
    """Set an axis range that follows ``metric`` (:func:`latentprobe.viz.captions.metric_range`)."""
    rng = metric_range(metric, values, include_zero=include_zero)
    if rng is None:
        return
    cell = {} if row is None else {"row": row, "col": col}
    update = fig.update_yaxes if axis == "y" else fig.update_xaxes
    update(range=rng, autorange=False, **cell)


def ordered(values: Sequence[Any], first: Sequence[Any] = ()) -> list[Any]:
    uniq = list(pd.unique(pd.Series(list(values), dtype=object)))
    head = [v for v in first if v in uniq]
    return head + [v for v in uniq if v not in head]


def single_valued(df: pd.DataFrame, col: str, chosen: Any, func: str, arg: str) -> pd.DataFrame:
    """Filter ``df`` to ``col == chosen`` or check that ``col`` has one value."""
    if col not in df.columns:
        if chosen is not None:
            raise VizInputError(
                f"{func}: {arg}={chosen!r} was given but the table has no {str(col)!r} column; "
                f"columns are {columns_of(df)}."
            )
        return df
    values = ordered(df[col])
    if chosen is None:
        if len(values) > 1:
            raise VizInputError(f"{func}: the table holds several {col} values {values}; choose one with {arg}=...")
        return df
    sub = df[df[col] == chosen]
    if sub.empty:
        raise VizInputError(f"{func}: {arg}={chosen!r} not found; available: {values}.")
    return sub


def select(df: pd.DataFrame, col: str, chosen: Any, func: str, arg: str) -> pd.DataFrame:
    """Keep the rows whose ``col`` is in ``chosen`` (a value or a list); all rows when ``chosen`` is None."""
    if chosen is None:
        return df
    wanted = as_list(chosen) if isinstance(chosen, (str, list, tuple)) else [chosen]
    sub = df[df[col].isin(wanted)]
    if sub.empty:
        raise VizInputError(f"{func}: {arg}={chosen!r} not found; available: {ordered(df[col])}.")
    return sub
