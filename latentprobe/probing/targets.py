"""Probe targets beyond categorical attributes: numbers, binned numbers, parsed intermediate results.

A probe target is one value per example.  The helpers here turn what a study holds (a column of its
data, a callable over its examples, the gold reasoning chain of a GSM8k-style example) into the ``y``
that :func:`~latentprobe.probing.probe_sweep` and :func:`~latentprobe.probing.probe_positions` take:

* :func:`numeric_values`: a column or a callable's values as floats (NaN where missing);
* :func:`bin_values`: numbers cut into quantile bins, for a logistic probe scored by accuracy;
* :func:`parse_intermediates` / :func:`intermediate_values`: the result ``c`` of every ``<<a*b=c>>``
  step of a gold chain (GSM8k-Aug's ``cot``, the format CODI and Coconut train on), and the result of
  step ``i`` per example.

The shuffled-target control of a numeric probe is ``control_types="shuffled"`` in the sweeps: the control
task is the target permuted across all examples (:data:`SHUFFLED`), so ``control`` is the score of the
same probe on a target with no relation to the features (R^2 about 0, or chance accuracy) and
``selectivity = score - control`` comes with its paired group-bootstrap interval.

A regression probe's R^2 says that a linear read-out predicts the value on held-out groups; it does not
say the model computes the value there (a number copied from the question is as decodable as one the
model derived), nor that the model uses it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from jaxtyping import Float, Int

from latentprobe import validate
from latentprobe.errors import ProbeError

__all__ = ["SHUFFLED", "numeric_values", "bin_values", "parse_intermediates", "intermediate_values",
           "shuffled_types"]

#: ``control_types`` value of the sweeps whose control task is the target permuted across all examples.
SHUFFLED = "shuffled"

# one step of a GSM8k-Aug chain: "<<expression=result>>" (the result may carry a sign, commas, decimals)
_STEP = re.compile(r"<<([^<>]*?)=\s*([-+]?[\d,]*\.?\d+(?:[eE][-+]?\d+)?)\s*>>")


def shuffled_types(n: int) -> Int[np.ndarray, " n"]:
    """Control types that make the control task the target permuted across all ``n`` examples (one type).

    Parameters
    ----------
    n : int
        Number of examples.

    Returns
    -------
    numpy.ndarray
        ``n`` zeros.

    Examples
    --------
    >>> shuffled_types(3).tolist()
    [0, 0, 0]
    """
    return np.zeros(int(n), dtype=np.int64)


def _as_float(value: Any, where: str) -> float:
    if value is None:
        return float("nan")
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, str):
        text = value.strip().replace(",", "")
        if text.lower() in ("", "none", "nan"):
            return float("nan")
        try:
            return float(text)
        except ValueError:
            pass
    raise ProbeError(f"{where}: value {value!r} is not a number; a numeric target needs numbers (or None / 'none' "
                     "where an example has no value).")


def numeric_values(source: Sequence[Any] | Callable[[Any], Any], examples: Sequence[Any] | None = None, *,
                   name: str = "target") -> Float[np.ndarray, " n"]:
    """Per-example numbers from a column of values or from a callable over the examples.

    Parameters
    ----------
    source : sequence or callable
        One value per example (a column of the study's data: numbers or numeric strings; ``None`` or
        ``"none"`` where an example has none), or a callable ``example -> value`` applied to ``examples``.
    examples : sequence, optional
        The examples a callable ``source`` reads (required with one).
    name : str
        The target's name, for messages.

    Returns
    -------
    numpy.ndarray
        float64, NaN where an example has no value.

    Raises
    ------
    ProbeError
        A value that is not a number, a callable without examples, or no value at all.

    Examples
    --------
    >>> numeric_values(["3", 4, None, "1,200"]).tolist()
    [3.0, 4.0, nan, 1200.0]
    >>> numeric_values(len, ["ab", "abc"]).tolist()
    [2.0, 3.0]
    """
    if callable(source):
        if examples is None:
            raise ProbeError(f"numeric_values({name!r}): a callable source needs the examples it reads; pass "
                             "examples=[...].")
        values = [source(e) for e in examples]
    else:
        if isinstance(source, (str, bytes)):
            raise ProbeError(f"numeric_values({name!r}): give one value per example, not a string.")
        values = list(source)
    out = np.array([_as_float(v, f"target {name!r}, example {i}") for i, v in enumerate(values)], dtype=np.float64)
    if out.size == 0 or np.isnan(out).all():
        raise ProbeError(f"numeric_values({name!r}): no example has a value; check the column or the callable.")
    return out


def bin_values(values: Sequence[float] | np.ndarray, n_bins: int = 4) -> Int[np.ndarray, " n"]:
    """Numbers cut into quantile bins (``0 .. n_bins-1``; -1 where a value is NaN), for a logistic probe.

    Bin edges are the quantiles of the values that are present; ties can merge bins, so there may be fewer
    than ``n_bins`` labels (at least two are needed for a probe).

    Parameters
    ----------
    values : array-like
        The numbers.
    n_bins : int
        Number of quantile bins.

    Returns
    -------
    numpy.ndarray
        int64 bin labels.

    Raises
    ------
    ProbeError
        ``n_bins < 2``, or fewer than two distinct bins.

    Examples
    --------
    >>> bin_values([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], n_bins=4).tolist()
    [0, 0, 1, 1, 2, 2, 3, 3]
    """
    n_bins = validate.integer(n_bins, "n_bins", minimum=2, where="bin_values", error=ProbeError)
    v = np.asarray(values, dtype=np.float64)
    ok = ~np.isnan(v)
    edges = np.unique(np.quantile(v[ok], np.linspace(0.0, 1.0, int(n_bins) + 1)[1:-1]))
    out = np.full(v.shape, -1, dtype=np.int64)
    out[ok] = np.searchsorted(edges, v[ok], side="left")
    if len(np.unique(out[ok])) < 2:
        raise ProbeError(f"bin_values: the values fall into {len(np.unique(out[ok]))} bin(s); a probe needs at least "
                         "two (the values are nearly constant: probe them as they are, or use fewer bins).")
    return out


def parse_intermediates(chain: str | Sequence[str]) -> tuple[float, ...]:
    """The results of the steps of a gold reasoning chain written ``<<a*b=c>>`` (GSM8k-Aug's ``cot``).

    Parameters
    ----------
    chain : str or sequence of str
        The chain as one string (``"<<16-3-4=9>> <<9*2=18>>"``) or its steps as a list.

    Returns
    -------
    tuple of float
        ``c`` of every step, in order (empty when no step parses).

    Examples
    --------
    >>> parse_intermediates("<<16-3-4=9>> <<9*2=18>>")
    (9.0, 18.0)
    >>> parse_intermediates(["<<1,000/4=250>>", "<<250*-1=-250>>"])
    (250.0, -250.0)
    """
    text = chain if isinstance(chain, str) else " ".join(str(s) for s in chain)
    return tuple(float(m.group(2).replace(",", "")) for m in _STEP.finditer(text))


def intermediate_values(chains: Sequence[str | Sequence[str] | None], step: int) -> Float[np.ndarray, " n"]:
    """The result of step ``step`` of every example's gold chain (NaN where the chain is shorter).

    Parameters
    ----------
    chains : sequence
        One chain per example (a string, a list of steps, or None).
    step : int
        The step (0 = the first; -1 = the last, usually the answer).

    Returns
    -------
    numpy.ndarray
        float64.

    Raises
    ------
    ProbeError
        No chain has that step.

    Examples
    --------
    >>> intermediate_values(["<<2*3=6>> <<6+1=7>>", "<<5-1=4>>"], 1).tolist()
    [7.0, nan]
    >>> intermediate_values(["<<2*3=6>> <<6+1=7>>", "<<5-1=4>>"], -1).tolist()
    [7.0, 4.0]
    """
    out = []
    for chain in chains:
        steps = parse_intermediates(chain) if chain is not None else ()
        ok = -len(steps) <= int(step) < len(steps)
        out.append(steps[int(step)] if ok else math.nan)
    arr = np.array(out, dtype=np.float64)
    if arr.size == 0 or np.isnan(arr).all():
        raise ProbeError(f"intermediate_values: no chain has step {step}; chains are written '<<a*b=c>> ...' "
                         "(GSM8k-Aug's cot) and steps count from 0.")
    return arr
