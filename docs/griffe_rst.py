"""Griffe extension for the API reference: the docstrings' reStructuredText bits, as Markdown.

The package's docstrings are numpy style, with two reStructuredText habits that Markdown would show
literally: Sphinx roles (``:func:`x_to_z```, ``:class:`~latentprobe.sweep.ResumableSweep```) and
simple tables (columns under ``=====  =====`` rules). ``mkdocs build`` loads this extension through
mkdocstrings (``extensions:`` in ``mkdocs.yml``); it rewrites each docstring before it is parsed:
a role becomes inline code (a ``~``-prefixed path keeps its last part, as Sphinx shows it), a simple
table becomes a Markdown table. The package's code and docstrings are not changed.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|exc|obj|const):`(~?)([^`]+)`")
_RULE = re.compile(r"^( *)(=+)((?: +=+)+) *$")


def _role(match: re.Match) -> str:
    tilde, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


def _spans(rule: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"=+", rule)]


def _cells(line: str, spans: list[tuple[int, int]]) -> list[str]:
    out = []
    for i, (start, _) in enumerate(spans):
        end = spans[i + 1][0] if i + 1 < len(spans) else len(line)
        out.append(line[start:end].strip())
    return out


def _table(lines: list[str], spans: list[tuple[int, int]]) -> list[str]:
    """A simple table's lines (rules included) as Markdown table lines."""
    rules = [i for i, line in enumerate(lines) if _RULE.match(line)]
    header = [" ".join(c) for c in zip(*(_cells(line, spans) for line in lines[rules[0] + 1: rules[1]]))]
    rows: list[list[str]] = []
    for line in lines[rules[1] + 1: rules[-1]]:
        if not line.strip():
            continue
        cells = _cells(line, spans)
        if rows and not cells[0]:  # a continuation line: its first column is blank
            rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells)]
        else:
            rows.append(cells)
    fmt = lambda cells: "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"  # noqa: E731
    return [fmt(header), "|" + "---|" * len(spans), *(fmt(r) for r in rows)]


def rst_to_markdown(text: str) -> str:
    """``text`` with its simple tables as Markdown tables and its Sphinx roles as inline code."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _RULE.match(lines[i])
        if match:
            spans = _spans(lines[i])
            rules = [i]
            j = i + 1
            while j < len(lines) and len(rules) < 3:
                if _RULE.match(lines[j]):
                    rules.append(j)
                j += 1
            if len(rules) == 3:
                indent = match.group(1)
                out.extend(indent + row for row in _table([ln[len(indent):] for ln in lines[i: j]],
                                                          [(a - len(indent), b - len(indent)) for a, b in spans]))
                i = j
                continue
        out.append(lines[i])
        i += 1
    return _ROLE.sub(_role, "\n".join(out))


class RstToMarkdown(griffe.Extension):
    """Rewrite every docstring with :func:`rst_to_markdown` as griffe loads it."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
