"""The :class:`Report` page: blocks collected in order, rendered with a Jinja2 template.

Text is Markdown (CommonMark, raw HTML disabled, so user text is always escaped); the page is
one offline file with plotly.js embedded once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go
from markupsafe import Markup

from latentprobe.atomic import atomic_write_text
from latentprobe.errors import ReportError
from latentprobe.report.tables import cell_text, format_number, table_block

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Report", "markdown", "markdown_inline"]

_NOTE_KINDS = {"info": "Note", "warning": "Caution"}


@lru_cache(maxsize=1)
def _md() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False})


def markdown(text: str) -> Markup:
    """CommonMark to HTML; raw HTML in ``text`` is escaped, not passed through.

    Parameters
    ----------
    text : str
        Markdown.

    Returns
    -------
    Markup
        The HTML, marked safe for the page's template.
    """
    return Markup(_md().render(str(text)))


def markdown_inline(text: str) -> Markup:
    """One line of CommonMark (emphasis, code spans, links) to HTML, without a paragraph.

    Parameters
    ----------
    text : str
        Markdown, one line.

    Returns
    -------
    Markup
        The HTML, marked safe for the page's template.
    """
    return Markup(_md().renderInline(str(text)))


@lru_cache(maxsize=1)
def _template() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("latentprobe.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return env.get_template("report.html.j2")


def _value_text(value: Any, float_format: str) -> str:
    if isinstance(value, float) and value == value:
        return float_format.format(value)
    return cell_text(value, format_number)


def utc_stamp() -> str:
    """The current time as the report header writes it (``2026-11-30 13:45:00 UTC``)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


class Report:
    """Builder of one self-contained, offline HTML report.

    Parameters
    ----------
    title : str
        Report title (the page's ``<h1>`` and ``<title>``).
    subtitle : str, optional
        One line under the title (e.g. model, dataset, n).
    created : str, optional
        The creation time shown in the header; default the time the page is written (UTC). A
        report rebuilt from stored results passes the stored time, so rebuilding gives the same file.

    Notes
    -----
    Methods return the report, so calls can be chained.  Figures are serialised when added:
    later changes to a figure object do not reach the report.  The header records when the file
    was written (UTC) and the latentprobe version.

    Examples
    --------
    >>> import pandas as pd
    >>> rep = Report("r").add_heading("Counts").add_table(pd.DataFrame({"n": [1, 2]}), caption="Two rows.")
    >>> rep, '<h2 id="counts">Counts</h2>' in rep.to_html()
    (Report(title='r', blocks=2, headings=1, figures=0), True)
    """

    def __init__(self, title: str, subtitle: str | None = None, *, created: str | None = None) -> None:
        self.title = str(title)
        self.created = None if created is None else str(created)
        self.subtitle = None if subtitle is None else str(subtitle)
        self._blocks: list[dict[str, Any]] = []
        self._headings: list[dict[str, Any]] = []
        self._anchors: set[str] = set()
        self._figures: list[tuple[int, str, str | None]] = []  # (number, figure JSON, caption)
        self._n_tables = 0
        self._notes_seen: set[str] = set()  # notes added once per report (latentprobe.report.sections.once)

    @property
    def _n_figures(self) -> int:
        return len(self._figures)

    def __repr__(self) -> str:
        return (
            f"Report(title={self.title!r}, blocks={len(self._blocks)}, "
            f"headings={len(self._headings)}, figures={self._n_figures})"
        )

    # ------------------------------------------------------------------ content
    def _anchor(self, text: str) -> str:
        base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
        anchor, i = base, 2
        while anchor in self._anchors:
            anchor, i = f"{base}-{i}", i + 1
        self._anchors.add(anchor)
        return anchor

    def add_heading(self, text: str, level: int = 2) -> Report:
        """Add a section heading with a table-of-contents entry.

        Parameters
        ----------
        text : str
            The heading (plain text).
        level : int
            2, 3 or 4 (the title is level 1).

        Returns
        -------
        Report
            ``self``, for chaining.

        Raises
        ------
        ReportError
            ``level`` is not 2, 3 or 4.
        """
        if level not in (2, 3, 4):
            raise ReportError(f"level must be 2, 3 or 4 (the title is level 1), got {level!r}.")
        entry = {"type": "heading", "level": level, "text": str(text), "anchor": self._anchor(str(text))}
        self._headings.append(entry)
        self._blocks.append(entry)
        return self

    def add_text(self, text: str) -> Report:
        """Add Markdown text (CommonMark: paragraphs, lists, emphasis, code); raw HTML is escaped.

        Parameters
        ----------
        text : str
            Markdown; blank text adds nothing.

        Returns
        -------
        Report
            ``self``, for chaining.
        """
        if str(text).strip():
            self._blocks.append({"type": "text", "html": markdown(text)})
        return self

    def add_table(
        self,
        df: pd.DataFrame | pd.Series,
        caption: str | None = None,
        float_format: str | None = None,
        max_rows: int | None = 200,
        *,
        index: bool | None = None,
        formats: Mapping[str, str] | None = None,
        order: bool = True,
        merge_ci: bool = True,
        filterable: bool = False,
    ) -> Report:
        """Add a table: key columns first, no index column, numbers rounded, every cell escaped.

        Parameters
        ----------
        df : DataFrame or Series
            The table.  A named index becomes ordinary columns (``index=False`` drops it).
        caption : str, optional
            Markdown caption above the table.
        float_format : str, optional
            ``str.format`` pattern for float cells; default three significant digits.
        max_rows : int or None, default 200
            Show at most this many rows (a line says how many were left out); ``None`` shows all.
        index : bool or None
            Show the index as columns: ``None`` (default) keeps a named index and drops an unnamed one
            (or a default ``RangeIndex``), ``True`` keeps it, ``False`` drops it.
        formats : mapping, optional
            Per-column pattern, e.g. ``{"p_value": "{:.2g}"}``.
        order : bool, default True
            Put key columns (condition, intervention, mode, ...) first, then ``n``, the estimate,
            its interval and ``p_value`` (:func:`latentprobe.report.tables.arrange`).
        merge_ci : bool, default True
            Show ``ci_low``/``ci_high`` as one ``95% CI`` column.
        filterable : bool, default False
            A search box above the table hides the rows that do not contain its text (a few lines of
            inline script; the page stays one offline file). ``report.html?filter=TEXT`` opens the page
            with the box filled in.

        Returns
        -------
        Report
            ``self``, for chaining.

        Raises
        ------
        ReportError
            ``df`` is not a table, or a format or ``max_rows`` is not usable.
        """
        block = table_block(df, float_format=float_format, formats=formats, max_rows=max_rows, index=index,
                            order=order, merge_ci=merge_ci)
        self._n_tables += 1
        block.update(type="table", number=self._n_tables, filterable=bool(filterable),
                     caption=markdown_inline(caption) if caption else None)
        self._blocks.append(block)
        return self

    def add_figure(self, fig: go.Figure, caption: str | None = None) -> Report:
        """Add a plotly figure (serialised now; plotly.js is embedded once for the whole file).

        Parameters
        ----------
        fig : plotly.graph_objects.Figure
            The figure; later changes to it do not reach the report.
        caption : str or None
            Markdown caption; default the figure's own (:func:`latentprobe.viz.caption_for`).

        Returns
        -------
        Report
            ``self``, for chaining.

        Raises
        ------
        ReportError
            ``fig`` is not a plotly figure.
        """
        if not isinstance(fig, go.Figure):
            raise ReportError(f"add_figure expects a plotly.graph_objects.Figure, got {type(fig).__name__}.")
        if caption is None:
            from latentprobe.viz.captions import caption_for

            caption = caption_for(fig)
        number = self._n_figures + 1
        height = fig.layout.height or 480
        fragment = fig.to_html(
            full_html=False, include_plotlyjs=False, include_mathjax=False, div_id=f"lp-figure-{number}",
            default_width="100%", default_height=f"{int(height)}px",
            config={"displaylogo": False, "responsive": True},
        )
        self._figures.append((number, fig.to_json(), str(caption) if caption else None))
        self._blocks.append({"type": "figure", "number": number, "fragment": Markup(fragment),
                             "caption": markdown_inline(caption) if caption else None})
        return self

    def add_note(self, text: str, kind: str = "info", *, title: str | None = None) -> Report:
        """Add a highlighted box (Markdown).

        Parameters
        ----------
        text : str
            Markdown.
        kind : str
            ``"info"`` (context) or ``"warning"`` (e.g. small sample, what the result does not show).
        title : str or None
            The box's title; default ``"Note"`` or ``"Caution"`` by ``kind``.

        Returns
        -------
        Report
            ``self``, for chaining.

        Raises
        ------
        ReportError
            ``kind`` is not ``"info"`` or ``"warning"``.
        """
        if kind not in _NOTE_KINDS:
            raise ReportError(f"kind must be one of {sorted(_NOTE_KINDS)}, got {kind!r}.")
        self._blocks.append({"type": "note", "kind": kind, "role": "alert" if kind == "warning" else "note",
                             "title": _NOTE_KINDS[kind] if title is None else str(title), "html": markdown(text)})
        return self

    def add_key_values(
        self, items: Mapping[Any, Any], caption: str | None = None, float_format: str = "{:.4g}"
    ) -> Report:
        """Add a two-column table of settings or summary numbers (keys and values escaped).

        Parameters
        ----------
        items : Mapping
            ``{key: value}``, shown in order.
        caption : str or None
            Markdown caption above the table.
        float_format : str
            ``str.format`` pattern for float values.

        Returns
        -------
        Report
            ``self``, for chaining.

        Raises
        ------
        ReportError
            ``items`` is not a mapping or ``float_format`` cannot format a float.
        """
        if not isinstance(items, Mapping):
            raise ReportError(f"add_key_values expects a mapping, got {type(items).__name__}.")
        try:
            float_format.format(1.5)
        except (ValueError, TypeError, IndexError, KeyError):
            raise ReportError(f"float_format={float_format!r} cannot format a float; use e.g. '{{:.4g}}'.") from None
        rows = [(str(k), _value_text(v, float_format)) for k, v in items.items()]
        self._blocks.append({"type": "kv", "items": rows, "caption": markdown_inline(caption) if caption else None})
        return self

    def add_result(self, result: object, *, title: str | None = None, level: int = 2) -> Report:
        """Add the standard section of an analysis result: heading, tables, figures with captions and notes.

        The section is the one its analysis declares (:meth:`latentprobe.analyses.Analysis.section`), found
        in the registry by the result's type (:func:`latentprobe.analyses.analysis_for_result`): an
        ``XZResult``, ``ZYResult``, ``MediationResult``, ``ProbeSweepResult``, ``WithinInstanceResult``,
        ``AcrossInstancesResult``, ``BehaviouralProbeResult``, a registered analysis's own result, or the
        summary tables they, ``compare_representations`` and ``collapse_table`` return.

        Parameters
        ----------
        result : object
            The result.
        title : str, optional
            Replaces the section's default heading.
        level : int
            The heading's level: 2, 3 or 4 (3 for one model's result under a section of several).

        Returns
        -------
        Report
            ``self``, for chaining.

        Raises
        ------
        ReportError
            No registered analysis describes ``result``, its table has no rows, or ``level`` is not 2, 3 or 4.
        """
        from latentprobe.analyses import analysis_for_result
        from latentprobe.errors import InputError

        if level not in (2, 3, 4):
            raise ReportError(f"add_result: level must be 2, 3 or 4, got {level!r}.")
        try:
            record = analysis_for_result(result)
        except InputError as err:
            raise ReportError(f"add_result: {err}") from None
        if record.is_empty(result):
            raise ReportError(f"add_result: the {record.key} result has no rows; there is nothing to report.")
        record.section(self, result, title=title, level=level)
        return self

    def add_provenance(self, **kwargs: Any) -> Report:
        """Add the "Provenance" section: settings, model, spec, data sample, software versions.

        Parameters
        ----------
        **kwargs
            The keyword arguments of :func:`latentprobe.report.provenance.add_provenance`.

        Returns
        -------
        Report
            ``self``, for chaining.
        """
        from latentprobe.report.provenance import add_provenance

        add_provenance(self, **kwargs)
        return self

    # ------------------------------------------------------------------ output
    @property
    def figures(self) -> list[tuple[int, go.Figure, str | None]]:
        """``(number, figure, caption)`` of every figure, rebuilt from what was added."""
        import plotly.io as pio

        return [(n, pio.from_json(js), cap) for n, js, cap in self._figures]

    def to_html(self) -> str:
        """The complete HTML document as a string.

        Returns
        -------
        str
        """
        from plotly.offline import get_plotlyjs

        from latentprobe import __version__

        stamp = self.created or utc_stamp()
        return _template().render(
            title=self.title, subtitle=self.subtitle, version=str(__version__),
            meta=f"Created {stamp} · latentprobe {__version__}",
            plotly_js=Markup(get_plotlyjs()) if self._figures else None,
            headings=self._headings, blocks=self._blocks,
            filters=any(b.get("filterable") for b in self._blocks),
        )

    def write(self, path: str | os.PathLike[str], static_dir: str | os.PathLike[str] | None = None,
              *, static_format: str = "png") -> Path:
        """Write the report to ``path`` atomically (temporary file, then ``os.replace``).

        Missing parent directories are created.  With ``static_dir``, every figure is also written
        there as ``figure-<n>.<static_format>`` (:func:`latentprobe.report.export_figures`; needs
        kaleido, ``pip install latentprobe[export]``, checked before anything is written).

        Parameters
        ----------
        path : str or PathLike
            The HTML file.
        static_dir : str or PathLike or None
            A folder for the figures as static images (default: none written).
        static_format : str
            ``"png"``, ``"svg"`` or ``"pdf"``.

        Returns
        -------
        Path
            The path written.

        Raises
        ------
        ExportDependencyError
            ``static_dir`` was given and kaleido is not installed.
        ReportError
            ``static_format`` is not png, svg or pdf.
        """
        from latentprobe.report.export import check_export, export_figures

        if static_dir is not None:
            check_export(static_format)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, self.to_html())
        if static_dir is not None:
            export_figures(self, static_dir, format=static_format)
        return path

    def save(self, path: str | os.PathLike[str], static_dir: str | os.PathLike[str] | None = None,
             *, static_format: str = "png") -> Path:
        """The same as :meth:`write` (the name other libraries use; also shadows the ``.save`` nnsight gives
        every object, which only works inside a trace).

        Parameters
        ----------
        path, static_dir, static_format
            As :meth:`write`.

        Returns
        -------
        Path
            The path written.
        """
        return self.write(path, static_dir, static_format=static_format)
