"""One sweep written by several worker processes: each rank writes its own store, rank 0 merges.

Under ``torchrun`` (:mod:`latentprobe.workers`) the study runner makes a worker group active
(:func:`activate`); every store an analysis opens through :func:`open_store` is then a
:class:`ShardedSweep`. Its folder ``F`` keeps the ordinary store (``F/{name}.meta.json``,
``F/{name}.parts/``: the *merged* store, written by rank 0 only), and each rank writes the units
it computes into a store of its own, ``F/.ranks/rank-R/`` (an ordinary :class:`ResumableSweep`
under its own folder lock: one writer per part, as without workers).

``run(units, fn)`` is collective (every rank calls it with the same units, as they all run the same
analysis code): after a barrier, every rank reads which units are stored anywhere (the merged store
and every ``.ranks/rank-*`` folder, whatever worker count wrote them), computes the same assignment of
the rest (units grouped by the first element of their key, so a chunk's conditions stay on one rank;
groups dealt round-robin over the ranks), and a second barrier lets nobody write before all have read.
Each rank then computes its share into its own store; rank 0 shows one progress bar (units done of
units planned) and watches for a rank that stops storing units. After a third barrier rank 0 copies
every unit into the merged store in plan order, and each rank then removes its own copies (rank 0
also those of ranks beyond the current count, left by an earlier run with more workers). A unit
stored twice (a crash between the merge and the removal) is read once: the merged store wins.

A killed worker leaves its finished units in its rank folder; the next run, with any worker count,
reads them and redoes only what is missing. Rows come back in plan order (units without a plan, such
as a status store written beside a run, in the order of their keys), so the tables do not depend on
which rank computed what.

The group object (:class:`latentprobe.workers.Workers`) gives ``rank``, ``world_size``,
``barrier(label)``, ``unit_started(label, key)`` / ``unit_done(label, key)`` (per-rank status and log),
``planned(n, done)`` / ``advanced(n)`` (rank 0's progress bar) and ``stalled(label, done, total)``
(raises when no unit was stored for longer than the hang timeout).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from latentprobe.errors import LatentProbeError, SweepConfigMismatch, SweepStateError
from latentprobe.sweep.keys import _canonical, _denormalize_key, normalize_key
from latentprobe.sweep.layout import checked_units, mismatch_message, read_meta, read_part
from latentprobe.sweep.resumable import ResumableSweep

__all__ = ["RANKS_DIR", "ShardedSweep", "activate", "active", "open_store", "stored_keys"]

#: The folder, inside a store's folder, of the per-rank stores.
RANKS_DIR = ".ranks"
_ACTIVE: list[Any] = [None]
_POLL_S = 0.2


@contextlib.contextmanager
def activate(group: Any) -> Iterator[None]:
    """Make ``group`` the worker group of every store :func:`open_store` opens in the ``with`` block.

    Parameters
    ----------
    group : latentprobe.workers.Workers
        This process's worker group.
    """
    before = _ACTIVE[0]
    _ACTIVE[0] = group
    try:
        yield
    finally:
        _ACTIVE[0] = before


def active() -> Any:
    """The active worker group, or ``None``.

    Returns
    -------
    latentprobe.workers.Workers or None
    """
    return _ACTIVE[0]


def open_store(out_dir: str | os.PathLike | None, **kwargs: Any) -> Any:
    """A :class:`ShardedSweep` when a worker group is active and ``out_dir`` is a folder, else a
    :class:`~latentprobe.sweep.ResumableSweep` (same arguments).

    Parameters
    ----------
    out_dir : path or None
        The store's folder (``None``: in memory, never sharded).
    **kwargs
        ``name``, ``config``, ``key_columns``, ``format``, ``overwrite``.

    Returns
    -------
    ResumableSweep or ShardedSweep

    Examples
    --------
    >>> type(open_store(None, name="rows")).__name__
    'ResumableSweep'
    """
    if out_dir is None or _ACTIVE[0] is None:
        return ResumableSweep(out_dir, **kwargs)
    return ShardedSweep(out_dir, group=_ACTIVE[0], **kwargs)


def _group_of(key: Any) -> str:
    """Units whose keys share their first element run on one rank (a chunk and its conditions)."""
    norm = normalize_key(key)
    return _canonical(norm[0] if isinstance(norm, list) and norm else norm)


def _natural(key: Any) -> tuple:
    """A total order of JSON keys: numbers by value, before strings, lists element by element."""
    if isinstance(key, list):
        return (2, tuple(_natural(k) for k in key))
    if isinstance(key, bool) or not isinstance(key, (int, float)):
        return (1, str(key))
    return (0, key)


def _read_store(folder: Path, name: str, format: str) -> list[tuple[str, dict[str, Any], Path]]:
    """The unit entries of the store ``name`` in ``folder`` (read only, no lock): ``(canonical key, entry,
    meta path)``; nothing when it has no metadata."""
    meta_path = folder / f"{name}.meta.json"
    if not meta_path.exists():
        return []
    meta = read_meta(meta_path)
    units = checked_units(meta["units"], meta_path, folder / f"{name}.parts", format)
    return [(_canonical(u["key"]), u, meta_path) for u in units]


def _rank_folders(folder: Path) -> list[Path]:
    ranks = folder / RANKS_DIR
    if not ranks.is_dir():
        return []
    found = [p for p in ranks.iterdir() if p.is_dir() and p.name.startswith("rank-") and p.name[5:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[5:]))


def stored_keys(folder: str | os.PathLike, name: str, format: str = "parquet") -> list[Any]:
    """Every unit key stored for ``name`` in ``folder``: the merged store's, then each rank store's (a key
    stored in two places appears twice: after a finished run each key appears once).

    Parameters
    ----------
    folder : path
        The store's folder.
    name : str
        The store's name.
    format : str
        Its parts' format.

    Returns
    -------
    list
        Keys as stored (lists shown as tuples).
    """
    folder = Path(folder)
    out = []
    for f in [folder, *_rank_folders(folder)]:
        out += [_denormalize_key(e["key"]) for _c, e, _m in _read_store(f, name, format)]
    return out


class ShardedSweep:
    """A resumable store shared by the ranks of a worker group (see the module docstring).

    Parameters
    ----------
    out_dir : path
        The store's folder.
    group : latentprobe.workers.Workers
        The worker group.
    name, config, key_columns, format, overwrite
        As :class:`~latentprobe.sweep.ResumableSweep`; ``overwrite`` clears the merged and every rank store.

    Raises
    ------
    SweepConfigMismatch
        The folder holds a store of another config (every rank refuses, with the changed keys).
    """

    def __init__(self, out_dir: str | os.PathLike, *, group: Any, name: str = "results", config: dict | None = None,
                 key_columns: Sequence[str] = ("example_id",), format: str = "parquet",
                 overwrite: bool = False) -> None:
        self._dir, self._group, self._name, self._format = Path(out_dir), group, name, format
        self._kw = {"name": name, "config": config, "key_columns": key_columns, "format": format}
        self._order: list[str] = []
        label = f"open {self._dir.name}/{name}"
        self._main: ResumableSweep | None = None
        refused: LatentProbeError | None = None
        if group.rank == 0:
            try:
                self._main = ResumableSweep(self._dir, overwrite=overwrite, **self._kw)
            except LatentProbeError as err:  # raised once every rank has checked: each refuses, with the diff
                refused = err
            if overwrite:
                for f in _rank_folders(self._dir):
                    self._remove(f)
        group.barrier(label)
        if refused is not None:
            raise refused
        if group.rank != 0:
            self._check_config(config)
        self._own: ResumableSweep | None = None

    @property
    def _mine(self) -> ResumableSweep:
        """This rank's own store, opened when first written (``.ranks/rank-R``, under its own folder lock)."""
        if self._own is None:
            self._own = ResumableSweep(self._dir / RANKS_DIR / f"rank-{self._group.rank}", **self._kw)
        return self._own

    def _check_config(self, config: dict | None) -> None:
        meta_path = self._dir / f"{self._name}.meta.json"
        if config is None or not meta_path.exists():
            return
        stored = read_meta(meta_path).get("config", {})
        if _canonical(normalize_key(dict(config), what="config")) != _canonical(stored):
            raise SweepConfigMismatch(mismatch_message(self._name, self._dir, stored, dict(config)))

    # ------------------------------------------------------------------ reading
    def _entries(self) -> dict[str, tuple[dict[str, Any], Path]]:
        """Every stored unit: canonical key -> (entry, meta path); the merged store first, then rank 0, 1, ..."""
        found: dict[str, tuple[dict[str, Any], Path]] = {}
        for f in [self._dir, *_rank_folders(self._dir)]:
            for canon, entry, meta_path in _read_store(f, self._name, self._format):
                found.setdefault(canon, (entry, meta_path))
        return found

    def _rows(self, entry: dict[str, Any], meta_path: Path) -> pd.DataFrame:
        if not entry.get("part"):
            return pd.DataFrame()
        parts = meta_path.with_name(f"{self._name}.parts")
        return read_part(parts / entry["part"], entry, self._format, meta_path)

    def done(self, unit_key: object) -> bool:
        """Whether a unit is stored (by any rank, in this run or an earlier one).

        Parameters
        ----------
        unit_key : Any
            The unit's key.

        Returns
        -------
        bool
        """
        return _canonical(normalize_key(unit_key)) in self._entries()

    def results(self) -> pd.DataFrame:
        """Every stored unit's rows: units of the last :meth:`run` in plan order, then the rest by key.

        Returns
        -------
        pandas.DataFrame
        """
        entries = self._entries()
        rank = {c: i for i, c in enumerate(self._order)}
        order = sorted(entries, key=lambda c: (0, rank[c], ()) if c in rank else
                       (1, 0, _natural(entries[c][0]["key"])))
        frames = [self._rows(*entries[c]) for c in order]
        frames = [f for f in frames if len(f.columns)]
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True, sort=False) if len(frames) > 1 else frames[0].reset_index(drop=True)

    @property
    def completed_units(self) -> list[Any]:
        """Keys of every stored unit."""
        return [_denormalize_key(e["key"]) for e, _m in self._entries().values()]

    @property
    def config(self) -> dict[str, Any]:
        """The stored configuration."""
        return self._mine.config if self._main is None else self._main.config

    @property
    def out_dir(self) -> Path:
        """The store's folder."""
        return self._dir

    def __len__(self) -> int:
        return len(self._entries())

    def __enter__(self) -> "ShardedSweep":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Release this rank's holds on its own store's lock."""
        if self._own is not None:
            self._own.close()
        if self._main is not None:
            self._main.close()

    # ------------------------------------------------------------------ writing
    def write(self, unit_key: object, rows: pd.DataFrame | list[dict] | dict) -> None:
        """Store one unit's rows in this rank's store.

        Parameters
        ----------
        unit_key : Any
            The unit's key.
        rows : DataFrame, list of dict or dict
            Its rows.

        Raises
        ------
        SweepStateError
            The unit is already stored (by any rank).
        """
        if self.done(unit_key):
            raise SweepStateError(f"unit {unit_key!r} is already stored in {self._dir} (by this or another worker); "
                                  "check `done(key)` before computing it.")
        self._mine.write(unit_key, rows)

    def run(self, units: Iterable[Any], fn: Callable[[Any], Any], *, unit_key: Callable[[Any], Any] = lambda u: u,
            desc: str | None = None, progress: bool = True) -> pd.DataFrame:
        """Compute this rank's share of the units not stored yet; rank 0 merges (collective: every rank calls it).

        Parameters
        ----------
        units : iterable
            The units, in plan order (the same on every rank).
        fn : callable
            ``fn(unit)`` -> the unit's rows.
        unit_key : callable
            A unit's key.
        desc : str, optional
            The label in logs and hang reports (default: the store's name).
        progress : bool
            Ignored: rank 0's group shows one bar for the whole study.

        Returns
        -------
        pandas.DataFrame
            Every unit's rows, in plan order (the same on every rank).
        """
        g, units = self._group, list(units)
        label = f"{self._dir.name}/{desc or self._name}"
        keys = [normalize_key(unit_key(u)) for u in units]
        self._order = [_canonical(k) for k in keys]
        g.barrier(f"plan {label}")
        stored = set(self._entries())
        pending = [i for i, c in enumerate(self._order) if c not in stored]
        groups = list(dict.fromkeys(_group_of(keys[i]) for i in pending))
        mine_groups = set(groups[g.rank::g.world_size])
        mine = [i for i in pending if _group_of(keys[i]) in mine_groups]
        g.barrier(f"assign {label}")
        g.planned(len(units), len(units) - len(pending))
        for i in mine:
            g.unit_started(label, keys[i])
            rows = fn(units[i])
            if rows is None:
                raise SweepStateError(f"fn returned None for unit {keys[i]!r} of {label}; return a DataFrame, a "
                                      "list of dicts or a dict.")
            self._mine.write(keys[i], rows)
            g.unit_done(label, keys[i])
            g.advanced(1)
        if g.rank == 0:
            self._watch(label, len(mine), len(pending))
        g.barrier(f"computed {label}")
        if g.rank == 0:
            self._merge()
        g.barrier(f"merged {label}")
        self._forget_merged()
        return self.results()

    def _watch(self, label: str, counted: int, pending: int) -> None:
        """Rank 0, its share done: advance the bar as the others store units; report a rank that stops."""
        todo = set(self._order)
        base = len(todo) - pending
        last, since = counted, time.monotonic()
        while True:
            stored = len(todo & set(self._entries())) - base
            if stored > last:
                self._group.advanced(stored - last)
                last, since = stored, time.monotonic()
            if stored >= pending:
                return
            self._group.stalled(label, since)
            time.sleep(_POLL_S)

    def _merge(self) -> None:
        """Rank 0: copy every unit of the rank stores into the merged store, in plan order, once."""
        assert self._main is not None
        with self._main:
            entries = self._entries()
            rank = {c: i for i, c in enumerate(self._order)}
            todo = [c for c in entries if not self._main.done(entries[c][0]["key"])]
            todo.sort(key=lambda c: (0, rank[c], ()) if c in rank else (1, 0, _natural(entries[c][0]["key"])))
            for c in todo:
                entry, meta_path = entries[c]
                self._main.write(entry["key"], self._rows(entry, meta_path))

    def _forget_merged(self) -> None:
        """Each rank removes its own copies of this store; rank 0 also those of ranks beyond the group."""
        self.close()
        self._own = None
        self._remove(self._dir / RANKS_DIR / f"rank-{self._group.rank}")
        if self._group.rank == 0:
            for f in _rank_folders(self._dir):
                if int(f.name[5:]) >= self._group.world_size:
                    self._remove(f)

    def _remove(self, folder: Path) -> None:
        """Remove this store's files from a rank folder (other stores there stay; an emptied folder goes)."""
        (folder / f"{self._name}.meta.json").unlink(missing_ok=True)
        shutil.rmtree(folder / f"{self._name}.parts", ignore_errors=True)
        if folder.is_dir() and not any(p.name != ".sweep.lock" for p in folder.iterdir()):
            shutil.rmtree(folder, ignore_errors=True)

    def __repr__(self) -> str:
        return (f"ShardedSweep(out_dir={str(self._dir)!r}, name={self._name!r}, rank={self._group.rank} of "
                f"{self._group.world_size})")
