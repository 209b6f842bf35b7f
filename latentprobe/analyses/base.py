"""The analysis record: one object per analysis declares everything the study runner, the report and
the CLI need (:class:`Analysis`), with its options as one frozen dataclass (:class:`AnalysisOptions`).

A record declares

* ``key``: its study-file table (``[analyses.<key>]``), its output folder and its registry name;
* ``Options``: a frozen, keyword-only dataclass validated at construction, deriving from
  :class:`AnalysisOptions`, whose shared names (``n_boot``, ``ci``, ``seed``, ``batch_size``,
  ``progress``, ``save_trace``) mean the same thing in every analysis; study files set every field by
  its name, and the shared ones default to the study's ``[study]`` / ``[generation]`` values;
* ``tables``: its result tables, each a :class:`latentprobe.schema.Table` (columns and dtypes), in
  report order;
* how it works: :meth:`Analysis.plan` (work units from the inputs and the clean trace),
  :meth:`Analysis.run_unit` (one unit's rows, stored in a resumable store so a killed study resumes
  unit by unit) and :meth:`Analysis.summarise` (the result object); an analysis whose computation
  already resumes on its own (the causal analyses write their own chunked stores) overrides
  :meth:`Analysis.run` instead;
* how it is shown: :meth:`Analysis.to_tables` / :meth:`Analysis.from_tables` (the result as its
  tables and back), :meth:`Analysis.figures`, :meth:`Analysis.section` (its report section),
  :meth:`Analysis.headline` (the few numbers ``latentprobe run`` prints at the end);
* ``result_types``: the result classes :meth:`latentprobe.report.Report.add_result` recognises as this
  analysis's (DataFrames are recognised by :attr:`Analysis.frame_keys`).

Adding an analysis is one module with its record (``register_analysis(MyAnalysis())``), its tables in
:mod:`latentprobe.schema` (or in the module, for a third-party analysis) and its tests; see
``docs/howto/extend.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import pandas as pd
import plotly.graph_objects as go

from latentprobe.analyses.options import AnalysisOptions, _plain
from latentprobe.errors import StudyError
from latentprobe.schema import Table

if TYPE_CHECKING:
    from latentprobe.analyses.context import Context

__all__ = ["Analysis", "Unit", "ReportSink", "example_units"]


@dataclass(frozen=True)
class Unit:
    """One unit of work of an analysis (:meth:`Analysis.plan`).

    Parameters
    ----------
    key : str, int or tuple
        JSON-able and unique in the analysis: the resumable store records it when the unit is done.
    data : object, optional
        What the unit needs (e.g. the indices of its examples).
    """

    key: str | int | tuple[str | int, ...]
    data: object = None


def example_units(n: int, size: int) -> list[Unit]:
    """Units of ``size`` consecutive examples out of ``n`` (``data``: their positions), keyed by their range.

    Parameters
    ----------
    n : int
        Examples.
    size : int
        Examples a unit (at least 1 is used).

    Returns
    -------
    list of Unit

    Examples
    --------
    >>> [(u.key, u.data) for u in example_units(5, 2)]
    [('examples 0-1', [0, 1]), ('examples 2-3', [2, 3]), ('examples 4-4', [4])]
    """
    k = max(1, int(size))
    return [Unit(key=f"examples {i}-{min(i + k, n) - 1}", data=list(range(i, min(i + k, n)))) for i in range(0, n, k)]


class ReportSink(Protocol):
    """What a report section writes to (:class:`latentprobe.report.Report` is one); every method returns the
    report, for chaining.

    Its methods take: ``text`` (Markdown; a heading's text), ``level`` (a heading's level, 2 to 4), ``table``
    (a DataFrame) with a Markdown ``caption``, ``fig`` (a plotly Figure) with a ``caption``, a note's ``kind``
    (``"info"`` or ``"warning"``) and ``title``.
    """

    def add_heading(self, text: str, level: int = 2) -> ReportSink:
        """Add a heading.

        Parameters
        ----------
        text : str
            The heading.
        level : int
            2, 3 or 4.

        Returns
        -------
        ReportSink
        """

    def add_text(self, text: str) -> ReportSink:
        """Add a paragraph.

        Parameters
        ----------
        text : str
            Markdown.

        Returns
        -------
        ReportSink
        """

    def add_table(self, table: pd.DataFrame, caption: str | None = None, **kwargs: object) -> ReportSink:
        """Add a table.

        Parameters
        ----------
        table : pandas.DataFrame
            The table.
        caption : str, optional
            Markdown caption.

        Returns
        -------
        ReportSink
        """

    def add_figure(self, fig: go.Figure, caption: str | None = None) -> ReportSink:
        """Add a figure.

        Parameters
        ----------
        fig : plotly.graph_objects.Figure
            The figure.
        caption : str, optional
            Markdown caption (default: the figure's own).

        Returns
        -------
        ReportSink
        """

    def add_note(self, text: str, kind: str = "info", title: str | None = None) -> ReportSink:
        """Add a note.

        Parameters
        ----------
        text : str
            Markdown.
        kind : str
            ``"info"`` or ``"warning"``.
        title : str, optional
            Its title.

        Returns
        -------
        ReportSink
        """


class Analysis:
    """The record of one analysis; subclass it, set the class attributes and register an instance.

    Attributes
    ----------
    key : str
        Study-file table ``[analyses.<key>]``, output folder and registry name (letters, digits, ``_``).
    title : str
        The report section's heading.
    Options : type
        Its :class:`AnalysisOptions` subclass.
    tables : mapping of str to schema Table
        Result tables (CSV files of the output folder), in report order; the first is the summary.
    rows_table : str or None
        The table :meth:`run_unit` returns rows of (stored unit by unit), when the analysis uses units.
    result_types : tuple of type
        Result classes this record describes in a report.
    frame_keys : frozenset of str
        Columns by which a bare DataFrame is recognised as this analysis's summary.
    """

    key: ClassVar[str] = ""
    title: ClassVar[str] = ""
    Options: ClassVar[type[AnalysisOptions]] = AnalysisOptions
    tables: ClassVar[Mapping[str, type[Table]]] = {}
    rows_table: ClassVar[str | None] = None
    result_types: ClassVar[tuple[type, ...]] = ()
    frame_keys: ClassVar[frozenset[str]] = frozenset()
    needs_gold: ClassVar[bool] = False

    # ---------------------------------------------------------------- before any work
    def check(self, options: AnalysisOptions, ctx: Context) -> None:
        """Check what the analysis needs of the data before anything is generated (override; raise
        :class:`~latentprobe.analyses.OptionError` or :class:`~latentprobe.errors.StudyError`). Runs before the
        model loads.

        Parameters
        ----------
        options : AnalysisOptions
            The analysis's resolved options.
        ctx : Context
            The study's context; its ``runner`` may be ``None`` here (nothing can be generated).
        """

    # ---------------------------------------------------------------- work
    def plan(self, ctx: Context, options: AnalysisOptions) -> list[Unit]:
        """The units of work (default: one unit holding everything).

        Parameters
        ----------
        ctx : Context
            The runner, the inputs and the clean trace (``ctx.trace``).
        options : AnalysisOptions
            The analysis's resolved options.

        Returns
        -------
        list of Unit
            Each with a JSON-able ``key``, unique in the analysis: the store's record of what is done.
        """
        return [Unit("all")]

    def run_unit(self, ctx: Context, options: AnalysisOptions, unit: Unit) -> pd.DataFrame:
        """The rows of one unit (a :attr:`rows_table` frame; the study stores them before the next unit).

        Parameters
        ----------
        ctx : Context
            The runner, the inputs and the clean trace.
        options : AnalysisOptions
            The analysis's resolved options.
        unit : Unit
            One of :meth:`plan`'s units.

        Returns
        -------
        pandas.DataFrame
            The unit's rows.
        """
        raise StudyError(f"analysis {self.key!r} defines neither run_unit nor run; define one of them.")

    def summarise(self, ctx: Context, options: AnalysisOptions, rows: pd.DataFrame) -> Any:
        """The result object from all units' rows (default: the rows).

        Parameters
        ----------
        ctx : Context
            The runner, the inputs and the clean trace.
        options : AnalysisOptions
            The analysis's resolved options.
        rows : pandas.DataFrame
            Every unit's rows, in plan order.

        Returns
        -------
        object
            The analysis's result (what :meth:`to_tables` takes).
        """
        return rows

    def run(self, ctx: Context, options: AnalysisOptions, folder: Path | None) -> Any:
        """Plan, run every pending unit through the resumable store in ``folder``, summarise.

        Parameters
        ----------
        ctx : Context
            The runner, inputs and clean run.
        options : AnalysisOptions
            Resolved options (no shared option left ``None``).
        folder : Path or None
            Where the unit store lives (``None``: in memory).

        Returns
        -------
        object
            What :meth:`summarise` returns.
        """
        from latentprobe.sweep.sharded import open_store

        units = self.plan(ctx, options)
        keys = [u.key for u in units]
        if len(set(map(repr, keys))) != len(keys):
            raise StudyError(f"analysis {self.key!r}: plan() returned units with the same key; give each a unique key.")
        store = open_store(folder, name="units", config={"analysis": self.key, "options": options.fingerprint(),
                                                              "trace": ctx.trace_fingerprint(), "units": _plain(keys)},
                               key_columns=())
        schema = self.tables[self.rows_table] if self.rows_table else None

        def one(unit: Unit) -> pd.DataFrame:
            rows = self.run_unit(ctx, options, unit)
            if schema is not None:
                rows = schema.frame(rows)
            return rows

        rows = store.run(units, one, unit_key=lambda u: u.key, desc=self.key, progress=options.progress)
        if schema is not None:
            rows = schema.frame(rows)
        return self.summarise(ctx, options, rows)

    # ---------------------------------------------------------------- results
    def to_tables(self, result: object) -> dict[str, pd.DataFrame]:
        """The result as its tables (keys of :attr:`tables`): a mapping's items or the result's attributes.

        Parameters
        ----------
        result : object
            What the analysis's :meth:`run` returned (or :meth:`from_tables` rebuilt).

        Returns
        -------
        dict of str to pandas.DataFrame
            One frame per declared table, checked against its schema before the study writes it.
        """
        if isinstance(result, Mapping):
            return {name: result[name] for name in self.tables}
        return {name: getattr(result, name) for name in self.tables}

    def from_tables(self, tables: Mapping[str, pd.DataFrame], config: Mapping[str, Any],
                    folder: Path | None = None) -> Any:
        """The result rebuilt from its tables, its stored ``config.json`` and (for extras) its folder
        (default: the tables as a dict; override for a result class).

        Parameters
        ----------
        tables : mapping of str to pandas.DataFrame
            The declared tables, read back with their declared dtypes.
        config : mapping
            The stored ``config.json`` (empty when none was stored).
        folder : Path, optional
            The analysis folder, for extras (:meth:`save_extras`).

        Returns
        -------
        object
            The result, as :meth:`run` returned it.
        """
        return dict(tables)

    def save_extras(self, result: object, folder: Path) -> None:
        """Store what the tables and ``config.json`` do not hold (e.g. matrices; default: nothing).

        Parameters
        ----------
        result : object
            What the analysis's :meth:`run` returned (or :meth:`from_tables` rebuilt).
        folder : Path
            The analysis folder.
        """

    def config_of(self, result: object) -> dict[str, Any] | None:
        """What to store as ``config.json`` beside the tables (default: the result's ``config``).

        Parameters
        ----------
        result : object
            What the analysis's :meth:`run` returned (or :meth:`from_tables` rebuilt).

        Returns
        -------
        dict or None
            JSON-able settings, or ``None`` for no ``config.json``.
        """
        cfg = getattr(result, "config", None)
        return dict(cfg) if isinstance(cfg, Mapping) else None

    def summary_of(self, result: object) -> pd.DataFrame:
        """The table a bare-DataFrame result is, or the result's first table.

        Parameters
        ----------
        result : object
            A result, or its summary table.

        Returns
        -------
        pandas.DataFrame
        """
        if isinstance(result, pd.DataFrame):
            return result
        return next(iter(self.to_tables(result).values()), pd.DataFrame())

    def is_empty(self, result: object) -> bool:
        """True when the result has nothing to show.

        Parameters
        ----------
        result : object
            A result, or its summary table.

        Returns
        -------
        bool
        """
        return self.summary_of(result).empty

    def figures(self, result: object) -> list[go.Figure]:
        """Plotly figures of the result (default: none).

        Parameters
        ----------
        result : object
            A result, or its summary table.

        Returns
        -------
        list of plotly.graph_objects.Figure
        """
        return []

    def section(self, report: ReportSink, result: object, *, title: str | None = None, level: int = 2) -> None:
        """Add the result's report section (default: heading, figures, then each table).

        Parameters
        ----------
        report : ReportSink
            The report (:class:`latentprobe.report.Report`).
        result : object
            A result, or its summary table.
        title : str, optional
            Replaces the default heading.
        level : int
            The heading's level.
        """
        report.add_heading(title or self.title, level)
        for fig in self.figures(result):
            report.add_figure(fig)
        for name, frame in self.to_tables(result).items():
            if len(frame):
                report.add_table(frame, caption=f"`{self.key}/{name}.csv`")

    def headline(self, result: object) -> dict[str, str]:
        """The few figures a reader looks for first (``latentprobe run`` prints them last; default: none).

        Parameters
        ----------
        result : object
            What the analysis's :meth:`run` returned (or :meth:`from_tables` rebuilt).

        Returns
        -------
        dict of str to str
            ``{label: formatted value}``.
        """
        return {}

    def answers(self, result: object) -> pd.DataFrame | None:
        """The answers the analysis generated, for the study's answer browser and per-condition counts.

        Parameters
        ----------
        result : object
            What the analysis's :meth:`run` returned (or :meth:`from_tables` rebuilt).

        Returns
        -------
        pandas.DataFrame or None
            One row per example and condition (:class:`latentprobe.schema.ANSWER_ROWS`; conditions named
            ``"<key>: <condition>"``), or ``None`` when the analysis generates no answers (default).
        """
        return None

    def accepts(self, result: object) -> bool:
        """Whether ``result`` is this analysis's (by type, or a DataFrame by :attr:`frame_keys`).

        Parameters
        ----------
        result : object
            Any result or table.

        Returns
        -------
        bool
        """
        if isinstance(result, pd.DataFrame):
            return bool(self.frame_keys) and self.frame_keys <= set(map(str, result.columns))
        return isinstance(result, self.result_types) if self.result_types else False

    def __repr__(self) -> str:
        return f"<analysis {self.key!r}: {type(self).__name__}>"
