"""Self-contained HTML reports.

:class:`Report` collects headings, text, tables, figures and notes and
writes them to ONE HTML file that opens without a network connection:
plotly.js is embedded inline once (only when the report has a figure), the
stylesheet is inline, and nothing is loaded from elsewhere.

All user text (headings, paragraphs, notes, table cells, captions) is
HTML-escaped.  Paragraph text supports a small, safe subset of Markdown:
blank lines separate paragraphs, lines starting with ``- `` or ``* `` form a
bullet list, ``**bold**`` and ```code``` are rendered; nothing else is
interpreted.

Example
-------
>>> import numpy as np
>>> from latentprobe import viz
>>> from latentprobe.report import Report
>>> from latentprobe.geometry import within_instance
>>> result = within_instance(np.random.default_rng(0).normal(size=(24, 6, 16)), n_boot=100)
>>> rep = Report("Latent collapse on toy shapes", subtitle="K = 6 latent steps")
>>> rep.add_heading("Similarity").add_figure(viz.similarity_heatmap(result))
Report(title='Latent collapse on toy shapes', blocks=2, headings=1, figures=1)
>>> rep.add_note("n = 24 instances: intervals are wide.", kind="warning")
Report(title='Latent collapse on toy shapes', blocks=3, headings=1, figures=1)
>>> rep.to_html().count("<script")  # plotly.js once, then one per figure
2

``rep.write("report.html")`` writes the same document to one file, atomically.
"""

from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from latentprobe.atomic import atomic_write_text
from latentprobe.errors import ReportError

__all__ = ["Report"]

_NOTE_KINDS = {"info": "Note", "warning": "Caution"}

_CSS = """
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --bg-alt:#f6f8fa;
        --info:#0072B2; --info-bg:#eef6fc; --warn:#D55E00; --warn-bg:#fdf3ec; }
* { box-sizing: border-box; }
body { margin:0; color:var(--fg); background:#fff; line-height:1.55;
       font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; font-size:15px; }
main { max-width: 1100px; margin: 0 auto; padding: 32px 28px 64px; }
header h1 { margin: 0 0 4px; font-size: 1.9em; line-height: 1.25; }
.subtitle { margin: 0 0 6px; color: var(--muted); font-size: 1.1em; }
.meta { margin: 0; color: var(--muted); font-size: .85em; }
h2 { margin-top: 2.2em; padding-bottom: .25em; border-bottom: 1px solid var(--line); font-size: 1.45em; }
h3 { margin-top: 1.8em; font-size: 1.2em; }
h4 { margin-top: 1.5em; font-size: 1.05em; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .9em;
       background: var(--bg-alt); padding: .1em .35em; border-radius: 4px; }
nav.toc { margin: 24px 0 8px; padding: 12px 18px; background: var(--bg-alt);
          border: 1px solid var(--line); border-radius: 6px; }
nav.toc .toc-title { font-weight: 600; margin: 0 0 4px; }
nav.toc ul { list-style: none; margin: 0; padding: 0; }
nav.toc li { margin: 2px 0; }
nav.toc li.toc-3 { padding-left: 1.2em; }
nav.toc li.toc-4 { padding-left: 2.4em; }
nav.toc a { color: var(--info); text-decoration: none; }
nav.toc a:hover { text-decoration: underline; }
.table-wrap { overflow-x: auto; margin: 14px 0 20px; }
table { border-collapse: collapse; font-size: .88em; }
caption { caption-side: top; text-align: left; color: var(--muted); padding: 0 0 6px; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 10px; text-align: left; vertical-align: top; }
thead th { border-bottom: 2px solid var(--fg); background: #fff; position: sticky; top: 0; }
tbody tr:nth-child(even) { background: var(--bg-alt); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.truncated { color: var(--muted); font-size: .85em; margin: 4px 0 0; }
figure { margin: 18px 0 26px; }
figure .plot { width: 100%; }
figcaption { color: var(--muted); font-size: .9em; margin-top: 4px; }
.note { border-left: 4px solid var(--info); background: var(--info-bg); padding: 10px 14px;
        margin: 16px 0; border-radius: 0 6px 6px 0; }
.note.warning { border-left-color: var(--warn); background: var(--warn-bg); }
.note .note-title { font-weight: 600; margin: 0 0 4px; }
.note p { margin: .3em 0; }
table.kv th { font-weight: 600; white-space: nowrap; }
footer { margin-top: 48px; color: var(--muted); font-size: .8em; border-top: 1px solid var(--line);
         padding-top: 8px; }
@media print { nav.toc { break-after: page; } figure, table { break-inside: avoid; } }
"""

_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_BULLET = re.compile(r"^\s*[-*]\s+")
_NUMBERED = re.compile(r"^\s*\d+[.)]\s+")


def _inline(text: str) -> str:
    """Escape ``text`` and render ``code`` spans and **bold** (outside code)."""
    parts = _CODE_SPAN.split(text)
    out = []
    for i, part in enumerate(parts):
        escaped = html.escape(part, quote=True)
        if i % 2:
            out.append(f"<code>{escaped}</code>")
        else:
            out.append(_BOLD.sub(r"<strong>\1</strong>", escaped))
    return "".join(out)


def _render_text(text: str) -> str:
    """Paragraphs and simple lists from plain text with a little Markdown."""
    blocks = [b for b in re.split(r"\n[ \t]*\n", str(text).strip()) if b.strip()]
    out = []
    for block in blocks:
        lines = [ln for ln in block.splitlines() if ln.strip()]
        if all(_BULLET.match(ln) for ln in lines):
            items = "".join(f"<li>{_inline(_BULLET.sub('', ln).strip())}</li>" for ln in lines)
            out.append(f"<ul>{items}</ul>")
        elif all(_NUMBERED.match(ln) for ln in lines):
            items = "".join(f"<li>{_inline(_NUMBERED.sub('', ln).strip())}</li>" for ln in lines)
            out.append(f"<ol>{items}</ol>")
        else:
            out.append(f"<p>{_inline(' '.join(ln.strip() for ln in lines))}</p>")
    return "\n".join(out)


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, (float, np.floating)):
        return math.isnan(value)
    return False


def _format_value(value: Any, float_format: str) -> str:
    if _is_missing(value):
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)):
        try:
            return float_format.format(float(value))
        except (ValueError, TypeError):
            return repr(float(value))
    return str(value)


def _check_float_format(float_format: str) -> None:
    try:
        float_format.format(1.5)
    except (ValueError, TypeError, IndexError, KeyError):
        raise ReportError(
            f"float_format={float_format!r} cannot format a float; use e.g. '{{:.3f}}' or '{{:.3g}}'."
        ) from None


def _column_label(col: Any) -> str:
    if isinstance(col, tuple):
        return " / ".join(str(c) for c in col)
    return str(col)


class Report:
    """Builder of one self-contained, offline HTML report.

    Parameters
    ----------
    title : str
        Report title (the page's ``<h1>`` and ``<title>``).
    subtitle : str, optional
        One line under the title (e.g. model, dataset, n).

    Notes
    -----
    Methods return the report, so calls can be chained.  Figures are
    serialised when added: later changes to a figure object do not reach
    the report.  The header records when the file was written (UTC) and the
    latentprobe version.
    """

    def __init__(self, title: str, subtitle: str | None = None) -> None:
        self.title = str(title)
        self.subtitle = None if subtitle is None else str(subtitle)
        self._blocks: list[str] = []
        self._headings: list[tuple[int, str, str]] = []
        self._anchors: set[str] = set()
        self._n_figures = 0
        self._n_tables = 0

    def __repr__(self) -> str:
        return (
            f"Report(title={self.title!r}, blocks={len(self._blocks)}, "
            f"headings={len(self._headings)}, figures={self._n_figures})"
        )

    # ------------------------------------------------------------------ #
    # Content
    # ------------------------------------------------------------------ #
    def _anchor(self, text: str) -> str:
        base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
        anchor, i = base, 2
        while anchor in self._anchors:
            anchor, i = f"{base}-{i}", i + 1
        self._anchors.add(anchor)
        return anchor

    def add_heading(self, text: str, level: int = 2) -> Report:
        """Add a section heading (``level`` 2, 3 or 4) with a table-of-contents entry."""
        if level not in (2, 3, 4):
            raise ReportError(f"level must be 2, 3 or 4 (the title is level 1), got {level!r}.")
        text = str(text)
        anchor = self._anchor(text)
        self._headings.append((level, text, anchor))
        self._blocks.append(f'<h{level} id="{anchor}">{html.escape(text)}</h{level}>')
        return self

    def add_text(self, text: str) -> Report:
        """Add paragraphs; ``**bold**``, ```code``` and ``- `` bullet lists are rendered, all else escaped."""
        rendered = _render_text(text)
        if rendered:
            self._blocks.append(rendered)
        return self

    def add_table(
        self,
        df: pd.DataFrame | pd.Series,
        caption: str | None = None,
        float_format: str = "{:.3f}",
        max_rows: int | None = 200,
        *,
        index: bool | None = None,
    ) -> Report:
        """Add a table; every cell is escaped, floats use ``float_format``, NaN shows as ``—``.

        Parameters
        ----------
        df : DataFrame or Series
            The table.
        caption : str, optional
            Caption above the table.
        float_format : str, default ``"{:.3f}"``
            ``str.format`` pattern for float cells.
        max_rows : int or None, default 200
            Show at most this many rows (a line says how many were left out);
            ``None`` shows all.
        index : bool, optional
            Show the index; default only when it is not the default
            0..n-1 range.
        """
        if isinstance(df, pd.Series):
            df = df.to_frame()
        if not isinstance(df, pd.DataFrame):
            raise ReportError(f"add_table expects a pandas DataFrame, got {type(df).__name__}.")
        _check_float_format(float_format)
        if max_rows is not None and (not isinstance(max_rows, int) or max_rows < 1):
            raise ReportError(f"max_rows must be a positive int or None, got {max_rows!r}.")
        if index is None:
            index = not (
                isinstance(df.index, pd.RangeIndex) and df.index.start == 0 and df.index.step == 1
            )
        total = len(df)
        shown = df if max_rows is None or total <= max_rows else df.iloc[:max_rows]
        numeric = [
            pd.api.types.is_numeric_dtype(dt) and not pd.api.types.is_bool_dtype(dt) for dt in df.dtypes
        ]
        head = []
        if index:
            names = [n for n in shown.index.names if n is not None]
            head.append(f"<th>{html.escape(' / '.join(map(str, names)))}</th>")
        for col, is_num in zip(df.columns, numeric):
            cls = ' class="num"' if is_num else ""
            head.append(f"<th{cls}>{html.escape(_column_label(col))}</th>")
        body = []
        for idx, values in zip(shown.index, shown.itertuples(index=False, name=None)):
            cells = []
            if index:
                label = " / ".join(map(str, idx)) if isinstance(idx, tuple) else str(idx)
                cells.append(f"<th>{html.escape(label)}</th>")
            for value, is_num in zip(values, numeric):
                cls = ' class="num"' if is_num else ""
                cells.append(f"<td{cls}>{html.escape(_format_value(value, float_format))}</td>")
            body.append(f"<tr>{''.join(cells)}</tr>")
        self._n_tables += 1
        cap = f"<caption>{_inline(str(caption))}</caption>" if caption else ""
        more = ""
        if len(shown) < total:
            more = f'<p class="truncated">Showing the first {len(shown)} of {total} rows.</p>'
        self._blocks.append(
            f'<div class="table-wrap"><table id="table-{self._n_tables}">{cap}'
            f"<thead><tr>{''.join(head)}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}</div>"
        )
        return self

    def add_figure(self, fig: go.Figure, caption: str | None = None) -> Report:
        """Add a plotly figure (serialised now; plotly.js is embedded once for the whole file)."""
        if not isinstance(fig, go.Figure):
            raise ReportError(f"add_figure expects a plotly.graph_objects.Figure, got {type(fig).__name__}.")
        self._n_figures += 1
        div_id = f"lp-figure-{self._n_figures}"
        height = fig.layout.height or 480
        fragment = fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            include_mathjax=False,
            div_id=div_id,
            default_width="100%",
            default_height=f"{int(height)}px",
            config={"displaylogo": False, "responsive": True},
        )
        cap = ""
        if caption:
            cap = f"<figcaption><strong>Figure {self._n_figures}.</strong> {_inline(str(caption))}</figcaption>"
        self._blocks.append(
            f'<figure id="figure-{self._n_figures}"><div class="plot">{fragment}</div>{cap}</figure>'
        )
        return self

    def add_note(self, text: str, kind: str = "info", *, title: str | None = None) -> Report:
        """Add a highlighted box: ``kind="info"`` (context) or ``"warning"`` (e.g. small sample,
        what the result does not show)."""
        if kind not in _NOTE_KINDS:
            raise ReportError(f"kind must be one of {sorted(_NOTE_KINDS)}, got {kind!r}.")
        heading = _NOTE_KINDS[kind] if title is None else str(title)
        role = "alert" if kind == "warning" else "note"
        self._blocks.append(
            f'<aside class="note {kind}" role="{role}"><p class="note-title">{html.escape(heading)}</p>'
            f"{_render_text(text)}</aside>"
        )
        return self

    def add_key_values(
        self, items: Mapping[Any, Any], caption: str | None = None, float_format: str = "{:.4g}"
    ) -> Report:
        """Add a two-column table of settings or summary numbers (keys and values escaped)."""
        if not isinstance(items, Mapping):
            raise ReportError(f"add_key_values expects a mapping, got {type(items).__name__}.")
        _check_float_format(float_format)
        rows = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_format_value(v, float_format))}</td></tr>"
            for k, v in items.items()
        )
        cap = f"<caption>{_inline(str(caption))}</caption>" if caption else ""
        self._blocks.append(f'<div class="table-wrap"><table class="kv">{cap}<tbody>{rows}</tbody></table></div>')
        return self

    # ------------------------------------------------------------------ #
    # Output
    # ------------------------------------------------------------------ #
    def _toc(self) -> str:
        if not self._headings:
            return ""
        items = "".join(
            f'<li class="toc-{level}"><a href="#{anchor}">{html.escape(text)}</a></li>'
            for level, text, anchor in self._headings
        )
        return f'<nav class="toc" aria-label="Contents"><p class="toc-title">Contents</p><ul>{items}</ul></nav>'

    def to_html(self) -> str:
        """The complete HTML document as a string."""
        from . import __version__
        from plotly.offline import get_plotlyjs

        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        meta = f"Created {stamp} · latentprobe {html.escape(str(__version__))}"
        script = ""
        if self._n_figures:
            script = f'<script type="text/javascript">{get_plotlyjs()}</script>\n'
        subtitle = f'<p class="subtitle">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
        title = html.escape(self.title)
        body = "\n".join(self._blocks)
        return (
            "<!DOCTYPE html>\n"
            '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{title}</title>\n"
            f'<meta name="generator" content="latentprobe {html.escape(str(__version__))}">\n'
            f"<style>{_CSS}</style>\n{script}</head>\n<body>\n<main>\n"
            f'<header><h1>{title}</h1>{subtitle}<p class="meta">{meta}</p></header>\n'
            f"{self._toc()}\n{body}\n"
            f"<footer>{meta}. Self-contained file: no network access needed.</footer>\n"
            "</main>\n</body>\n</html>\n"
        )

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the report to ``path`` atomically (temporary file, then ``os.replace``).

        Missing parent directories are created.  Returns the path written.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, self.to_html())
        return path
