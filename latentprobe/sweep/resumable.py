"""The resumable store: :class:`ResumableSweep` (on disk, or in memory with ``out_dir=None``)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

import pandas as pd
from tqdm.auto import tqdm

from latentprobe.atomic import atomic_write
from latentprobe.errors import (SweepArgumentError, SweepConfigMismatch, SweepError, SweepIOError, SweepRowsError,
                                SweepStateError)
from latentprobe.sweep import lock as _lock
from latentprobe.sweep.keys import _canonical, _denormalize_key, normalize_key, rows_frame
from latentprobe.sweep.layout import (checked_units, clean_temp_files, encode_part, forget_missing_parts, io_error,
                                      mismatch_message, part_index, read_meta, read_part, remove_orphans, valid_part)

__all__ = ["ResumableSweep"]

_META_VERSION = 1
_FORMATS = ("parquet", "csv")


class ResumableSweep:
    """A sweep whose results are written unit by unit and survive interruption.

    Parameters
    ----------
    out_dir : str, os.PathLike or None
        Folder for the results; created if missing. Several sweeps may share
        it if they have different ``name``. ``None`` keeps the sweep in memory:
        the same interface and the same rows (with the dtypes they were
        written with), nothing written to disk and nothing to resume from
        after the process ends.
    name : str, default ``"results"``
        Stem of the metadata file and parts folder.
    config : dict or None
        Everything that determines the results (model, layers, seeds, ...),
        JSON-serialisable. Stored on first use; reopening the directory with
        a different config raises :class:`SweepConfigMismatch`. ``None``
        means "not specified": a new sweep stores ``{}``, an existing one
        keeps its stored config without checking.
    key_columns : sequence of str, default ``("example_id",)``
        Columns every non-empty set of written rows must contain (without
        missing values), so that rows can be matched across conditions.
        Pass ``()`` to disable the check.
    format : {"parquet", "csv"}, default ``"parquet"``
        Storage format of the part files. Parquet preserves dtypes exactly;
        CSV restores int64/float64/bool/str columns from dtypes recorded in
        the metadata, but cannot tell an empty string from a missing value.
    overwrite : bool, default False
        Delete this sweep's existing metadata and parts (other files in
        ``out_dir`` are left alone) and start from scratch.

    Raises
    ------
    SweepArgumentError
        If an argument is malformed.
    SweepConfigMismatch
        If the directory holds a sweep with a different config or format
        (the message lists every changed key: ``'a.b': stored OLD, now NEW``).
    SweepLockedError
        If another live process is writing to the folder.
    SweepStateError
        If the metadata file is unreadable or names parts the store did not write.

    Opening, :meth:`run` and :meth:`write` take the folder's writer lock and
    release it when they return (``with sweep:`` holds it for a block; stores
    of one process share it); after another process has written, the next
    :meth:`run` or :meth:`write` reads the metadata again.

    Notes
    -----
    Resuming guarantees that no completed unit is lost or duplicated; it
    does not guarantee that recomputed units give the same numbers as an
    uninterrupted run. That depends on ``fn`` being deterministic given the
    unit and the seeds recorded in ``config``.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike | None,
        *,
        name: str = "results",
        config: dict | None = None,
        key_columns: Sequence[str] = ("example_id",),
        format: str = "parquet",
        overwrite: bool = False,
    ) -> None:
        seps = {"/", os.sep} | ({os.altsep} if os.altsep else set())
        if (not isinstance(name, str) or not name or name.startswith(".") or any(c in name for c in seps)
                or "\0" in name):
            raise SweepArgumentError(f"`name` must be a non-empty file stem without path separators or a "
                                     f"leading dot, got {name!r}.")
        if format not in _FORMATS:
            raise SweepArgumentError(f"`format` must be one of {_FORMATS}, got {format!r}.")
        if isinstance(key_columns, str):
            key_columns = (key_columns,)
        try:
            self._key_columns = tuple(key_columns)
        except TypeError:
            raise SweepArgumentError(
                f"`key_columns` must be a sequence of column names, got {type(key_columns).__name__}."
            ) from None
        for col in self._key_columns:
            if not isinstance(col, str):
                raise SweepArgumentError(f"`key_columns` must be strings, got {col!r}.")
        if config is not None and not isinstance(config, Mapping):
            raise SweepArgumentError(f"`config` must be a dict of settings (or None), got {type(config).__name__}.")

        self._name = name
        self._format = format
        self._requested = None if config is None else normalize_key(dict(config), what="config")
        self._memory: dict[str, pd.DataFrame] | None = None
        self._generation: int | None = None
        self._holds = 0
        if out_dir is None:  # in memory: no folder, no metadata file, nothing to resume
            self._memory = {}
            self._out_dir = self._parts_dir = self._meta_path = None
            self._config = {} if self._requested is None else self._requested
            self._units: list[dict[str, Any]] = []
            self._done: set[str] = set()
            return
        self._out_dir = Path(out_dir)
        self._parts_dir = self._out_dir / f"{name}.parts"
        self._meta_path = self._out_dir / f"{name}.meta.json"
        self._config = {}
        self._units = []
        self._done = set()
        try:
            self._out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SweepIOError(exc.errno, f"cannot create sweep folder {self._out_dir}: {exc.strerror}; "
                                          "pass an out_dir you can write to.") from exc
        with self._locked(refresh=False):
            if overwrite:
                try:
                    if self._parts_dir.exists():
                        shutil.rmtree(self._parts_dir)
                    self._meta_path.unlink(missing_ok=True)
                except OSError as exc:
                    raise io_error(exc, f"removing the old results of sweep {name!r} in {self._out_dir}") from exc
            self._load()

    # -- locking and loading ---------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, refresh: bool = True) -> Iterator[None]:
        """Hold the folder's writer lock; reload the metadata if another process may have written."""
        if self._memory is not None:
            yield
            return
        generation = self._acquire()
        try:
            if refresh and generation != self._generation:
                self._load()
            self._generation = generation
            yield
        finally:
            self._holds -= 1
            _lock.release(self._out_dir)

    def __enter__(self) -> "ResumableSweep":
        """Hold the folder's writer lock until the ``with`` block ends (other processes are refused)."""
        if self._memory is None:
            generation = self._acquire()
            if generation != self._generation:
                try:
                    self._load()
                except BaseException:
                    self.close()
                    raise
                self._generation = generation
        return self

    def _acquire(self) -> int:
        try:
            generation = _lock.acquire(self._out_dir)
        except OSError as exc:
            raise io_error(exc, f"taking the writer lock of {self._out_dir}") from exc
        self._holds += 1
        return generation

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Release every hold this store has on the folder's writer lock (``run`` and ``write`` take
        and release it themselves; this ends a ``with`` block)."""
        while self._holds > 0:
            self._holds -= 1
            _lock.release(self._out_dir)

    def _load(self) -> None:
        """Read (or create) the metadata, check it against the requested config, clean the folder.
        Called with the lock held."""
        try:
            self._load_files()
        except SweepError:
            raise
        except OSError as exc:
            raise io_error(exc, f"reading sweep {self._name!r} in {self._out_dir}") from exc

    def _load_files(self) -> None:
        self._parts_dir.mkdir(parents=True, exist_ok=True)
        if self._meta_path.exists():
            meta = read_meta(self._meta_path)
            stored_format = meta.get("format", "parquet")
            if stored_format != self._format:
                raise SweepConfigMismatch(
                    f"sweep {self._name!r} in {self._out_dir} was stored as {stored_format!r}, "
                    f"but format={self._format!r} was requested; pass format={stored_format!r}, "
                    "use a new out_dir, or pass overwrite=True to discard the old results."
                )
            stored_config = meta.get("config", {})
            if self._requested is not None and _canonical(self._requested) != _canonical(stored_config):
                raise SweepConfigMismatch(mismatch_message(self._name, self._out_dir, stored_config, self._requested))
            self._config = stored_config
            self._units = checked_units(meta["units"], self._meta_path, self._parts_dir, self._format)
            kept = forget_missing_parts(self._units, self._parts_dir)
            if len(kept) < len(self._units):
                self._units = kept
                self._write_meta()
        else:
            self._config = {} if self._requested is None else self._requested
            self._units = []
            self._write_meta()
        self._done = {_canonical(u["key"]) for u in self._units}
        clean_temp_files(self._out_dir)
        remove_orphans(self._parts_dir, self._units)

    # -- metadata ------------------------------------------------------------

    @property
    def _where(self) -> str:
        return "memory" if self._meta_path is None else str(self._meta_path)

    def _write_meta(self) -> None:
        if self._memory is not None:
            return
        meta = {
            "version": _META_VERSION,
            "name": self._name,
            "format": self._format,
            "key_columns": list(self._key_columns),
            "config": self._config,
            "units": self._units,
        }
        text = json.dumps(meta, indent=1, sort_keys=False)
        try:
            atomic_write(self._meta_path, lambda f: f.write(text), binary=False)
        except OSError as exc:
            raise SweepIOError(exc.errno, f"writing sweep metadata {self._meta_path} failed ({exc}); the "
                                          "last unit was not recorded and will be computed again on resume "
                                          "(free disk space or fix permissions, then rerun).") from exc

    # -- properties ------------------------------------------------------------

    @property
    def config(self) -> dict[str, Any]:
        """The stored configuration (JSON form: tuples appear as lists)."""
        return json.loads(json.dumps(self._config))

    @property
    def completed_units(self) -> list[Any]:
        """Keys of completed units in completion order (lists shown as tuples)."""
        return [_denormalize_key(u["key"]) for u in self._units]

    @property
    def out_dir(self) -> Path | None:
        """Folder holding the sweep (``None`` for a sweep kept in memory)."""
        return self._out_dir

    @property
    def format(self) -> str:
        """Storage format of the parts (``"parquet"`` or ``"csv"``)."""
        return self._format

    @property
    def key_columns(self) -> tuple[str, ...]:
        """Columns required in every written set of rows."""
        return self._key_columns

    def __len__(self) -> int:
        return len(self._units)

    def __repr__(self) -> str:
        return (
            f"ResumableSweep(out_dir={None if self._out_dir is None else str(self._out_dir)!r}, name={self._name!r}, "
            f"format={self._format!r}, completed={len(self._units)})"
        )

    # -- core API --------------------------------------------------------------

    def done(self, unit_key: object) -> bool:
        """Whether a unit has been completed and stored.

        Parameters
        ----------
        unit_key : Any
            JSON-serialisable key; tuples and lists with equal items match.

        Returns
        -------
        bool
        """
        return _canonical(normalize_key(unit_key)) in self._done

    def write(self, unit_key: object, rows: pd.DataFrame | list[dict] | dict) -> None:
        """Store the rows of one unit and record the unit as completed.

        The part file is written atomically first; only then is the unit
        added to the metadata (also written atomically). A crash in between
        leaves an unrecorded part that is discarded on the next open.

        Parameters
        ----------
        unit_key : Any
            JSON-serialisable key of the unit (str, int, tuple, ...).
        rows : DataFrame, list of dict or dict
            The unit's rows, in the order they should appear in
            :meth:`results`. The DataFrame index is discarded. An empty list
            records the unit as completed with no rows.

        Raises
        ------
        SweepStateError
            If the unit is already completed.
        SweepRowsError
            If the rows cannot be stored (see message).
        """
        key = normalize_key(unit_key)
        frame = rows_frame(rows, unit_key, self._key_columns)
        with self._locked():
            self._write_locked(unit_key, key, frame)

    def _write_locked(self, unit_key: Any, key: Any, frame: pd.DataFrame) -> None:
        canon = _canonical(key)
        if canon in self._done:
            raise SweepStateError(
                f"unit {unit_key!r} is already completed in {self._where}; check "
                "`done(key)` before computing it, or pass overwrite=True to start again."
            )
        entry: dict[str, Any] = {"key": key, "part": None, "n_rows": int(len(frame))}
        if len(frame.columns) or len(frame):
            part_name = self._next_part_name()
            try:
                if self._memory is not None:
                    self._memory[part_name] = frame
                else:
                    data, entry["sha256"] = encode_part(frame, self._format)
                    if self._format == "csv":
                        entry["dtypes"] = {c: str(t) for c, t in frame.dtypes.items()}
                    atomic_write(self._parts_dir / part_name, lambda f: f.write(data), binary=True)
            except OSError as exc:
                raise SweepIOError(
                    exc.errno, f"writing part {part_name} of unit {unit_key!r} in {self._parts_dir} failed "
                    f"({exc}); the unit was not recorded and will be computed again on resume (free disk "
                    "space or fix permissions, then rerun).") from exc
            except Exception as exc:  # serialisation failures (e.g. mixed-type columns)
                raise SweepRowsError(
                    f"rows for unit {unit_key!r} could not be written as {self._format} "
                    f"({type(exc).__name__}: {exc}); give each column a single type "
                    "(numbers, strings or booleans)."
                ) from exc
            entry["part"] = part_name
        self._units.append(entry)
        try:
            self._write_meta()
        except BaseException:
            self._units.pop()
            raise
        self._done.add(canon)

    def _next_part_name(self) -> str:
        used = [part_index(u["part"]) for u in self._units if u.get("part")]
        idx = max(used, default=-1) + 1
        return f"part-{idx:05d}.{self._format}"

    def _read_part(self, entry: dict[str, Any]) -> pd.DataFrame:
        if self._memory is not None:
            return self._memory[entry["part"]]
        if not valid_part(entry["part"], self._format):
            raise SweepStateError(f"unit {entry['key']!r} in {self._meta_path} names part {entry['part']!r}, "
                                  "which this store did not write; pass overwrite=True to start again.")
        return read_part(self._parts_dir / entry["part"], entry, self._format, self._meta_path)

    def results(self) -> pd.DataFrame:
        """All stored rows, one DataFrame.

        Returns
        -------
        pandas.DataFrame
            Parts concatenated in unit completion order, rows within a unit
            in the order they were written, with a fresh ``RangeIndex``.
            Columns missing from some units are filled with missing values.
            Empty (no columns) when nothing has been written.
        """
        frames = [self._read_part(u) for u in self._units if u.get("part")]
        frames = [f for f in frames if len(f.columns)]
        if not frames:
            return pd.DataFrame()
        if len(frames) == 1:
            return frames[0].reset_index(drop=True)
        return pd.concat(frames, ignore_index=True, sort=False)

    def run(
        self,
        units: Iterable[Any],
        fn: Callable[[Any], pd.DataFrame | list[dict] | dict],
        *,
        unit_key: Callable[[Any], Any] = lambda u: u,
        desc: str | None = None,
        progress: bool = True,
    ) -> pd.DataFrame:
        """Compute and store every unit that is not yet completed.

        Parameters
        ----------
        units : iterable
            Units of work, in the order they should be computed.
        fn : callable
            ``fn(unit)`` returns the unit's rows (DataFrame, list of dicts or
            dict). Called only for units that are not completed.
        unit_key : callable, default identity
            Maps a unit to its JSON-serialisable key.
        desc : str, optional
            Progress bar label (defaults to the sweep name).
        progress : bool, default True
            Show a tqdm progress bar.

        Returns
        -------
        pandas.DataFrame
            :meth:`results` after all units are done.

        Raises
        ------
        Exception
            Whatever ``fn`` raises, after every unit finished before it has
            been stored; rerunning resumes from the failed unit.
        """
        with self._locked():
            self._run_locked(units, fn, unit_key, desc, progress)
        return self.results()

    def _run_locked(self, units: Iterable[Any], fn: Callable[[Any], Any], unit_key: Callable[[Any], Any],
                    desc: str | None, progress: bool) -> None:
        total = None
        initial = 0
        if hasattr(units, "__len__"):
            units = list(units)
            total = len(units)
            initial = sum(1 for u in units if self.done(unit_key(u)))
        bar = tqdm(
            total=total,
            initial=initial,
            desc=desc if desc is not None else self._name,
            disable=not progress,
            unit="unit",
        )
        try:
            for unit in units:
                key = unit_key(unit)
                if self.done(key):
                    if total is None:
                        bar.update(1)
                    continue
                rows = fn(unit)
                if rows is None:
                    raise SweepRowsError(
                        f"fn returned None for unit {key!r}; return a DataFrame, a list of "
                        "dicts or a dict (an empty list records a unit with no rows)."
                    )
                self.write(key, rows)
                bar.update(1)
        finally:
            bar.close()
