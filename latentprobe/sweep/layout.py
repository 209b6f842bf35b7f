"""The on-disk layout of a resumable sweep: part names, the metadata file's checks, temporary files.

Every name read from the metadata is checked against the pattern the store writes
(``part-NNNNN.{format}``), so an edited entry such as ``../../secret.csv`` is refused, never read.
Each unit's entry records its part's SHA-256 (``sha256``), checked whenever the part is read: a
damaged or edited part is refused with :class:`~latentprobe.errors.SweepChecksumError`. A part that
is missing when the store opens is forgotten with a warning, and its unit is computed again (so
deleting a damaged part recomputes it). Parts written before checksums were recorded are read
unchecked.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from latentprobe.errors import LatentProbeWarning, SweepChecksumError, SweepIOError, SweepStateError
from latentprobe.sweep.keys import _canonical, config_diff, read_csv_part

__all__ = ["PART_PATTERN", "valid_part", "part_index", "read_meta", "checked_units", "clean_temp_files",
           "remove_orphans", "mismatch_message", "io_error", "encode_part", "read_part", "forget_missing_parts"]

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
        if (isinstance(n_rows, bool) or not isinstance(n_rows, int) or not isinstance(u.get("dtypes", {}), dict)
                or not isinstance(u.get("sha256", ""), str)):
            raise SweepStateError(f"{where} (unit {u['key']!r}) has a malformed n_rows, dtypes or sha256 field; "
                                  f"{_RESTART}")
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


def encode_part(frame: pd.DataFrame, format: str) -> tuple[bytes, str]:
    """A part's file content and its checksum.

    Parameters
    ----------
    frame : pandas.DataFrame
        The unit's rows.
    format : str
        ``"parquet"`` or ``"csv"``.

    Returns
    -------
    tuple of (bytes, str)
        The bytes to write and ``"sha256:<64 hex digits>"`` of them.
    """
    if format == "parquet":
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        data = buf.getvalue()
    else:
        data = frame.to_csv(index=False).encode("utf-8")
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


def read_part(path: Path, entry: dict[str, Any], format: str, meta_path: Path) -> pd.DataFrame:
    """A stored part's rows, its bytes checked against the checksum its unit's entry records.

    Parameters
    ----------
    path : Path
        The part file.
    entry : dict
        Its unit's metadata entry (``key``, ``sha256``, CSV ``dtypes``).
    format : str
        ``"parquet"`` or ``"csv"``.
    meta_path : Path
        The sweep's metadata file, for messages.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    SweepChecksumError
        The bytes differ from the recorded checksum.
    SweepStateError
        The file is missing or cannot be parsed.
    """
    recover = (f"delete {path} to compute unit {entry['key']!r} again on the next run (the other units are kept), "
               "or pass overwrite=True to start again.")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SweepStateError(f"part {path} of completed unit {entry['key']!r} is missing; the folder was modified "
                              "outside latentprobe. Open the store again to compute that unit again, or pass "
                              "overwrite=True to start again.") from None
    except OSError as exc:
        raise SweepStateError(f"part {path} of completed unit {entry['key']!r} cannot be read ({exc}); "
                              f"{recover}") from exc
    expected = entry.get("sha256")
    if expected is not None and "sha256:" + hashlib.sha256(data).hexdigest() != expected:
        raise SweepChecksumError(f"part {path} of completed unit {entry['key']!r} is damaged: its SHA-256 differs "
                                 f"from the one {meta_path} recorded when it was written; {recover}")
    try:
        if format == "parquet":
            return pd.read_parquet(io.BytesIO(data))
        return read_csv_part(io.BytesIO(data), entry.get("dtypes", {}))
    except Exception as exc:  # a damaged file the checksum did not cover (an old part): pyarrow and csv errors
        raise SweepStateError(f"part {path} of completed unit {entry['key']!r} cannot be read ({type(exc).__name__}: "
                              f"{exc}); the file was damaged or modified outside latentprobe: {recover}") from exc


def forget_missing_parts(units: list[dict[str, Any]], parts_dir: Path) -> list[dict[str, Any]]:
    """``units`` without those whose part file is gone (deleted to recompute them), with a warning naming them.

    Parameters
    ----------
    units : list[dict[str, Any]]
        The sweep's checked units.
    parts_dir : Path
        Its parts folder.

    Returns
    -------
    list[dict[str, Any]]
        The units whose rows are still on disk (and those without rows), in order.
    """
    gone = [u for u in units if u.get("part") and not (parts_dir / u["part"]).is_file()]
    if gone:
        more = " ..." if len(gone) > 5 else ""
        warnings.warn(f"{len(gone)} part file(s) of {parts_dir} are missing ({', '.join(u['part'] for u in gone[:5])}"
                      f"{more}); their units ({', '.join(repr(u['key']) for u in gone[:5])}{more}) will be computed "
                      "again.", LatentProbeWarning, stacklevel=4)
    return [u for u in units if u not in gone]
