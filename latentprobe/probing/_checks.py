"""Input validation shared by the probing modules: arrays, labels, groups and fold counts.

Every check raises :class:`~latentprobe.errors.ProbeError` with what was wrong and how to fix it.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from latentprobe.errors import ProbeError
from latentprobe.validate import integer

Task = Literal["classification", "regression"]

_TASKS = ("classification", "regression")


def _to_numpy(a: Any) -> np.ndarray:
    """Convert arrays, lists and (CPU or GPU) torch tensors to NumPy."""
    if hasattr(a, "detach") and hasattr(a, "cpu"):  # torch.Tensor without importing torch
        a = a.detach().cpu()
        if hasattr(a, "is_floating_point") and a.is_floating_point():
            a = a.float()
        a = a.numpy()
    return np.asarray(a)


def _check_task(task: str) -> None:
    if task not in _TASKS:
        raise ProbeError(f"task must be 'classification' or 'regression', got {task!r}.")


def _float_features(X: np.ndarray) -> np.ndarray:
    """float32 and float64 features as they are (no copy); float16 widened to float32, the rest to float64."""
    if X.dtype in (np.float32, np.float64):
        return X
    return np.asarray(X, dtype=np.float32 if X.dtype == np.float16 else np.float64)


def _all_finite(X: np.ndarray) -> bool:
    """One float64-accumulated sum instead of an n x d boolean mask; NaN and inf propagate into it.

    A sum of finite float32 values cannot overflow float64; for float64 input an overflowing sum
    falls back to the element-wise check.
    """
    if np.isfinite(np.sum(X, dtype=np.float64)):
        return True
    return bool(np.isfinite(X).all())


def _check_X(X: Any, name: str = "X") -> np.ndarray:
    """Validate a 2-D feature matrix; float32 stays float32 (no copy), see :func:`_float_features`."""
    X = _to_numpy(X)
    if X.ndim != 2:
        raise ProbeError(
            f"{name} must be 2-D [n_examples, d]; got shape {X.shape}. "
            "Select one layer and latent step (e.g. features[:, layer, step]) or "
            "flatten the trailing axes with X.reshape(len(X), -1)."
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ProbeError(f"{name} is empty (shape {X.shape}); pass at least one example and one feature.")
    if not np.issubdtype(X.dtype, np.number):
        raise ProbeError(f"{name} must be numeric, got dtype {X.dtype}.")
    X = _float_features(X)
    if not _all_finite(X):
        raise ProbeError(
            f"{name} contains NaN or infinite values; drop or impute those examples "
            "(often a sign of overflow when activations were saved in float16)."
        )
    return X


def _check_y(y: Any, n: int, task: str) -> np.ndarray:
    y = _to_numpy(y)
    if y.ndim == 0 or y.shape[0] != n:
        got = "a scalar" if y.ndim == 0 else f"{y.shape[0]} entries"
        raise ProbeError(
            f"y has {got} but X has {n} examples; X and y must have the same length "
            "(one label per example, in the same order)."
        )
    if task == "classification":
        if y.dtype == object:
            bad = next((i for i, v in enumerate(y.reshape(len(y), -1)[:, 0] if y.ndim > 1 else y)
                        if isinstance(v, (list, tuple, set, dict, np.ndarray))), None)
            if bad is not None:
                raise ProbeError(
                    f"classification labels must be one value per example; label {bad} is a "
                    f"{type(y[bad]).__name__} ({str(y[bad])[:60]}). A list-valued field is not a probe target: "
                    "probe one scalar derived from it (e.g. its length or first item)."
                )
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ProbeError(
                f"classification labels must be 1-D, got shape {y.shape}; "
                "use task='regression' for vector-valued targets."
            )
        missing = [i for i, v in enumerate(y) if v is None or (isinstance(v, (float, np.floating)) and np.isnan(v))]
        if missing:
            raise ProbeError(
                f"classification labels {missing[:10]}{' ...' if len(missing) > 10 else ''} ({len(missing)} of "
                f"{len(y)}) are missing (None or NaN); drop those examples, or give them a label of their own."
            )
        if len(np.unique(y)) < 2:
            raise ProbeError(
                f"y contains a single class ({np.unique(y)[0]!r}); a classification probe "
                "needs at least two distinct labels. Check the label extraction, or use "
                "task='regression' for a continuous target."
            )
    else:
        if y.ndim > 2:
            raise ProbeError(f"regression targets must be 1-D or 2-D [n, d'], got shape {y.shape}.")
        if not np.issubdtype(y.dtype, np.number):
            raise ProbeError(f"regression targets must be numeric, got dtype {y.dtype}; use task='classification' for labels.")
        y = np.asarray(y, dtype=np.float64)
        if not np.all(np.isfinite(y)):
            raise ProbeError("regression targets contain NaN or infinite values; drop those examples.")
    return y


def _check_groups(groups: Any, n: int, name: str = "groups") -> np.ndarray:
    if groups is None:
        return np.arange(n)
    g = _to_numpy(groups)
    if g.ndim != 1 or g.shape[0] != n:
        raise ProbeError(
            f"{name} must be 1-D with one entry per example ({n}); got shape {g.shape}. "
            "Pass e.g. the image or problem id of every example."
        )
    return g


def _check_types(control_types: Any, n: int) -> np.ndarray | None:
    """The control types of a sweep: None, ``"shuffled"`` (one type: the target permuted across all examples,
    the shuffled-target control of numeric targets) or one type per example."""
    if control_types is None:
        return None
    if isinstance(control_types, str):
        if control_types != "shuffled":
            raise ProbeError(f"control_types={control_types!r}; give one type per example, 'shuffled' (the target "
                             "permuted across all examples) or None.")
        return np.zeros(n, dtype=np.int64)
    return _check_groups(control_types, n, name="control_types")


def _check_n_splits(n_splits: int, n_groups: int) -> None:
    integer(n_splits, "n_splits", minimum=2, hint="folds of grouped cross-validation", error=ProbeError)
    if n_groups < n_splits:
        raise ProbeError(
            f"only {n_groups} distinct groups for n_splits={n_splits}; grouped "
            "cross-validation needs at least one group per fold. Lower n_splits or "
            "collect examples from more groups (images/problems)."
        )
