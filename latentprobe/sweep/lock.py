"""One writer per sweep folder: a lock file created atomically, re-entrant within a process.

The lock file ``{folder}/.sweep.lock`` (another ``name`` for other owners of a folder: a study's
``.study.lock``, :mod:`latentprobe.study.owner`) holds the owner's pid, host, process start time and a random
token, as JSON. It is created with ``os.open(..., O_CREAT | O_EXCL)``, so two processes cannot both
create it. A process that holds it may take it again (every store of one analysis shares its
folder); it is removed when the last holder releases it, and at interpreter exit.

A lock whose owner is gone (its pid is not alive on this host, or the pid now belongs to a process
started later) is stale: it is taken over with a :class:`~latentprobe.errors.SweepLockWarning`.
Takeovers are serialised by a second file created with ``O_EXCL``, so two processes that find the
same stale lock cannot both take it. A lock written from another host cannot be checked and is
never taken over. The lock is between processes: threads of one process share it, and one store
must not be written from two threads at once.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import socket
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from latentprobe.errors import SweepLockedError, SweepLockWarning

__all__ = ["LOCK_NAME", "acquire", "release", "held", "read_owner"]

#: Name of the lock file inside a sweep folder.
LOCK_NAME = ".sweep.lock"
_YOUNG_S = 10.0  # an unreadable lock younger than this is being written by its owner
_GUARD_STALE_S = 30.0


@dataclass
class _Held:
    pid: int
    token: str
    count: int
    generation: int
    folder: Path
    name: str


_LOCK = threading.RLock()
_HELD: dict[str, _Held] = {}
_GENERATION = [0]


def _key(folder: Path, name: str = LOCK_NAME) -> str:
    return os.path.join(os.path.realpath(folder), name)


def _proc_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    except OSError:
        return False
    return True


def read_owner(path: Path) -> dict[str, Any] | None:
    """The lock file's owner record, or ``None`` if it is missing, empty or not JSON.

    Parameters
    ----------
    path : Path
        The lock file.

    Returns
    -------
    dict[str, Any] or None
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _describe(owner: dict[str, Any] | None) -> str:
    if owner is None:
        return "an unknown process (the lock file is unreadable)"
    return (f"pid {owner.get('pid')} on host {owner.get('host')!r}, started {owner.get('started')}"
            + (f" ({owner.get('argv')})" if owner.get("argv") else ""))


def _stale_reason(path: Path, owner: dict[str, Any] | None) -> str | None:
    """Why the lock at ``path`` is stale, or ``None`` if its owner may still be writing."""
    if owner is None:
        try:
            age = time.time() - path.stat().st_mtime
        except OSError:
            return "it vanished"
        return f"it is unreadable and {age:.0f} s old" if age > _YOUNG_S else None
    if owner.get("host") != socket.gethostname():
        return None
    try:
        pid = int(owner.get("pid"))
    except (TypeError, ValueError):
        return "it names no valid pid"
    if pid == os.getpid():
        return "it names this process, which does not hold it"
    if not _alive(pid):
        return f"process {pid} is not running"
    start = owner.get("proc_start")
    if start is not None and _proc_start(pid) not in (None, start):
        return f"pid {pid} now belongs to another process"
    return None


def _create(path: Path, extra: dict[str, Any] | None = None) -> str:
    """Create the lock file exclusively; return its token. Raises FileExistsError if it exists."""
    token = secrets.token_hex(8)
    record = {**(extra or {}), "pid": os.getpid(), "host": socket.gethostname(), "proc_start": _proc_start(os.getpid()),
              "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "token": token,
              "argv": " ".join(sys.argv[:3])[:200]}
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    try:
        os.write(fd, json.dumps(record).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return token


def _refused(folder: Path, path: Path, owner: dict[str, Any] | None, extra: str = "",
             what: str = "sweep folder") -> SweepLockedError:
    return SweepLockedError(
        f"{what} {folder} is being written by {_describe(owner)}{extra}; only one process may write "
        f"to a {what} at a time. Wait for it to finish, use another out_dir, or, if that process is "
        f"gone, delete {path}.")


def _take_over(folder: Path, path: Path, owner: dict[str, Any] | None, reason: str, what: str,
               extra: dict[str, Any] | None = None) -> str:
    guard = path.with_name(path.name + ".takeover")
    try:
        os.close(os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        try:
            old = time.time() - guard.stat().st_mtime > _GUARD_STALE_S
        except OSError:
            old = False
        if old:
            guard.unlink(missing_ok=True)
        raise _refused(folder, path, owner, " (another process is taking over its stale lock)", what) from None
    try:
        if read_owner(path) != owner:  # changed since we looked: someone else took it
            current = read_owner(path)
            if path.exists():
                raise _refused(folder, path, current, what=what)
        else:
            path.unlink(missing_ok=True)
        try:
            token = _create(path, extra)
        except FileExistsError:
            raise _refused(folder, path, read_owner(path), what=what) from None
    finally:
        guard.unlink(missing_ok=True)
    warnings.warn(f"took over the stale writer lock of {what} {folder} held by {_describe(owner)}: "
                  f"{reason}.", SweepLockWarning, stacklevel=4)
    return token


def acquire(folder: str | os.PathLike, *, name: str = LOCK_NAME, what: str = "sweep folder",
            extra: dict[str, Any] | None = None) -> int:
    """Take the writer lock of ``folder`` (again, if this process holds it).

    Parameters
    ----------
    folder : str | os.PathLike
        The sweep's folder.
    name : str
        The lock file's name inside ``folder`` (locks of different names are independent).
    what : str
        What the folder is, for messages (``"sweep folder"``, ``"study folder"``).
    extra : dict, optional
        More fields of the owner's record (a study's worker group: ``group``, ``world_size``).

    Returns
    -------
    int
        The hold's generation: a number that changes each time this process takes the lock afresh,
        so that a store can tell whether another process may have written since it last read.

    Raises
    ------
    SweepLockedError
        If another live process holds it.
    """
    folder = Path(folder)
    key = _key(folder, name)
    with _LOCK:
        h = _HELD.get(key)
        if h is not None and h.pid == os.getpid():
            h.count += 1
            return h.generation
        _HELD.pop(key, None)  # inherited through fork: the parent's, not ours
        path = folder / name
        try:
            token = _create(path, extra)
        except FileExistsError:
            owner = read_owner(path)
            reason = _stale_reason(path, owner)
            if reason is None:
                raise _refused(folder, path, owner, what=what) from None
            token = _take_over(folder, path, owner, reason, what, extra)
        _GENERATION[0] += 1
        _HELD[key] = _Held(pid=os.getpid(), token=token, count=1, generation=_GENERATION[0],
                             folder=Path(os.path.realpath(folder)), name=name)
        return _GENERATION[0]


def release(folder: str | os.PathLike, *, all_holds: bool = False, name: str = LOCK_NAME) -> None:
    """Give back one hold of ``folder``'s lock (every hold with ``all_holds``); the file goes with the last.

    Parameters
    ----------
    folder : str | os.PathLike
        The sweep's folder.
    all_holds : bool
        Release every hold of this process, not one.
    name : str
        The lock file's name inside ``folder``.
    """
    folder = Path(folder)
    key = _key(folder, name)
    with _LOCK:
        h = _HELD.get(key)
        if h is None or h.pid != os.getpid():
            return
        h.count = 0 if all_holds else h.count - 1
        if h.count > 0:
            return
        del _HELD[key]
        path = h.folder / name
        owner = read_owner(path)
        if owner is not None and owner.get("token") == h.token:
            try:
                path.unlink(missing_ok=True)
            except OSError:  # left behind: the next writer finds this pid gone and takes it over
                pass


def held(folder: str | os.PathLike, *, name: str = LOCK_NAME) -> bool:
    """Whether this process holds ``folder``'s lock.

    Parameters
    ----------
    folder : str | os.PathLike
        The sweep's folder.
    name : str
        The lock file's name inside ``folder``.

    Returns
    -------
    bool
    """
    with _LOCK:
        h = _HELD.get(_key(Path(folder), name))
        return h is not None and h.pid == os.getpid()


@atexit.register
def _release_all() -> None:
    with _LOCK:
        for h in list(_HELD.values()):
            release(h.folder, all_holds=True, name=h.name)
