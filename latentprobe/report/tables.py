"""Tables for the report: key columns first, no index column, numbers rounded, key columns sticky.

:func:`table_block` turns a DataFrame into the cells the page template draws (plain strings; the
template escapes them).

Examples
--------
>>> import pandas as pd
>>> from latentprobe.report.tables import arrange, format_number
>>> df = pd.DataFrame({"estimate": [0.12345], "note": [""], "n": [40], "intervention": ["zero"],
...                    "ci_low": [0.1], "ci_high": [0.2]})
>>> list(arrange(df).columns)
['intervention', 'n', 'estimate', '95% CI', 'note']
>>> format_number(0.012345), format_number(1234.5), format_number(3), format_number(1.0), format_number(0.5)
('0.0123', '1,234', '3', '1.00', '0.500')
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from latentprobe.errors import ReportError
from latentprobe.validate import positive_int

__all__ = ["KEY_COLUMNS", "STAT_COLUMNS", "arrange", "cell_text", "format_number", "table_block"]

#: Columns that say what a row is, in the order they are put first.
KEY_COLUMNS: tuple[str, ...] = (
    "variant", "model", "dataset", "study", "condition", "perturbation", "treatment", "intervention", "mode",
    "effect", "kind", "representation", "target", "source", "centering", "layer", "step", "metric",
)
#: The statistics that follow the key columns, in this order.
STAT_COLUMNS: tuple[str, ...] = ("n", "estimate", "score", "95% CI", "p_value")
_CI = "95% CI"
# a table with more columns than this keeps its leading key columns in view while it scrolls
_STICKY_FROM = 7
_MAX_STICKY = 2
#: Characters of cell text (widest cell per column, plus padding) above which a table is called wide.
_WIDE_CHARS = 130


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, (float, np.floating)):
        return math.isnan(value)
    return False


def format_number(value: object) -> str:
    """Three significant digits, trailing zeros kept (thousands with separators, no exponent below 10^6);
    ints as they are.

    Parameters
    ----------
    value : object
        A number (or anything).

    Returns
    -------
    str
    """
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    x = float(value)
    if math.isnan(x):
        return "—"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if x == 0:
        return "0"
    if 999.5 <= abs(x) < 1e6:
        return f"{x:,.0f}"
    text = f"{x:#.3g}"  # three significant digits, trailing zeros kept (0.500, 1.00)
    if "e" in text:
        mantissa, exp = text.split("e")
        return f"{mantissa.rstrip('.')}e{exp}"
    return text.rstrip(".")


def _formatter(float_format: str | None) -> Any:
    if float_format is None:
        return format_number
    try:
        float_format.format(1.5)
    except (ValueError, TypeError, IndexError, KeyError):
        raise ReportError(
            f"float_format={float_format!r} cannot format a float; use e.g. '{{:.3f}}' or '{{:.3g}}', "
            "or None for three significant digits."
        ) from None
    return lambda v: float_format.format(float(v))


def cell_text(value: object, fmt: Callable[[object], str]) -> str:
    """One cell as text: missing values as ``—``, floats through ``fmt``.

    Parameters
    ----------
    value : object
        A cell.
    fmt : callable
        Formats one number.

    Returns
    -------
    str
    """
    if _is_missing(value):
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)):
        return fmt(value)
    return str(value)


def _label(col: Any) -> str:
    if isinstance(col, tuple):
        return " / ".join(str(c) for c in col)
    return str(col)


def arrange(df: pd.DataFrame, *, merge_ci: bool = True, fmt: Callable[[object], str] = format_number) -> pd.DataFrame:
    """Key columns first (:data:`KEY_COLUMNS`), then ``n, estimate, 95% CI, p_value``, then the rest.

    With ``merge_ci``, ``ci_low`` and ``ci_high`` become one text column ``95% CI`` (``[low, high]``).

    Parameters
    ----------
    df : pd.DataFrame
        A result table.
    merge_ci : bool
        Merge ``ci_low``/``ci_high`` into one ``[low, high]`` column.
    fmt : callable
        Formats one number.

    Returns
    -------
    pandas.DataFrame
        The table as text cells, ready to show.
    """
    df = df.copy()
    if merge_ci and "ci_low" in df.columns and "ci_high" in df.columns:
        lo, hi = df.pop("ci_low"), df.pop("ci_high")
        df[_CI] = [
            "—" if _is_missing(a) and _is_missing(b) else f"[{cell_text(a, fmt)}, {cell_text(b, fmt)}]"
            for a, b in zip(lo, hi)
        ]
    names = [_label(c) for c in df.columns]
    key = [c for k in KEY_COLUMNS for c, n in zip(df.columns, names) if n == k]
    stat = [c for k in STAT_COLUMNS for c, n in zip(df.columns, names) if n == k and c not in key]
    rest = [c for c in df.columns if c not in key and c not in stat]
    return df[key + stat + rest]


def _drop_index(df: pd.DataFrame, index: bool | None) -> pd.DataFrame:
    default = isinstance(df.index, pd.RangeIndex) and df.index.start == 0 and df.index.step == 1
    if index is False or (index is None and (default or all(n is None for n in df.index.names))):
        return df.reset_index(drop=True)
    names = [n if n is not None else f"level_{i}" for i, n in enumerate(df.index.names)]
    if len(names) == 1 and df.index.names[0] is None:
        names = ["index"]
    out = df.copy()
    out.index = out.index.set_names(names)
    return out.reset_index()


def table_block(
    df: pd.DataFrame | pd.Series,
    *,
    float_format: str | None = None,
    formats: Mapping[str, str] | None = None,
    max_rows: int | None = 200,
    index: bool | None = None,
    order: bool = True,
    merge_ci: bool = True,
) -> dict[str, Any]:
    """Head and body cells of one table (``{"head", "rows", "shown", "total", "more", "wide"}``).

    ``wide`` is true when the table is likely wider than the page's text column (about
    :data:`_WIDE_CHARS` characters of cells): the page then says to scroll it sideways.

    Parameters
    ----------
    df : DataFrame or Series
        The table.  The index is never drawn as an unnamed first column: a named index (or
        ``index=True``) becomes ordinary columns, the default 0..n-1 index is dropped.
    float_format : str, optional
        ``str.format`` pattern for float cells; default three significant digits.
    formats : mapping, optional
        Per-column ``str.format`` pattern, e.g. ``{"p_value": "{:.2g}"}``.
    max_rows : int or None
        Rows shown at most (``None``: all).
    order : bool, default True
        Put the key columns first (:func:`arrange`).
    merge_ci : bool, default True
        Show ``ci_low``/``ci_high`` as one ``95% CI`` column.
    index : bool | None
        Show the index (default: when it is not a plain range).

    Returns
    -------
    dict[str, Any]
        The block the report's template renders: the header, rows of cell texts with their classes, and
        how many rows are shown of how many.

    Raises
    ------
    ReportError
        ``df`` is not a table, or a format or ``max_rows`` is not usable.
    """
    if isinstance(df, pd.Series):
        df = df.to_frame()
    if not isinstance(df, pd.DataFrame):
        raise ReportError(f"add_table expects a pandas DataFrame, got {type(df).__name__}.")
    fmt = _formatter(float_format)
    col_fmts = {str(k): _formatter(v) for k, v in (formats or {}).items()}
    positive_int(max_rows, "max_rows", allow_none=True, where="add_table", hint="None shows every row",
                 error=ReportError)
    df = _drop_index(df, index)
    if order:
        df = arrange(df, merge_ci=merge_ci, fmt=fmt)
    total = len(df)
    shown = df if max_rows is None or total <= max_rows else df.iloc[:max_rows]
    names = [_label(c) for c in df.columns]
    numeric = [pd.api.types.is_numeric_dtype(dt) and not pd.api.types.is_bool_dtype(dt) for dt in df.dtypes]
    n_key = 0
    for name in names:
        if name not in KEY_COLUMNS:
            break
        n_key += 1
    sticky = min(n_key, _MAX_STICKY) if len(names) > _STICKY_FROM else 0

    def attrs(j: int) -> tuple[str, str]:
        cls = ["num"] if numeric[j] or names[j] == _CI else []
        style = ""
        if j < sticky:
            cls.append("sticky")
            if j == sticky - 1:
                cls.append("last-key")
            style = f"left: calc({j} * var(--key-w))"
        return " ".join(cls), style

    head = [{"text": name, "cls": attrs(j)[0], "style": attrs(j)[1]} for j, name in enumerate(names)]
    rows = []
    for values in shown.itertuples(index=False, name=None):
        row = []
        for j, value in enumerate(values):
            cls, style = attrs(j)
            row.append({"text": cell_text(value, col_fmts.get(names[j], fmt)), "cls": cls, "style": style})
        rows.append(row)
    widths = [max([len(name)] + [len(r[j]["text"]) for r in rows]) + 3 for j, name in enumerate(names)]
    return {"head": head, "rows": rows, "shown": len(shown), "total": total, "more": len(shown) < total,
            "wide": sum(widths) > _WIDE_CHARS}
