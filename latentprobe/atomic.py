"""The one atomic writer: a temporary file in the target's folder, fsync, then ``os.replace``.

A reader never sees a half-written file: it sees the old file or the new one. Used by resumable
sweeps, traces and reports.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

__all__ = ["atomic_write", "atomic_write_text"]


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], write: Callable[[Any], None], *, binary: bool,
                 mode: int | None = None) -> Path:
    """Write ``path`` through ``write(fileobj)`` into a temporary file beside it, then rename it.

    ``mode`` sets the file's permission bits (temporary files are created ``0o600``). On any
    error the temporary file is removed and the old ``path`` is left as it was; an operating-system
    error (permissions, a read-only or full disk) passes through with ``path`` as its ``filename``
    (a write or fsync error carries none of its own).

    Parameters
    ----------
    path : str | os.PathLike[str]
        The file to write.
    write : Callable[[Any], None]
        Writes the content to the open file object.
    binary : bool
        Open the temporary file in binary mode.
    mode : int | None
        Permission bits of the file.

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        if err.filename is None and err.errno:
            raise _named(err, path) from err
        raise
    try:
        text_args = {} if binary else {"newline": "", "encoding": "utf-8"}
        with os.fdopen(fd, "wb" if binary else "w", **text_args) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(err, OSError) and err.filename is None and err.errno:  # write / fsync errors carry no path
            raise _named(err, path) from err
        raise
    _fsync_dir(path.parent)
    return path


def _named(err: OSError, path: Path) -> OSError:
    """``err`` (which names no file) again, with the file being written as its ``filename``."""
    return OSError(err.errno, err.strerror or os.strerror(err.errno), str(path))  # the subclass of the errno


def atomic_write_text(path: str | os.PathLike[str], text: str, *, mode: int | None = 0o644) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically.

    Parameters
    ----------
    path : str | os.PathLike[str]
        The file to write.
    text : str
        Its content.
    mode : int | None
        Permission bits of the file.

    Returns
    -------
    Path
        The written file.
    """
    return atomic_write(path, lambda f: f.write(text), binary=False, mode=mode)
