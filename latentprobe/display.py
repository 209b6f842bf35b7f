"""How latentprobe objects print: a few summary lines in a terminal, a small table in Jupyter.

A class opts in by subclassing :class:`Summarized` and implementing ``_summary()``, which returns a
title and ``(field, value)`` rows of short strings. Tensors are described by shape and dtype,
never printed.
"""

from __future__ import annotations

import abc
import html
from typing import Any, Sequence

__all__ = ["Summarized", "describe", "short_list"]

_MAX_VALUE = 160


def describe(value: Any) -> str:
    """A short description of ``value``: shape and dtype for arrays and tensors, a clipped repr otherwise."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        dims = " x ".join(str(int(s)) for s in shape) or "scalar"
        return f"[{dims}] {str(dtype).replace('torch.', '')}"
    text = repr(value)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 3] + "..."


def short_list(items: Sequence[Any], n: int = 4) -> str:
    """The first ``n`` items and how many more there are."""
    shown = ", ".join(repr(x) if isinstance(x, str) else str(x) for x in list(items)[:n])
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
