"""How latentprobe objects print: a few summary lines in a terminal, a small table in Jupyter.

A class opts in by subclassing :class:`Summarized` and implementing ``_summary()``, which returns a
title and ``(field, value)`` rows of short strings. Tensors are described by shape and dtype,
never printed.
"""

from __future__ import annotations

import abc
import html
from typing import Any, Sequence

__all__ = ["Summarized", "SummarizedResult", "clip", "describe", "short_list"]

_MAX_VALUE = 160


def describe(value: object) -> str:
    """A short description of ``value``: shape and dtype for arrays and tensors, a clipped repr otherwise.

    Parameters
    ----------
    value : object
        Anything.

    Returns
    -------
    str
    """
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        dims = " x ".join(str(int(s)) for s in shape) or "scalar"
        return f"[{dims}] {str(dtype).replace('torch.', '')}"
    text = repr(value)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 3] + "..."


def clip(text: str, width: int = 60) -> str:
    """``text`` cut to ``width`` characters, an ellipsis marking the cut.

    Parameters
    ----------
    text : str
        The text.
    width : int
        Most characters kept.

    Returns
    -------
    str
    """
    return text if len(text) <= width else text[: width - 1] + "…"


def short_list(items: Sequence[Any], n: int = 4, width: int = 40) -> str:
    """The first ``n`` items (each clipped to ``width`` characters) and how many more there are.

    Parameters
    ----------
    items : Sequence[Any]
        The items.
    n : int
        How many are shown.
    width : int
        Characters per item.

    Returns
    -------
    str
    """
    shown = ", ".join(clip(repr(x) if isinstance(x, str) else str(x), width) for x in list(items)[:n])
    more = len(items) - n
    return f"{shown}, ... (+{more})" if more > 0 else shown


class Summarized(abc.ABC):
    """Mixin: ``repr()`` and ``_repr_html_()`` from ``_summary()``.

    Dataclasses that use it must be declared with ``repr=False`` (otherwise the generated
    ``__repr__`` prints every field, tensors included).
    """

    @abc.abstractmethod
    def _summary(self) -> tuple[str, list[tuple[str, str]]]:
        """A title and ``(field, value)`` rows of short strings."""

    def __repr__(self) -> str:
        title, rows = self._summary()
        width = max((len(k) for k, _ in rows), default=0)
        lines = [title] + [f"  {k.ljust(width)}  {v}" for k, v in rows]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        title, rows = self._summary()
        body = "".join(
            f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
            f"<td style='text-align:left'><code>{html.escape(v)}</code></td></tr>"
            for k, v in rows
        )
        return f"<div><strong>{html.escape(title)}</strong><table>{body}</table></div>"


def _field_text(value: Any) -> str:
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        pd = None
    if pd is not None and isinstance(value, pd.DataFrame):
        cols = short_list([str(c) for c in value.columns], 6)
        return f"DataFrame [{len(value)} rows x {value.shape[1]} columns: {cols}]"
    if isinstance(value, dict):
        return f"dict of {len(value)}: {short_list([str(k) for k in value], 5)}" if value else "{}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return describe(value)


class SummarizedResult(Summarized):
    """Mixin for frozen result dataclasses: one line per field (tables by size and columns, arrays by shape).

    Declare the dataclass with ``repr=False``.
    """

    def _summary(self) -> tuple[str, list[tuple[str, str]]]:
        import dataclasses

        rows = [(f.name, _field_text(getattr(self, f.name))) for f in dataclasses.fields(self)]  # type: ignore[arg-type]
        return type(self).__name__, rows
