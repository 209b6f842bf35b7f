"""Unit keys and rows of a resumable sweep: JSON-ready keys, checked frames, CSV parts."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from latentprobe.errors import SweepKeyError, SweepRowsError

__all__ = ["normalize_key"]

_PANDAS_MAJOR = int(pd.__version__.split(".")[0])
_CSV_DTYPES = {"int64", "float64", "bool", "str", "object", "string"}


def normalize_key(obj: object, *, what: str = "unit key") -> Any:
    """Convert a unit key or config value to plain JSON data.

    Tuples become lists, numpy scalars become Python scalars, mappings must
    have string keys.

    Parameters
    ----------
    obj : object
        A str, int, float, bool, None, or nested tuples/lists/dicts of those.
    what : str
        Description used in error messages.

    Returns
    -------
    Any
        The JSON-ready equivalent of ``obj``.

    Raises
    ------
    SweepKeyError
        If ``obj`` contains a value that cannot be written as JSON (also a ``TypeError``).
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if hasattr(obj, "item") and getattr(obj, "shape", None) == ():  # numpy scalar / 0-d array
        return normalize_key(obj.item(), what=what)
    if isinstance(obj, (list, tuple)):
        return [normalize_key(v, what=what) for v in obj]
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise SweepKeyError(
                    f"{what} contains a mapping key {k!r} of type {type(k).__name__}; "
                    "use string keys so it can be stored as JSON."
                )
            out[k] = normalize_key(v, what=what)
        return out
    raise SweepKeyError(
        f"{what} contains {obj!r} of type {type(obj).__name__}, which cannot be stored "
        "as JSON; use str, int, float, bool, None or tuples/lists/dicts of those "
        "(e.g. pass `unit_key=lambda u: (u.layer, u.step)`)."
    )


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _short(value: Any, width: int = 72) -> str:
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def config_diff(stored: Any, new: Any, path: str = "") -> list[str]:
    """What changed between two JSON configs: ``'dotted.key': stored OLD, now NEW`` per leaf (values
    shortened; lists of scalars compared whole, lists of equal length holding tables or lists item by
    item, ``'data[0].n'``)."""
    if isinstance(stored, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(stored) | set(new)):
            sub = f"{path}.{k}" if path else str(k)
            if k not in stored:
                out.append(f"{sub!r}: not stored, now {_short(new[k])}")
            elif k not in new:
                out.append(f"{sub!r}: stored {_short(stored[k])}, now missing")
            else:
                out.extend(config_diff(stored[k], new[k], sub))
        return out
    if (isinstance(stored, list) and isinstance(new, list) and len(stored) == len(new)
            and any(isinstance(v, (dict, list)) for v in stored + new)):
        return [line for i, (a, b) in enumerate(zip(stored, new)) for line in config_diff(a, b, f"{path}[{i}]")]
    if _canonical(stored) == _canonical(new):
        return []
    return [f"{path or 'config'!r}: stored {_short(stored)}, now {_short(new)}"]


def _denormalize_key(obj: Any) -> Any:
    if isinstance(obj, list):
        return tuple(_denormalize_key(v) for v in obj)
    return obj


def rows_frame(rows: Any, unit_key: Any, key_columns: tuple[str, ...]) -> pd.DataFrame:
    """The rows of one unit as a DataFrame with a fresh index, checked (string, unique column
    names; every key column present and complete)."""
    if isinstance(rows, pd.DataFrame):
        frame = rows.reset_index(drop=True)
    elif isinstance(rows, Mapping):
        frame = pd.DataFrame([dict(rows)])
    elif isinstance(rows, (list, tuple)):
        if not all(isinstance(r, Mapping) for r in rows):
            raise SweepRowsError(
                f"rows for unit {unit_key!r} must be a DataFrame or a list of dicts; "
                "got a list containing non-dict items."
            )
        frame = pd.DataFrame([dict(r) for r in rows])
    else:
        raise SweepRowsError(
            f"rows for unit {unit_key!r} must be a DataFrame, a list of dicts or a "
            f"dict, got {type(rows).__name__}; return `[]` for a unit with no rows."
        )
    bad = [c for c in frame.columns if not isinstance(c, str)]
    if bad:
        raise SweepRowsError(
            f"rows for unit {unit_key!r} have non-string column names {bad!r}; "
            "rename columns to strings before writing."
        )
    if frame.columns.duplicated().any():
        dup = frame.columns[frame.columns.duplicated()].tolist()
        raise SweepRowsError(f"rows for unit {unit_key!r} have duplicate columns {dup!r}.")
    if len(frame) and key_columns:
        missing = [c for c in key_columns if c not in frame.columns]
        if missing:
            raise SweepRowsError(
                f"rows for unit {unit_key!r} lack key column(s) {missing!r} "
                f"(have {list(frame.columns)!r}); add them to the rows or construct "
                "the sweep with matching `key_columns=` (or `key_columns=()`)."
            )
        nulls = [c for c in key_columns if frame[c].isna().any()]
        if nulls:
            raise SweepRowsError(
                f"rows for unit {unit_key!r} have missing values in key column(s) {nulls!r}."
            )
    return frame


def read_csv_part(path: Path, dtypes: dict[str, str]) -> pd.DataFrame:
    """A CSV part with the dtypes recorded when it was written restored where possible."""
    str_cols = [c for c, t in dtypes.items() if t in ("str", "object", "string")]
    read_dtypes = {c: "str" for c in str_cols}
    kwargs: dict[str, Any] = {}
    if _PANDAS_MAJOR < 3:  # pandas >= 3 parses floats with round-trip precision by default
        kwargs["float_precision"] = "round_trip"
    frame = pd.read_csv(path, dtype=read_dtypes or None, **kwargs)
    for c, t in dtypes.items():
        if c in frame.columns and t in _CSV_DTYPES and t not in ("str", "object", "string"):
            if str(frame[c].dtype) != t and not frame[c].isna().any():
                try:
                    frame[c] = frame[c].astype(t)
                except (TypeError, ValueError):
                    pass
    return frame
