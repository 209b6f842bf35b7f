"""One owner per study folder: ``DIR/.study.lock``, taken before a study writes anything there.

The lock is the sweeps' writer lock (:mod:`latentprobe.sweep.lock`) under another file name: created with
``O_EXCL`` and holding the owner's pid, host, process start time and command line; re-entrant within one
process (a study's report, answers and analyses all run under the one hold, and the sweeps inside lock their own
folders); released when the run returns or fails, and at interpreter exit. A lock left by a killed run (its pid is
not running on this host) is taken over, with a :class:`~latentprobe.errors.SweepLockWarning`; a live owner, or
one on another host, refuses the second run with :class:`~latentprobe.errors.StudyLockedError`.

A run by several workers (:func:`group_lock`) is one run: its rank 0 takes the same lock, recording the group's
id (the rendezvous address and the launch id) and size, and every other rank checks, once rank 0 holds it, that
the lock names its own group; a worker of another launch is refused like a second run. Inside the folder each
rank writes only its own files (``.ranks/rank-R`` stores under their own folder locks, ``logs/rank-R.*``,
the clean run's units it computed); everything shared is written by rank 0.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Iterator

from latentprobe.errors import StudyError, StudyLockedError, SweepLockedError
from latentprobe.sweep import lock as _lock

__all__ = ["STUDY_LOCK", "study_lock", "group_lock"]

#: The study lock's file inside the output folder.
STUDY_LOCK = ".study.lock"
_READ_TRIES = 20  # an owner that has just created the file may not have written its record yet


def _owner_text(path: Path) -> str | None:
    for _ in range(_READ_TRIES):
        owner = _lock.read_owner(path)
        if owner is not None:
            text = f"pid {owner.get('pid')} on host {owner.get('host')!r}, started {owner.get('started')}"
            return text + (f" ({owner.get('argv')})" if owner.get("argv") else "")
        if not path.exists():
            return None
        time.sleep(0.05)
    return None


@contextlib.contextmanager
def study_lock(out: str | Path, *, create: bool = True, group: dict | None = None) -> Iterator[None]:
    """Hold ``out``'s study lock for the ``with`` block.

    Parameters
    ----------
    out : str or Path
        The study's output folder.
    create : bool
        Create a missing folder (removed again at the end if it is still empty). Without it a missing folder is
        not locked (there is nothing to protect; the caller reports it).
    group : dict, optional
        A worker group's ``{"group": id, "world_size": n}``, recorded in the lock (:func:`group_lock`).

    Raises
    ------
    StudyError
        ``out`` is a file.
    StudyLockedError
        Another live process holds the lock: the message names its pid, host and start time.

    Examples
    --------
    >>> import tempfile
    >>> from latentprobe.sweep import lock
    >>> d = Path(tempfile.mkdtemp()) / "study"
    >>> with study_lock(d):
    ...     lock.held(d, name=STUDY_LOCK)
    True
    >>> d.exists()          # made for the block, and empty at its end
    False
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise StudyError(f"{out} is a file, not a folder; give --out a folder (new or a study's).")
    made = not out.exists()
    if made and not create:
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    try:
        _lock.acquire(out, name=STUDY_LOCK, what="study folder", extra=group)
    except SweepLockedError as err:
        owner = _owner_text(out / STUDY_LOCK)
        if owner is None:
            raise StudyLockedError(str(err)) from None
        raise StudyLockedError(
            f"study folder {out} is in use by another run: {owner}; only one run may write a study folder at a "
            f"time. Wait for it to finish or choose another --out folder; if that process is gone (it ran on "
            f"another host), delete {out / STUDY_LOCK}.") from None
    try:
        yield
    finally:
        _lock.release(out, name=STUDY_LOCK)
        if made:
            with contextlib.suppress(OSError):
                out.rmdir()  # only when empty: a run that wrote nothing leaves no folder


@contextlib.contextmanager
def group_lock(out: str | Path, workers: Any) -> Iterator[None]:
    """Hold ``out``'s study lock for a worker group: rank 0 takes it (with the group's id), the others check it.

    Parameters
    ----------
    out : str or Path
        The study's output folder.
    workers : latentprobe.workers.Workers
        This process's worker group.

    Raises
    ------
    StudyLockedError
        On rank 0: another run holds the folder. On the other ranks: the lock names another group (another run,
        or another launch's rank 0).
    """
    record = {"group": workers.launch.group_id, "world_size": workers.world_size}
    if workers.is_main:
        with study_lock(out, group=record):
            workers.barrier("study lock")
            yield
        return
    workers.barrier("study lock")
    owner = _lock.read_owner(Path(out) / STUDY_LOCK) or {}
    if owner.get("group") != record["group"]:
        raise StudyLockedError(
            f"study folder {out} is in use by another run: "
            f"{_owner_text(Path(out) / STUDY_LOCK) or 'an unknown process'} "
            f"(group {owner.get('group')!r}), not by rank 0 of this worker group ({record['group']!r}); only one run "
            "may write a study folder at a time. Wait for it to finish or choose another --out folder.")
    yield
