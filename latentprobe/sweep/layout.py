"""The on-disk layout of a resumable sweep: part names, the metadata file's checks, temporary files.

Every name read from the metadata is checked against the pattern the store writes
(``part-NNNNN.{format}``), so an edited entry such as ``../../secret.csv`` is refused, never read.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from latentprobe.errors import SweepIOError, SweepStateError
from latentprobe.sweep.keys import _canonical, config_diff

__all__ = ["PART_PATTERN", "valid_part", "part_index", "read_meta", "checked_units", "clean_temp_files",
           "remove_orphans", "mismatch_message", "io_error"]

#: Names of part files: ``part-`` five to nine digits, then the storage format.
PART_PATTERN = re.compile(r"part-(\d{5,9})\.(parquet|csv)")
_TEMP = re.compile(r"\..+\.tmp")  # atomic_write's temporary files: ".{target}.{random}.tmp"
_MAX_DIFFS = 12
_RESTART = "the file was modified outside latentprobe. Pass overwrite=True (or delete the folder) to start again."


def valid_part(part: object, format: str) -> bool:
    """Whether ``part`` is a name this store writes for ``format``.

    Parameters
    ----------
    part : object
        A part's file name (anything else is not one).
    format : str
        The parts' file format.

    Returns
    -------
    bool
    """
    m = PART_PATTERN.fullmatch(part) if isinstance(part, str) else None
    return m is not None and m.group(2) == format


def part_index(part: str) -> int:
    """The number in a valid part name.

    Parameters
    ----------
    part : str
        A part's file name.

    Returns
    -------
    int
    """
    m = PART_PATTERN.fullmatch(part)
    if m is None:
        raise SweepStateError(f"part name {part!r} does not match {PART_PATTERN.pattern}; {_RESTART}")
    return int(m.group(1))


def read_meta(meta_path: Path) -> dict[str, Any]:
    """The metadata file as a dict with a ``units`` list and a ``config`` dict.

    Parameters
    ----------
    meta_path : Path
        The sweep's ``meta.json``.

    Returns
    -------
    dict[str, Any]
    """
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError) as exc:
        raise SweepStateError(f"cannot read sweep metadata {meta_path} ({exc}); {_RESTART}") from exc
    if (not isinstance(meta, dict) or not isinstance(meta.get("units", []), list)
            or not isinstance(meta.get("config", {}), dict)):
        raise SweepStateError(f"sweep metadata {meta_path} has an unexpected structure; {_RESTART}")
    meta.setdefault("units", [])
    return meta


def checked_units(units: list[Any], meta_path: Path, parts_dir: Path, format: str) -> list[dict[str, Any]]:
    """The metadata's unit entries, each checked: a key, a row count, and a part named by the store
    (``part-NNNNN.{format}``, used once) or none.

    Parameters
    ----------
    units : list[Any]
        The sweep's units.
    meta_path : Path
        The sweep's ``meta.json``.
    parts_dir : Path
        Its parts folder.
    format : str
        The parts' file format.

    Returns
    -------
    list[dict[str, Any]]
    """
    seen_parts: set[str] = set()
    seen_keys: set[str] = set()
    for i, u in enumerate(units):
        where = f"sweep metadata {meta_path}, units[{i}]"
        if not isinstance(u, dict) or "key" not in u:
            raise SweepStateError(f"{where} is {u!r}, not a unit entry with a key; {_RESTART}")
        part = u.get("part")
        if part is not None and not valid_part(part, format):
            raise SweepStateError(
                f"{where} (unit {u['key']!r}) names part {part!r}, which this store did not write (parts are "
                f"named part-NNNNN.{format} inside {parts_dir}); {_RESTART}")
        if part is not None and part in seen_parts:
            raise SweepStateError(f"{where} (unit {u['key']!r}) reuses part {part!r}; {_RESTART}")
        canon = _canonical(u["key"])
        if canon in seen_keys:
            raise SweepStateError(f"{where} repeats unit {u['key']!r}; {_RESTART}")
        n_rows = u.get("n_rows", 0)
        if isinstance(n_rows, bool) or not isinstance(n_rows, int) or not isinstance(u.get("dtypes", {}), dict):
            raise SweepStateError(f"{where} (unit {u['key']!r}) has a malformed n_rows or dtypes field; {_RESTART}")
        seen_keys.add(canon)
        if part is not None:
            seen_parts.add(part)
    return list(units)


def clean_temp_files(folder: Path) -> list[Path]:
    """Remove every temporary file of an interrupted atomic write anywhere under ``folder``; return them.

    Parameters
    ----------
    folder : Path
        The sweep's folder.

    Returns
    -------
    list of Path
        The files removed.
    """
    removed = []
    for root, _dirs, files in os.walk(folder):
        for f in files:
            if _TEMP.fullmatch(f):
                path = Path(root) / f
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue
                removed.append(path)
    return removed


def mismatch_message(name: str, out_dir: Path, stored: object, new: object) -> str:
    """The message of a config mismatch: every changed key (dotted path, stored -> now) and the way out.

    Parameters
    ----------
    name : str
        The sweep's name.
    out_dir : Path
        Its folder.
    stored : Any
        The stored fingerprint.
    new : Any
        The new one.

    Returns
    -------
    str
    """
    diffs = config_diff(stored, new)
    shown = diffs[:_MAX_DIFFS] + ([f"... and {len(diffs) - _MAX_DIFFS} more"] if len(diffs) > _MAX_DIFFS else [])
    return (
        f"sweep {name!r} in {out_dir} was run with a different config; what changed (stored -> now): "
        f"{'; '.join(shown)}. The stored results cannot be mixed with these; use a new out_dir (or name) "
        "for the new config, or delete the folder (or pass overwrite=True) to discard the old results."
    )


def remove_orphans(parts_dir: Path, units: list[dict[str, Any]]) -> None:
    """Remove files in ``parts_dir`` that no unit names: a temporary file, or a part renamed into place
    just before a crash, before the metadata recorded it (its unit is not completed and is redone).

    Parameters
    ----------
    parts_dir : Path
        The parts folder.
    units : list[dict[str, Any]]
        The sweep's units.
    """
    referenced = {u["part"] for u in units if u.get("part")}
    for p in parts_dir.iterdir():
        if p.name not in referenced and p.is_file():
            p.unlink(missing_ok=True)


def io_error(exc: OSError, doing: str) -> SweepIOError:
    """``exc`` as a :class:`SweepIOError` saying what was being done.

    Parameters
    ----------
    exc : OSError
        The error.
    doing : str
        What was being done.

    Returns
    -------
    SweepIOError
    """
    return SweepIOError(exc.errno, f"{doing} failed ({exc}); check that the folder exists, is writable and "
                                   "has free space, then rerun (completed units are kept).")
