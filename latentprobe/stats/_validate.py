"""Input checks shared by the estimators (errors say what was wrong and how to fix it)."""

from __future__ import annotations

from typing import Any

import numpy as np

from latentprobe.errors import StatsInputError


def _as_1d_float(values: Any, arg: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise StatsInputError(
            f"`{arg}` could not be converted to a float array ({exc}); pass a 1-D "
            "sequence of numbers, one per example."
        ) from exc
    if arr.ndim != 1:
        raise StatsInputError(
            f"`{arg}` must be 1-D with one value per example, got shape {arr.shape}; "
            "reduce other axes first (e.g. average over layers) or flatten explicitly."
        )
    if arr.size == 0:
        raise StatsInputError(f"`{arg}` is empty; at least one example is needed.")
    nan = np.isnan(arr)
    if nan.any():
        idx = np.flatnonzero(nan)[:5].tolist()
        raise StatsInputError(
            f"`{arg}` contains {int(nan.sum())} NaN value(s) (first at indices {idx}); "
            "drop or impute the affected examples before computing intervals "
            "(for paired inputs drop them from every condition)."
        )
    if np.isinf(arr).any():
        raise StatsInputError(
            f"`{arg}` contains infinite values; bootstrap intervals are undefined. "
            "Drop or clip those examples first."
        )
    return arr


def _as_1d_bool(values: Any, arg: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise StatsInputError(
            f"`{arg}` must be 1-D with one correctness flag per example, got shape {arr.shape}."
        )
    if arr.size == 0:
        raise StatsInputError(f"`{arg}` is empty; at least one example is needed.")
    if arr.dtype == np.bool_:
        return arr
    if arr.dtype.kind in "iuf":
        if np.all((arr == 0) | (arr == 1)):
            return arr.astype(bool)
    raise StatsInputError(
        f"`{arg}` must be boolean (or 0/1) correctness flags, got dtype {arr.dtype} "
        "with other values; compare predictions to labels first, e.g. `pred == label`."
    )


def _check_same_length(arrays: dict[str, np.ndarray]) -> int:
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) != 1:
        desc = ", ".join(f"{k}={n}" for k, n in lengths.items())
        raise StatsInputError(
            f"paired inputs must have one value per shared example, got lengths {desc}; "
            "align them on the same examples (same order) before calling."
        )
    return next(iter(lengths.values()))


def _check_boot_args(n_boot: int, confidence: float) -> None:
    if not isinstance(n_boot, (int, np.integer)) or isinstance(n_boot, bool) or n_boot < 1:
        raise StatsInputError(f"`n_boot` must be a positive integer, got {n_boot!r}.")
    if not (0.0 < float(confidence) < 1.0):
        raise StatsInputError(
            f"`confidence` must be strictly between 0 and 1 (e.g. 0.95), got {confidence!r}."
        )
