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

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import pandas as pd

from latentprobe.errors import InputError, StudyError
from latentprobe.schema import Table

if TYPE_CHECKING:
    from latentprobe.analyses.context import Context

__all__ = ["AnalysisOptions", "Analysis", "Unit", "ReportSink", "OptionError", "option", "options_from_mapping",
           "SHARED_OPTIONS"]

#: Options every analysis has, with one meaning each (filled from the study's [study] / [generation]).
SHARED_OPTIONS = ("n_boot", "ci", "seed", "batch_size", "progress", "save_trace")


class OptionError(InputError):
    """An analysis option is wrong: ``key`` names it, ``problem`` says what is wrong, ``fix`` how to fix it."""

    def __init__(self, analysis: str, key: str, problem: str, fix: str) -> None:
        self.analysis, self.key, self.problem, self.fix = analysis, key, problem, fix
        super().__init__(f"{analysis} option {key!r}: {problem}; {fix}.")


def option(default: Any = dataclasses.MISSING, *, choices: Sequence[str] | str | None = None,
           min_value: float | None = None, max_value: float | None = None, all_value: bool = False,
           fingerprint: bool = True, doc: str = "") -> Any:
    """A field of an options dataclass with its checks.

    Parameters
    ----------
    default : object, optional
        The default (omit for a required option). Lists are given as tuples.
    choices : sequence of str or str, optional
        The allowed names (for a ``str`` or ``tuple[str, ...]`` option). A string names a registered
        set (:func:`latentprobe.analyses.names.name_set`): ``"perturbations"``, ``"interventions"``,
        ``"modes"`` or ``"scorers"``; these also take an import string ``"package.module:Name"``.
    min_value, max_value : float, optional
        Bounds of a number (inclusive).
    all_value : bool
        A ``tuple[int, ...] | None`` option where a study file's ``"all"`` means ``None``.
    fingerprint : bool
        Whether the option changes results (``progress`` does not): only those enter the fingerprint.
    doc : str
        One line shown by ``latentprobe analyses``.

    Returns
    -------
    dataclasses.Field
    """
    meta = {"choices": choices, "min": min_value, "max": max_value, "all": all_value, "fingerprint": fingerprint,
            "doc": doc}
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True, kw_only=True)
class AnalysisOptions:
    """The options every analysis shares; an analysis's ``Options`` derives from this class.

    ``None`` in ``n_boot``, ``seed`` or ``batch_size`` means "the study's value" (``[generation]
    n_boot``, ``[study] seed``, ``[generation] batch_size``); :meth:`resolved` fills them in.

    Raises
    ------
    OptionError
        At construction, when an option is of the wrong type, out of range or not an allowed name.
    """

    n_boot: int | None = option(None, min_value=0, doc="bootstrap resamples of every interval")
    ci: float = option(0.95, min_value=0.5, max_value=0.999, doc="confidence level of every interval")
    seed: int | None = option(None, min_value=0, doc="seeds perturbations, interventions, bootstrap and probes")
    batch_size: int | None = option(None, min_value=1, doc="examples per forward")
    progress: bool = option(True, fingerprint=False, doc="progress bars on long loops")
    save_trace: bool = option(False, doc="save the clean run's trace in the analysis folder")

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            _check_value(type(self).__qualname__, f, hints[f.name], getattr(self, f.name))
        self.validate()

    def validate(self) -> None:
        """Checks across options (override; raise :class:`OptionError`)."""

    def _fixed_ci(self, how: str) -> None:
        """For analyses whose intervals have a fixed level: refuse another ``ci`` rather than ignore it."""
        if self.ci != 0.95:
            raise OptionError(type(self).__qualname__, "ci", f"must be 0.95 here ({how}), got {self.ci}",
                              "remove ci from this analysis")

    def resolved(self, defaults: Mapping[str, Any]) -> AnalysisOptions:
        """A copy with every shared option left ``None`` taken from ``defaults``."""
        fill = {k: v for k, v in defaults.items() if k in SHARED_OPTIONS and getattr(self, k, 0) is None}
        return dataclasses.replace(self, **fill) if fill else self

    def fingerprint(self) -> dict[str, Any]:
        """The options that change results, as plain JSON-able data (``progress`` left out)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)
                if f.metadata.get("fingerprint", True)}


def _plain(v: Any) -> Any:
    return [_plain(x) for x in v] if isinstance(v, (tuple, list)) else v


def _base(tp: Any) -> tuple[Any, bool]:
    """``(type without None, whether None is allowed)``."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return (args[0] if len(args) == 1 else tp), len(args) < len(typing.get_args(tp))
    return tp, False


def _choices(f: dataclasses.Field) -> Sequence[str] | None:
    c = f.metadata.get("choices")
    if isinstance(c, str):
        from latentprobe.analyses.names import name_set

        return name_set(c)
    return c


def _check_value(owner: str, f: dataclasses.Field, tp: Any, value: Any) -> None:
    base, nullable = _base(tp)
    if value is None:
        if not nullable:
            raise OptionError(owner, f.name, "is missing (None)", "give a value")
        return
    origin = typing.get_origin(base)
    if origin is tuple:
        item = typing.get_args(base)[0]
        alt = '"all" or ' if f.metadata.get("all") else ""
        if not isinstance(value, tuple) or not value:
            raise OptionError(owner, f.name, f"must be {alt}a non-empty list of {item.__name__}, got {value!r}",
                              f"write e.g. {f.name} = [...]")
        choices = _choices(f)
        if choices is not None and item is str:
            named = isinstance(f.metadata.get("choices"), str)
            from latentprobe.analyses.names import is_import_string

            bad = [v for v in value if not isinstance(v, str) or (v not in choices and not (named and is_import_string(v)))]
            if bad:
                raise OptionError(owner, f.name, f"unknown name(s) {bad}", f"choose from {', '.join(choices)}"
                                  + (" or give an import string 'package.module:Name'" if named else ""))
        lo = f.metadata.get("min")
        if item is int and lo is not None and any(isinstance(v, int) and v < lo for v in value):
            raise OptionError(owner, f.name, f"must be {alt}a non-empty list of integers >= {lo}, got {list(value)}",
                              f'write e.g. {f.name} = [0, 2]' + (f' or {f.name} = "all"' if alt else ""))
        for v in value:
            _check_scalar(owner, f, item, v)
        if len(set(value)) != len(value):
            raise OptionError(owner, f.name, f"lists an entry twice ({list(value)!r})", "list each once")
        return
    _check_scalar(owner, f, base, value)


def _check_scalar(owner: str, f: dataclasses.Field, tp: Any, value: Any) -> None:
    ok = {bool: lambda v: isinstance(v, bool), int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          str: lambda v: isinstance(v, str)}.get(tp, lambda v: True)
    if not ok(value):
        raise OptionError(owner, f.name, f"must be {getattr(tp, '__name__', tp)}, got {type(value).__name__} {value!r}",
                          f"give a {getattr(tp, '__name__', tp)}")
    lo, hi = f.metadata.get("min"), f.metadata.get("max")
    if lo is not None and value < lo or hi is not None and value > hi:
        rng = f">= {lo}" if hi is None else (f"<= {hi}" if lo is None else f"in [{lo}, {hi}]")
        raise OptionError(owner, f.name, f"must be {rng}, got {value!r}", f"give a value {rng}")
    choices = _choices(f)
    from latentprobe.analyses.names import is_import_string

    importable = isinstance(f.metadata.get("choices"), str) and is_import_string(value)
    if choices is not None and tp is str and value not in choices and not importable:
        raise OptionError(owner, f.name, f"unknown name {value!r}", f"choose from {', '.join(choices)}"
                          + (" or give an import string 'package.module:Name'" if isinstance(f.metadata.get('choices'), str) else ""))


def options_from_mapping(options: type[AnalysisOptions], raw: Mapping[str, Any], *, analysis: str
                         ) -> AnalysisOptions:
    """Build ``options`` from a study file's table (lists become tuples, ``"all"`` becomes ``None``).

    Parameters
    ----------
    options : type
        An :class:`AnalysisOptions` subclass.
    raw : mapping
        The ``[analyses.<key>]`` table as TOML read it.
    analysis : str
        The analysis key (named in errors).

    Returns
    -------
    AnalysisOptions

    Raises
    ------
    OptionError
        An unknown key, a missing required key or a bad value; ``key`` names it.
    """
    fields = {f.name: f for f in dataclasses.fields(options) if f.init}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise OptionError(analysis, unknown[0], f"unknown key{'s' if len(unknown) > 1 else ''} {unknown}",
                          f"remove it or use one of: {', '.join(sorted(k for k in fields if k != 'progress'))}")
    hints = typing.get_type_hints(options)
    values: dict[str, Any] = {}
    for name, value in raw.items():
        base, _ = _base(hints[name])
        if fields[name].metadata.get("all") and value == "all":
            value = None
        elif typing.get_origin(base) is tuple:
            if not isinstance(value, list):
                hint = ' or "all"' if fields[name].metadata.get("all") else ""
                raise OptionError(analysis, name, f"must be a list{hint}, got {value!r}", f'write e.g. {name} = [...]')
            ints = typing.get_args(base)[0] is int and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            value = tuple(sorted(set(value))) if ints else tuple(value)  # layers and steps: a set, in order
        values[name] = value
    missing = [n for n, f in fields.items() if n not in values and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise OptionError(analysis, missing[0], "is missing", f"add {missing[0]} = ...")
    try:
        return options(**values)
    except OptionError as err:
        raise OptionError(analysis, err.key, err.problem, err.fix) from None


@dataclass(frozen=True)
class Unit:
    """One unit of work: ``key`` (JSON-able, unique in the analysis) and what the unit needs (``data``)."""

    key: Any
    data: Any = None


class ReportSink(Protocol):
    """What a report section writes to (:class:`latentprobe.report.Report` is one)."""

    def add_heading(self, text: str, level: int = 2) -> Any: ...

    def add_text(self, text: str) -> Any: ...

    def add_table(self, table: pd.DataFrame, caption: str | None = None, **kwargs: Any) -> Any: ...

    def add_figure(self, fig: Any, caption: str | None = None) -> Any: ...

    def add_note(self, text: str, kind: str = "info", title: str | None = None) -> Any: ...


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
        :class:`OptionError` or :class:`~latentprobe.errors.StudyError`). Runs before the model loads."""

    # ---------------------------------------------------------------- work
    def plan(self, ctx: Context, options: AnalysisOptions) -> list[Unit]:
        """The units of work (default: one unit holding everything)."""
        return [Unit("all")]

    def run_unit(self, ctx: Context, options: AnalysisOptions, unit: Unit) -> pd.DataFrame:
        """The rows of one unit (a :attr:`rows_table` frame)."""
        raise StudyError(f"analysis {self.key!r} defines neither run_unit nor run; define one of them.")

    def summarise(self, ctx: Context, options: AnalysisOptions, rows: pd.DataFrame) -> Any:
        """The result object from all units' rows."""
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
        from latentprobe.sweep import ResumableSweep

        units = self.plan(ctx, options)
        keys = [u.key for u in units]
        if len(set(map(repr, keys))) != len(keys):
            raise StudyError(f"analysis {self.key!r}: plan() returned units with the same key; give each a unique key.")
        store = ResumableSweep(folder, name="units", config={"analysis": self.key, "options": options.fingerprint(),
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
    def to_tables(self, result: Any) -> dict[str, pd.DataFrame]:
        """The result as its tables (keys of :attr:`tables`): a mapping's items or the result's attributes."""
        if isinstance(result, Mapping):
            return {name: result[name] for name in self.tables}
        return {name: getattr(result, name) for name in self.tables}

    def from_tables(self, tables: Mapping[str, pd.DataFrame], config: Mapping[str, Any],
                    folder: Path | None = None) -> Any:
        """The result rebuilt from its tables, its stored ``config.json`` and (for extras) its folder
        (default: the tables as a dict; override for a result class)."""
        return dict(tables)

    def save_extras(self, result: Any, folder: Path) -> None:
        """Store what the tables and ``config.json`` do not hold (e.g. matrices; default: nothing)."""

    def config_of(self, result: Any) -> dict[str, Any] | None:
        """What to store as ``config.json`` beside the tables (default: the result's ``config``)."""
        cfg = getattr(result, "config", None)
        return dict(cfg) if isinstance(cfg, Mapping) else None

    def summary_of(self, result: Any) -> pd.DataFrame:
        """The table a bare-DataFrame result is, or the result's first table."""
        if isinstance(result, pd.DataFrame):
            return result
        return next(iter(self.to_tables(result).values()), pd.DataFrame())

    def is_empty(self, result: Any) -> bool:
        """True when the result has nothing to show."""
        return self.summary_of(result).empty

    def figures(self, result: Any) -> list[Any]:
        """Plotly figures of the result (default: none)."""
        return []

    def section(self, report: ReportSink, result: Any, *, title: str | None = None, level: int = 2) -> None:
        """Add the result's report section (default: heading, figures, then each table)."""
        report.add_heading(title or self.title, level)
        for fig in self.figures(result):
            report.add_figure(fig)
        for name, frame in self.to_tables(result).items():
            if len(frame):
                report.add_table(frame, caption=f"`{self.key}/{name}.csv`")

    def headline(self, result: Any) -> dict[str, str]:
        """The few figures a reader looks for first, as ``{label: formatted value}`` (default: none)."""
        return {}

    def answers(self, result: Any) -> pd.DataFrame | None:
        """The answers the analysis generated, one row per example and condition (a
        :class:`latentprobe.schema.ANSWER_ROWS` frame; conditions named ``"<key>: <condition>"``), for the
        study's answer browser and per-condition counts; ``None`` when it generates none (default)."""
        return None

    def accepts(self, result: Any) -> bool:
        """Whether ``result`` is this analysis's (by type, or a DataFrame by :attr:`frame_keys`)."""
        if isinstance(result, pd.DataFrame):
            return bool(self.frame_keys) and self.frame_keys <= set(map(str, result.columns))
        return isinstance(result, self.result_types) if self.result_types else False

    def __repr__(self) -> str:
        return f"<analysis {self.key!r}: {type(self).__name__}>"
