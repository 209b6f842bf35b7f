"""The options of an analysis: one frozen, keyword-only dataclass per analysis deriving from
:class:`AnalysisOptions`, whose fields are declared with :func:`option` (default, allowed names, bounds,
whether the field changes results, a one-line doc). Options are validated at construction, in Python and
from a study file alike (:func:`options_from_mapping`); the shared fields (:data:`SHARED_OPTIONS`) mean
the same thing in every analysis.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from latentprobe.errors import InputError

__all__ = ["AnalysisOptions", "OptionError", "option", "options_from_mapping", "SHARED_OPTIONS", "document_options"]

#: Options every analysis has, with one meaning each (filled from the study's [study] / [generation]).
SHARED_OPTIONS = ("n_boot", "ci", "seed", "batch_size", "progress", "save_trace")


class OptionError(InputError):
    """An analysis option is wrong.

    Parameters
    ----------
    analysis : str
        The analysis (its key, or its options class).
    key : str
        The option.
    problem : str
        What is wrong.
    fix : str
        How to fix it.
    """

    def __init__(self, analysis: str, key: str, problem: str, fix: str) -> None:
        self.analysis, self.key, self.problem, self.fix = analysis, key, problem, fix
        super().__init__(f"{analysis} option {key!r}: {problem}; {fix}.")


def option(default: object = dataclasses.MISSING, *, choices: Sequence[str] | str | None = None,
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

    ``None`` in ``n_boot``, ``seed``, ``batch_size`` or ``progress`` means "the study's value" (``[generation]
    n_boot``, ``[study] seed``, ``[generation] batch_size``, the run's progress setting); :meth:`resolved`
    fills them in.

    Raises
    ------
    OptionError
        At construction, when an option is of the wrong type, out of range or not an allowed name.
    """

    n_boot: int | None = option(None, min_value=0, doc="bootstrap resamples of every interval")
    ci: float = option(0.95, min_value=0.5, max_value=0.999, doc="confidence level of every interval")
    seed: int | None = option(None, min_value=0, doc="seeds perturbations, interventions, bootstrap and probes")
    batch_size: int | None = option(None, min_value=1, doc="examples per forward")
    progress: bool | None = option(None, fingerprint=False, doc="progress bars on long loops (default: the study's)")
    save_trace: bool = option(False, doc="save the clean run's trace in the analysis folder")

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            _check_value(type(self).__qualname__, f, hints[f.name], getattr(self, f.name))
        self.validate()

    def validate(self) -> None:
        """Checks across options, after each field's own (override; raise :class:`OptionError`)."""

    def _fixed_ci(self, how: str) -> None:
        """For analyses whose intervals have a fixed level: refuse another ``ci`` rather than ignore it."""
        if self.ci != 0.95:
            raise OptionError(type(self).__qualname__, "ci", f"must be 0.95 here ({how}), got {self.ci}",
                              "remove ci from this analysis")

    def resolved(self, defaults: Mapping[str, Any]) -> AnalysisOptions:
        """A copy with every shared option left ``None`` taken from ``defaults``.

        Parameters
        ----------
        defaults : mapping
            The study-level values (:meth:`latentprobe.analyses.Context.defaults`).

        Returns
        -------
        AnalysisOptions
            The same class, every shared option set.
        """
        fill = {k: v for k, v in defaults.items() if k in SHARED_OPTIONS and getattr(self, k, 0) is None}
        return dataclasses.replace(self, **fill) if fill else self

    def fingerprint(self) -> dict[str, Any]:
        """The options that change results, as plain JSON-able data (``progress`` left out).

        Returns
        -------
        dict
            ``{field: value}``, tuples as lists.
        """
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
        if not isinstance(value, tuple) or (not value and f.default != ()):  # empty only where that is the default
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


def document_options(options: type[AnalysisOptions]) -> type[AnalysisOptions]:
    """Append a numpydoc ``Parameters`` section to ``options``' docstring, built from each field's
    :func:`option` ``doc`` (the text ``latentprobe analyses`` prints): one source for both. Idempotent.

    Parameters
    ----------
    options : type
        An :class:`AnalysisOptions` subclass (a dataclass).

    Returns
    -------
    type
        ``options``, its docstring completed.
    """
    doc = options.__doc__ or ""
    if "\nParameters\n" in doc or "Parameters\n----" in doc:
        return options
    hints = typing.get_type_hints(options)
    lines = ["", "", "Parameters", "----------"]
    for f in dataclasses.fields(options):
        hint = hints[f.name]
        kind = hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
        default = "required" if f.default is dataclasses.MISSING else f"default {f.default!r}"
        lines += [f"{f.name} : {kind}", f"    {f.metadata.get('doc') or f.name} ({default})."]
    options.__doc__ = doc.rstrip() + "\n".join(lines) + "\n"
    return options


document_options(AnalysisOptions)
