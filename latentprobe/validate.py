"""Argument checks shared by the whole package: one place, one message style.

Every check returns the value it accepted (as a plain Python type) and otherwise raises ``error``
(default :class:`~latentprobe.errors.InputError`; a module passes its own subclass of
:class:`~latentprobe.errors.LatentProbeError`, e.g. :class:`~latentprobe.errors.ProbeError`) with a
message that names where the value was given, the argument, the value, and what to give instead::

    sample(): n=0: use an integer from 1 to 5 (the examples given).

Booleans are refused wherever an integer or a number is asked for (``True`` is an ``int`` to Python,
never a count). numpy integers and floats are accepted and returned as ``int`` / ``float``.

The array checks of the statistics routines (:func:`as_1d_float`, :func:`as_1d_bool`,
:func:`same_length`) live here too.

Examples
--------
>>> positive_int(8, "batch_size")
8
>>> positive_int(0, "batch_size", where="run()", hint="rows per forward")
Traceback (most recent call last):
    ...
latentprobe.errors.InputError: run(): batch_size=0: use an integer >= 1 (rows per forward).
>>> probability(0.95, "confidence")
0.95
>>> one_of("mse", "end_distance", ("mse", "mae", "cosine"))
'mse'
"""

from __future__ import annotations

import math
from typing import Any, Collection, TypeVar

import numpy as np
from numpy.typing import ArrayLike

from latentprobe.errors import InputError, LatentProbeError, StatsInputError

__all__ = ["integer", "positive_int", "non_negative_int", "number", "probability", "one_of", "message",
           "as_1d_float", "as_1d_bool", "same_length"]

_T = TypeVar("_T")
Error = type[LatentProbeError]


def message(name: str, value: object, requirement: str, *, where: str = "", hint: str = "") -> str:
    """The house message: ``"<where>: <name>=<value!r>: use <requirement> (<hint>)."``.

    Parameters
    ----------
    name : str
        The argument's name.
    value : object
        The value given.
    requirement : str
        What to give instead (``"an integer >= 1"``).
    where, hint : str
        Where the value was given, and a hint shown in parentheses (both optional).

    Returns
    -------
    str

    Examples
    --------
    >>> message("top_k", 0, "an integer >= 1, or None to keep every token", where="GenerationConfig")
    'GenerationConfig: top_k=0: use an integer >= 1, or None to keep every token.'
    """
    head = f"{where}: " if where else ""
    tail = f" ({hint})" if hint else ""
    return f"{head}{name}={value!r}: use {requirement}{tail}."


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _bounds(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f" from {minimum:g} to {maximum:g}"
    if minimum is not None:
        return f" >= {minimum:g}"
    if maximum is not None:
        return f" <= {maximum:g}"
    return ""


def integer(value: object, name: str, *, minimum: int | None = None, maximum: int | None = None,
            allow_none: bool = False, where: str = "", hint: str = "", error: Error = InputError) -> Any:
    """``value`` as an ``int`` if it is an integer (not a bool) within ``[minimum, maximum]``.

    Parameters
    ----------
    value : object
        The argument to check.
    name : str
        The argument's name, as the caller wrote it.
    minimum, maximum : int, optional
        Inclusive bounds.
    allow_none : bool
        Accept ``None`` (returned as is), e.g. for "no limit".
    where : str
        Where the value was given (``"sample()"``, ``"ImageSwap"``, a file and row).
    hint : str
        What the argument means or a usual value, shown in parentheses.
    error : type
        The :class:`~latentprobe.errors.LatentProbeError` subclass to raise.

    Returns
    -------
    int or None

    Raises
    ------
    LatentProbeError
        ``error``, naming where, the argument, the value and what to give.

    Examples
    --------
    >>> integer(np.int64(3), "seed")
    3
    >>> integer(True, "seed")
    Traceback (most recent call last):
        ...
    latentprobe.errors.InputError: seed=True: use an integer.
    """
    if value is None and allow_none:
        return None
    ok = _is_int(value) and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    if not ok:
        req = f"an integer{_bounds(minimum, maximum)}" + (", or None" if allow_none else "")
        raise error(message(name, value, req, where=where, hint=hint))
    return int(value)


def positive_int(value: object, name: str, *, allow_none: bool = False, where: str = "", hint: str = "",
                 error: Error = InputError) -> Any:
    """``value`` if it is an integer >= 1 (see :func:`integer`).

    Parameters
    ----------
    value, name, allow_none, where, hint, error
        As in :func:`integer`.

    Returns
    -------
    int or None

    Examples
    --------
    >>> positive_int(4, "n_splits")
    4
    """
    return integer(value, name, minimum=1, allow_none=allow_none, where=where, hint=hint, error=error)


def non_negative_int(value: object, name: str, *, allow_none: bool = False, where: str = "", hint: str = "",
                     error: Error = InputError) -> Any:
    """``value`` if it is an integer >= 0 (see :func:`integer`).

    Parameters
    ----------
    value, name, allow_none, where, hint, error
        As in :func:`integer`.

    Returns
    -------
    int or None

    Examples
    --------
    >>> non_negative_int(0, "n_boot", hint="0 disables the interval")
    0
    """
    return integer(value, name, minimum=0, allow_none=allow_none, where=where, hint=hint, error=error)


def number(value: object, name: str, *, minimum: float | None = None, exclusive_minimum: bool = False,
           allow_none: bool = False, where: str = "", hint: str = "", error: Error = InputError) -> Any:
    """``value`` as a ``float`` if it is a finite real number (not a bool) above ``minimum``.

    Parameters
    ----------
    value, name, allow_none, where, hint, error
        As in :func:`integer`.
    minimum : float, optional
        Lower bound (inclusive unless ``exclusive_minimum``).
    exclusive_minimum : bool
        Ask for ``value > minimum`` instead of ``>=``.

    Returns
    -------
    float or None

    Examples
    --------
    >>> number(2, "factor")
    2.0
    >>> number(float("nan"), "sigma", minimum=0, where="AddNoise")
    Traceback (most recent call last):
        ...
    latentprobe.errors.InputError: AddNoise: sigma=nan: use a finite number >= 0.
    """
    if value is None and allow_none:
        return None
    ok = _is_real(value) and math.isfinite(value) and (
        minimum is None or (value > minimum if exclusive_minimum else value >= minimum))
    if not ok:
        bound = "" if minimum is None else f" {'>' if exclusive_minimum else '>='} {minimum:g}"
        raise error(message(name, value, f"a finite number{bound}" + (", or None" if allow_none else ""),
                            where=where, hint=hint))
    return float(value)


def probability(value: object, name: str, *, where: str = "", hint: str = "", error: Error = InputError) -> float:
    """``value`` as a ``float`` if it lies strictly between 0 and 1 (a confidence level, a quantile).

    Parameters
    ----------
    value, name, where, hint, error
        As in :func:`integer`.

    Returns
    -------
    float

    Examples
    --------
    >>> probability(1.0, "confidence", hint="e.g. 0.95")
    Traceback (most recent call last):
        ...
    latentprobe.errors.InputError: confidence=1.0: use a number strictly between 0 and 1 (e.g. 0.95).
    """
    if not (_is_real(value) and 0.0 < float(value) < 1.0):
        raise error(message(name, value, "a number strictly between 0 and 1", where=where, hint=hint))
    return float(value)


def one_of(value: _T, name: str, choices: Collection[Any], *, where: str = "", error: Error = InputError) -> _T:
    """``value`` if it is one of ``choices`` (the message lists them).

    Parameters
    ----------
    value, name, where, error
        As in :func:`integer`.
    choices : collection
        The accepted values.

    Returns
    -------
    object
        ``value``.

    Examples
    --------
    >>> one_of("l3", "penalty", ("l1", "l2"), where="LinearProbe")
    Traceback (most recent call last):
        ...
    latentprobe.errors.InputError: LinearProbe: penalty='l3': use one of 'l1', 'l2'.
    """
    try:
        ok = value in choices
    except TypeError:  # an unhashable value against a set
        ok = False
    if not ok:
        raise error(message(name, value, "one of " + ", ".join(repr(c) for c in choices), where=where))
    return value


# --------------------------------------------------------------------------- arrays (statistics)
def as_1d_float(values: ArrayLike, arg: str, *, error: Error = StatsInputError) -> np.ndarray:
    """``values`` as a finite, non-empty 1-D float64 array (one value per example).

    Parameters
    ----------
    values : array-like
        One value per example.
    arg : str
        The argument's name, for the message.
    error : type
        The :class:`~latentprobe.errors.LatentProbeError` subclass to raise.

    Returns
    -------
    np.ndarray
        float64, 1-D.

    Examples
    --------
    >>> as_1d_float([1, 0, 2], "x").tolist()
    [1.0, 0.0, 2.0]
    """
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise error(
            f"`{arg}` could not be converted to a float array ({exc}); pass a 1-D "
            "sequence of numbers, one per example."
        ) from exc
    if arr.ndim != 1:
        raise error(
            f"`{arg}` must be 1-D with one value per example, got shape {arr.shape}; "
            "reduce other axes first (e.g. average over layers) or flatten explicitly."
        )
    if arr.size == 0:
        raise error(f"`{arg}` is empty; at least one example is needed.")
    nan = np.isnan(arr)
    if nan.any():
        idx = np.flatnonzero(nan)[:5].tolist()
        raise error(
            f"`{arg}` contains {int(nan.sum())} NaN value(s) (first at indices {idx}); "
            "drop or impute the affected examples before computing intervals "
            "(for paired inputs drop them from every condition)."
        )
    if np.isinf(arr).any():
        raise error(
            f"`{arg}` contains infinite values; bootstrap intervals are undefined. "
            "Drop or clip those examples first."
        )
    return arr


def as_1d_bool(values: ArrayLike, arg: str, *, error: Error = StatsInputError) -> np.ndarray:
    """``values`` as a non-empty 1-D boolean array (correctness flags; 0/1 accepted).

    Parameters
    ----------
    values : array-like
        One value per example.
    arg : str
        The argument's name, for the message.
    error : type
        The :class:`~latentprobe.errors.LatentProbeError` subclass to raise.

    Returns
    -------
    np.ndarray
        bool, 1-D.

    Examples
    --------
    >>> as_1d_bool([1, 0], "correct").tolist()
    [True, False]
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise error(
            f"`{arg}` must be 1-D with one correctness flag per example, got shape {arr.shape}."
        )
    if arr.size == 0:
        raise error(f"`{arg}` is empty; at least one example is needed.")
    if arr.dtype == np.bool_:
        return arr
    if arr.dtype.kind in "iuf":
        if np.all((arr == 0) | (arr == 1)):
            return arr.astype(bool)
    raise error(
        f"`{arg}` must be boolean (or 0/1) correctness flags, got dtype {arr.dtype} "
        "with other values; compare predictions to labels first, e.g. `pred == label`."
    )


def same_length(arrays: dict[str, np.ndarray], *, error: Error = StatsInputError) -> int:
    """The common length of paired arrays (one value per shared example), else ``error``.

    Parameters
    ----------
    arrays : dict[str, np.ndarray]
        The paired arrays by argument name.
    error : type
        The :class:`~latentprobe.errors.LatentProbeError` subclass to raise.

    Returns
    -------
    int

    Examples
    --------
    >>> same_length({"a": np.zeros(3), "b": np.ones(3)})
    3
    """
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) != 1:
        desc = ", ".join(f"{k}={n}" for k, n in lengths.items())
        raise error(
            f"paired inputs must have one value per shared example, got lengths {desc}; "
            "align them on the same examples (same order) before calling."
        )
    return next(iter(lengths.values()))
