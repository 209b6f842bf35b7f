"""Content fingerprints of a study's examples, so that a resumed run never mixes old and new data.

Each example the study uses gets a digest of what it is: its id, question (or prompt), options, gold answer,
category, source and attributes, and the bytes of each of its images (by their SHA-256). ``study.json`` keeps
the digests (``data.examples``, one per example id) and their combined fingerprint (``data.fingerprint``); a
resumed run digests the data again and refuses, with :class:`~latentprobe.errors.DataChangedError`, when any
example changed, was added or removed, or the examples' order changed, listing the ids. (``data.examples`` is a
list of ``[id, digest]`` pairs, in the data's order.)

Hashing an image file reads it whole. The hashes are cached by the file's resolved path, size and
modification time (``st_mtime_ns``): in memory for the process, and in the study folder's
``.image-hashes.json`` (a resumed run reads only the files that changed since). A file edited so that its
size and modification time stay the same (``touch -r``) is not read again, as with ``make`` or ``rsync``;
delete ``.image-hashes.json`` to hash every file afresh. Images held as bytes (base64 columns, parquet
structs) are hashed from the bytes each time.

Examples
--------
>>> from latentprobe.data import Example
>>> a = example_digests([Example("q/1", "What colour?", "A", options=("red", "blue"))])
>>> b = example_digests([Example("q/1", "What colour?", "B", options=("red", "blue"))])
>>> list(a) == ["q/1"] and a != b
True
>>> changed_ids(a, b)
{'changed': ['q/1'], 'added': [], 'removed': [], 'reordered': False}
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from latentprobe.errors import DataChangedError, StudyError

__all__ = ["CACHE_NAME", "ImageHashCache", "example_digests", "data_fingerprint", "changed_ids", "check_data",
           "recorded_digests"]

#: The image-hash cache's file inside a study folder.
CACHE_NAME = ".image-hashes.json"
_SHOWN = 10

_MEMO: dict[str, str] = {}  # "realpath|size|mtime_ns" -> sha256, for this process
_MEMO_LOCK = threading.Lock()


class ImageHashCache:
    """SHA-256 of image files, keyed by resolved path, size and modification time; in memory and, with ``path``,
    in a JSON file.

    Parameters
    ----------
    path : str, os.PathLike or None
        The cache file (read now if it exists and is readable; :meth:`save` writes it), or ``None`` for the
        in-memory cache only.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "a.png").write_bytes(b"123")
    >>> cache = ImageHashCache(d / CACHE_NAME)
    >>> cache.file_hash(d / "a.png") == hashlib.sha256(b"123").hexdigest()
    True
    >>> cache.save(); (d / CACHE_NAME).is_file()
    True
    """

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = None if path is None else Path(path)
        self._entries: dict[str, str] = {}
        self._dirty = False
        if self.path is not None:
            try:
                loaded = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                loaded = {}
            if isinstance(loaded, dict):
                self._entries = {k: v for k, v in loaded.items() if isinstance(k, str) and isinstance(v, str)}

    def file_hash(self, file: str | os.PathLike) -> str:
        """The SHA-256 (hex) of ``file``'s bytes, read only when its path, size or modification time is new.

        Parameters
        ----------
        file : str or os.PathLike
            The image file.

        Returns
        -------
        str
            64 hex digits; ``"missing"`` when the file cannot be read (the loader reports it when it is used).
        """
        real = os.path.realpath(file)
        try:
            st = os.stat(real)
        except OSError:
            return "missing"
        key = f"{real}|{st.st_size}|{st.st_mtime_ns}"
        found = self._entries.get(key) or _MEMO.get(key)
        if found is None:
            h = hashlib.sha256()
            try:
                with open(real, "rb") as f:
                    for block in iter(lambda: f.read(1 << 22), b""):
                        h.update(block)
            except OSError:
                return "missing"
            found = h.hexdigest()
            with _MEMO_LOCK:
                _MEMO[key] = found
        if self._entries.get(key) != found:
            self._entries[key] = found
            self._dirty = True
        return found

    def save(self) -> None:
        """Write the cache file (when there is one and it has new entries); a failure to write is ignored (the
        cache only saves time)."""
        if self.path is None or not self._dirty:
            return
        from latentprobe.atomic import atomic_write_text

        try:
            atomic_write_text(self.path, json.dumps(self._entries, indent=0, sort_keys=True))
            self._dirty = False
        except OSError:
            pass


def _plain(value: Any) -> Any:
    """A JSON stand-in for a value ``json`` cannot write: arrays by content, objects by a repr without addresses."""
    if isinstance(value, np.ndarray):
        return _array_hash(value)
    if isinstance(value, (bytes, bytearray)):
        return "sha256:" + hashlib.sha256(bytes(value)).hexdigest()
    if isinstance(value, np.generic):
        return value.item()
    text = repr(value)
    return type(value).__name__ if " at 0x" in text else text


def _array_hash(a: Any) -> str:
    a = np.ascontiguousarray(np.asarray(a))
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return "array:" + h.hexdigest()


def _image_hash(image: Any, cache: ImageHashCache) -> Any:
    """An image's content hash: an :class:`~latentprobe.data.ImageRef`'s file or bytes, or a decoded array."""
    from latentprobe.data import ImageRef

    if isinstance(image, ImageRef):
        if image.path is not None:
            return "file:" + cache.file_hash(image.path)
        return "bytes:" + hashlib.sha256(image.data or b"").hexdigest()
    if image is None:
        return None
    if isinstance(image, (list, tuple)):
        return [_image_hash(im, cache) for im in image]
    return _array_hash(image)


def _digest(record: Mapping[str, Any]) -> str:
    text = json.dumps(record, sort_keys=True, default=_plain, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def example_digests(data: Any, *, cache: ImageHashCache | None = None) -> dict[str, str]:
    """One content digest per example, in the data's order.

    Parameters
    ----------
    data : StudyData, InputSet or sequence of Example
        A study's data (its benchmark records when it has them, else its inputs), an
        :class:`~latentprobe.perturbations.InputSet` (ids, prompts, gold answers, ``meta["options"]``,
        images), or :class:`~latentprobe.data.Example` records (ids, questions, options, gold answers,
        category, source, attributes, image bytes).
    cache : ImageHashCache, optional
        Where image files' hashes are looked up (default: this process's memory only).

    Returns
    -------
    dict
        ``{example_id: 32 hex digits}``.
    """
    from latentprobe.perturbations import InputSet

    cache = cache if cache is not None else ImageHashCache()
    if not isinstance(data, InputSet) and hasattr(data, "inputs"):  # StudyData
        data = list(data.examples) if data.examples else data.inputs
    if isinstance(data, InputSet):
        out = {}
        for i, eid in enumerate(data.example_ids):
            out[eid] = _digest({"prompt": data.prompts[i], "gold": None if data.gold is None else data.gold[i],
                                "options": data.meta[i].get("options"),
                                "images": None if data.images is None else _image_hash(data.images[i], cache)})
        return out
    return {ex.example_id: _digest({"question": ex.question, "options": ex.options, "gold": ex.gold,
                                    "category": ex.category, "source": ex.source, "attributes": ex.attributes,
                                    "images": [_image_hash(im, cache) for im in ex.images]})
            for ex in data}


def data_fingerprint(digests: Mapping[str, str]) -> str:
    """The fingerprint of a whole data set: a hash of its ids and digests in order.

    Parameters
    ----------
    digests : mapping
        :func:`example_digests`.

    Returns
    -------
    str
        ``"sha256:"`` and 32 hex digits.
    """
    return "sha256:" + hashlib.sha256(json.dumps(list(digests.items())).encode()).hexdigest()[:32]


def changed_ids(stored: Mapping[str, str], now: Mapping[str, str]) -> dict[str, Any]:
    """What differs between two sets of digests.

    Parameters
    ----------
    stored, now : mapping
        :func:`example_digests` then and now.

    Returns
    -------
    dict
        ``changed`` (ids whose content differs), ``added``, ``removed`` (lists of ids, in order) and
        ``reordered`` (the same ids in another order).
    """
    changed = [i for i in now if i in stored and stored[i] != now[i]]
    added = [i for i in now if i not in stored]
    removed = [i for i in stored if i not in now]
    reordered = not (changed or added or removed) and list(stored) != list(now)
    return {"changed": changed, "added": added, "removed": removed, "reordered": reordered}


def _ids(ids: Sequence[str]) -> str:
    shown = ", ".join(repr(i) for i in ids[:_SHOWN])
    return shown + (f" and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else "")


def check_data(stored: Mapping[str, str], now: Mapping[str, str], where: str) -> None:
    """Refuse data that differ from those a study folder was run on.

    Parameters
    ----------
    stored, now : mapping
        :func:`example_digests` recorded in the folder's ``study.json`` and computed now.
    where : str
        The study folder, for the message.

    Raises
    ------
    DataChangedError
        Any example changed, was added or removed, or the order changed; the message lists the ids.
    """
    diff = changed_ids(stored, now)
    parts = [f"example ids {k}: {_ids(diff[k])}" for k in ("changed", "added", "removed") if diff[k]]
    if diff["reordered"]:
        parts.append("the same example ids in another order")
    if parts:
        raise DataChangedError(
            f"{where}: the data differ from those this folder was run on ({'; '.join(parts)}). Its results "
            "were computed on the old data and cannot be mixed with the new: restore the data as they were, or pass "
            "--overwrite (overwrite=True) to run again on the new data, or choose a new --out folder.")


def recorded_digests(meta: Mapping[str, Any], path: str | os.PathLike) -> dict[str, str]:
    """The example digests a study folder's ``study.json`` recorded (``data.examples``, ``[id, digest]`` pairs).

    Parameters
    ----------
    meta : mapping
        The parsed ``study.json``.
    path : str or os.PathLike
        Its path, for the message.

    Returns
    -------
    dict
        ``{example_id: digest}`` in the recorded order.

    Raises
    ------
    StudyError
        The record is missing (a folder written before data were fingerprinted) or malformed.
    """
    pairs = meta.get("data", {}).get("examples") if isinstance(meta.get("data"), dict) else None
    if not (isinstance(pairs, list) and all(isinstance(p, list) and len(p) == 2 and all(isinstance(v, str) for v in p)
                                            for p in pairs)):
        raise StudyError(f"{path} records no fingerprint of its data (written by an older latentprobe, or edited), so "
                         "a resumed run cannot be checked against them; pass --overwrite to run again.")
    return {i: d for i, d in pairs}
