"""Result objects read back from a study's output folder: :func:`load_result`.

Each finished analysis folder holds its tables as CSV, plus ``config.json`` (the analysis's
configuration) and whatever extras its record stores (``x_to_z``: ``across_matrices.npz``).
:func:`load_result` rebuilds the object the analysis returned through its record
(:meth:`latentprobe.analyses.Analysis.from_tables`), with every column's declared dtype, so results
can be studied, plotted or reported without re-running anything. An empty cell of a text column
reads as missing (CSV cannot tell an empty answer from a missing one).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from latentprobe.errors import LatentProbeError, StudyError

if TYPE_CHECKING:
    from latentprobe.table import Table

__all__ = ["load_result", "read_frame"]

_TEXT_DTYPES = ("str", "object", "string")
#: Columns read as text in a table without a schema (``sample.csv``, ``answers.csv``).
_TEXT_COLUMNS = ("example_id", "benchmark", "source", "category", "gold", "answer", "parsed", "parse_method",
                 "question", "condition")


def read_frame(path: Path, schema: type[Table] | None = None) -> pd.DataFrame:
    """A table written by a study (empty frame for an empty or absent file).

    With ``schema`` (a :class:`latentprobe.schema.Table`), the columns get their declared dtypes back (text
    stays text, an empty cell of a text column is read as missing); without it, every column is inferred.

    Parameters
    ----------
    path : Path
        The CSV file.
    schema : Table or None
        The table's declared schema (default: none).

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    StudyError
        The file is not UTF-8 CSV (a damaged file): the message names it.
    SchemaError
        Its columns or dtypes are not the schema's.
    """
    if not path.exists() or path.stat().st_size == 0:
        return schema.frame([]) if schema is not None else pd.DataFrame()
    try:
        try:
            head = pd.read_csv(path, nrows=0)
        except pd.errors.EmptyDataError:
            return schema.frame([]) if schema is not None else pd.DataFrame()
        dtypes = dict(getattr(schema, "DTYPES", {}) or {})
        text = {c: str for c in head.columns
                if (str(dtypes.get(c, "")) in _TEXT_DTYPES if schema is not None else c in _TEXT_COLUMNS)}
        frame = pd.read_csv(path, dtype=text, keep_default_na=False, na_values=[""])
        return schema.frame(frame) if schema is not None else frame
    except LatentProbeError:  # SchemaError: names the table and its columns
        raise
    except (ValueError, pd.errors.ParserError) as err:  # not UTF-8, or not CSV
        raise StudyError(f"{path}: cannot be read as the table the study wrote ({type(err).__name__}: "
                         f"{' '.join(str(err).split())[:300]}); the file is damaged: re-run the study with --overwrite "
                         "(or delete the analysis folder and re-run the same command).") from err


def _config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    return json.loads(path.read_text()) if path.exists() else {}


def load_result(folder: str | Path, analysis: str | None = None) -> Any:
    """The result of one finished analysis of a study folder.

    Parameters
    ----------
    folder : path
        ``DIR/<analysis>`` of ``latentprobe run``.
    analysis : str, optional
        The analysis key (default: the folder's name); any registered analysis.

    Returns
    -------
    object
        What the analysis's :meth:`~latentprobe.analyses.Analysis.from_tables` rebuilds: ``XZResult``,
        ``ZYResult``, ``MediationResult``, the probes' and collapse's ``{table: DataFrame}``, ...

    Raises
    ------
    StudyError
        The folder holds no finished analysis (no ``done.json``), or the analysis is not registered.

    Examples
    --------
    >>> from latentprobe.study import load_result
    >>> med = load_result("toy-study/decompose")     # doctest: +SKIP
    >>> med.effects["NIE"].estimate < 0               # doctest: +SKIP
    True
    """
    from latentprobe.analyses import get_analysis
    from latentprobe.errors import InputError

    folder = Path(folder)
    name = analysis or folder.name
    try:
        record = get_analysis(name)
    except InputError as err:
        raise StudyError(f"{folder}: {err}") from None
    if not (folder / "done.json").exists():
        raise StudyError(f"{folder}: no finished {name} analysis here (no done.json); run or resume the study first.")
    tables = {t: read_frame(folder / f"{t}.csv", schema) for t, schema in record.tables.items()}
    return record.from_tables(tables, _config(folder), folder)
