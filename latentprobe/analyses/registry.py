"""The registry of analysis records: :func:`register_analysis`, :func:`get_analysis`,
:func:`registered_analyses` and :func:`analysis_for_result`.

The study runner, the report and the CLI find every analysis here; nothing else names one. Installed
packages add theirs through the entry-point group ``latentprobe.analyses`` (each entry point names an
:class:`~latentprobe.analyses.Analysis` subclass or instance), loaded on the first look-up.
"""

from __future__ import annotations

import re
from typing import Any

from latentprobe.analyses.base import Analysis
from latentprobe.errors import InputError

__all__ = ["register_analysis", "get_analysis", "registered_analyses", "analysis_for_result", "ENTRY_POINT_GROUP"]

#: The entry-point group installed packages register analyses under.
ENTRY_POINT_GROUP = "latentprobe.analyses"

_REGISTRY: dict[str, Analysis] = {}
_entry_points_loaded = False


def register_analysis(analysis: Analysis | type[Analysis], *, overwrite: bool = False) -> Analysis:
    """Register an analysis record (an instance, or a subclass built with no arguments).

    Parameters
    ----------
    analysis : Analysis or type
        The record. Its ``key`` names the study-file table ``[analyses.<key>]`` and the output folder.
    overwrite : bool
        Replace a record already registered under the same key.

    Returns
    -------
    Analysis
        The registered instance (so the function also works as a class decorator's helper).

    Raises
    ------
    InputError
        Not an Analysis, a key that is not a lower-case identifier, no ``Options`` or ``tables``, or a key
        already taken (without ``overwrite``).

    Examples
    --------
    >>> from latentprobe.analyses import Analysis, get_analysis
    >>> get_analysis("z_to_y").title
    'Z -> Y: does the answer change with the latents?'
    """
    record = analysis() if isinstance(analysis, type) and issubclass(analysis, Analysis) else analysis
    if not isinstance(record, Analysis):
        raise InputError(f"register_analysis takes an Analysis subclass or instance, got {analysis!r}; subclass "
                         "latentprobe.analyses.Analysis.")
    key = record.key
    if not isinstance(key, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", key):
        raise InputError(f"register_analysis({type(record).__name__}): key {key!r} must be a lower-case identifier "
                         "(letters, digits, _), e.g. key = \"latent_norms\".")
    if not record.tables:
        raise InputError(f"register_analysis({key!r}): declare its tables ({{name: schema Table}}); the study writes "
                         "and checks them.")
    from latentprobe.analyses.options import document_options

    document_options(record.Options)
    known = _REGISTRY.get(key)
    if known is not None and type(known) is not type(record) and not overwrite:
        raise InputError(f"an analysis {key!r} is already registered ({type(known).__module__}."
                         f"{type(known).__qualname__}); choose another key or pass overwrite=True.")
    _REGISTRY[key] = record
    return record


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj: Any = ep.load()
        except Exception as err:  # an installed package's import failure is its own, named here
            raise InputError(f"entry point {ep.name!r} ({ep.value}) of group {ENTRY_POINT_GROUP!r} failed to load: "
                             f"{err}; fix or uninstall the package that declares it.") from err
        register_analysis(obj, overwrite=True)


def registered_analyses() -> dict[str, Analysis]:
    """Every registered analysis by key, in registration order (built-ins first).

    Returns
    -------
    dict of str to Analysis
    """
    _load_entry_points()
    return dict(_REGISTRY)


def get_analysis(key: str) -> Analysis:
    """The record registered under ``key``.

    Parameters
    ----------
    key : str
        The analysis's study-file key.

    Returns
    -------
    Analysis

    Raises
    ------
    InputError
        No analysis has that key (the message lists the keys).
    """
    found = registered_analyses().get(key)
    if found is None:
        raise InputError(f"unknown analysis {key!r}; registered: {', '.join(registered_analyses())}.")
    return found


def analysis_for_result(result: object) -> Analysis:
    """The record whose result type (or, for a DataFrame, whose key columns) ``result`` has.

    Parameters
    ----------
    result : object
        A result object or a summary table.

    Returns
    -------
    Analysis

    Raises
    ------
    InputError
        No registered analysis describes it.
    """
    for record in registered_analyses().values():
        if record.accepts(result):
            return record
    import pandas as pd

    what = (f"a table with columns {sorted(map(str, result.columns))}" if isinstance(result, pd.DataFrame)
            else f"a {type(result).__name__}")
    raise InputError(f"no registered analysis describes {what}; pass the result object an analysis returned "
                     f"({', '.join(registered_analyses())}), or add it with add_table.")
