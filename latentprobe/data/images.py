"""Lazily read benchmark images: :class:`ImageRef`, checked when a benchmark is loaded, decoded on demand.

A benchmark stores its images either as files under its folder (V*, VSP, MME-RealWorld) or as
bytes inside a table (base64 text in VLMEvalKit / HR-Bench TSVs, Hugging Face image structs in
TableVQA's parquet files). Loading a benchmark only checks each image (the file exists and stays
inside the benchmark's root; the bytes decode and PIL recognises the header); pixels are read by
:meth:`ImageRef.load`, at most ``max_pixels`` of them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from latentprobe.errors import DataError
from latentprobe.validate import positive_int

__all__ = ["ImageRef", "check_max_pixels", "image_from_base64", "image_from_bytes", "image_from_file", "inside_root"]


def check_max_pixels(max_pixels: object, where: str = "max_pixels") -> None:
    """Refuse a ``max_pixels`` that is not ``None`` or a positive int.

    Parameters
    ----------
    max_pixels : object
        What was given.
    where : str
        Where it was given.
    """
    positive_int(max_pixels, "max_pixels", allow_none=True, where=where,
                 hint="e.g. 1_003_520 = 1280 * 28 * 28; None: full resolution", error=DataError)


@dataclass(frozen=True)
class ImageRef:
    """One image of an example: a file under the benchmark's root, or the image file's bytes.

    Exactly one of ``path`` and ``data`` is set. ``where`` names the source (file, row, field) for
    error messages. Nothing is decoded until :meth:`load`.

    Parameters
    ----------
    path : Path | None
        The image file (under the benchmark's root), or ``None``.
    data : bytes | None
        The image file's bytes, or ``None``.
    where : str
        The source (file, row, field), for messages.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO(); Image.new("RGB", (400, 100), "red").save(buf, format="PNG")
    >>> ref = ImageRef(path=None, data=buf.getvalue(), where="demo, row 0, field 'image'")
    >>> ref.load().shape
    (100, 400, 3)
    >>> ref.load(max_pixels=10_000).shape      # aspect kept, H * W <= 10_000
    (50, 200, 3)
    """

    path: Path | None
    data: bytes | None
    where: str

    def __post_init__(self) -> None:
        if (self.path is None) == (self.data is None):
            raise DataError(f"{self.where}: an ImageRef holds either a path or the image's bytes, not "
                            f"{'both' if self.path is not None else 'neither'}.")
        if self.path is not None:
            object.__setattr__(self, "path", Path(self.path))
        if self.data is not None and not isinstance(self.data, (bytes, bytearray)):
            raise DataError(f"{self.where}: ImageRef.data must be bytes, got {type(self.data).__name__}.")
        if self.data is not None:
            object.__setattr__(self, "data", bytes(self.data))

    def __repr__(self) -> str:  # never print megabytes of image bytes
        what = f"path={str(self.path)!r}" if self.path is not None else f"data=<{len(self.data or b'')} bytes>"
        return f"ImageRef({what}, where={self.where!r})"

    @property
    def key(self) -> str:
        """A stable identity of the image: its path, or a digest of its bytes (equal images share it)."""
        if self.path is not None:
            return str(self.path)
        return "sha1:" + hashlib.sha1(self.data or b"").hexdigest()[:16]

    def load(self, *, max_pixels: int | None = None) -> np.ndarray:
        """The image as an ``H x W x 3`` uint8 array (RGB).

        Parameters
        ----------
        max_pixels : int, optional
            Downscale (bicubic, aspect ratio kept) so that ``H * W <= max_pixels``; smaller images
            are returned as they are. ``None`` keeps the full resolution.

        Returns
        -------
        numpy.ndarray
            ``H x W x 3`` uint8.

        Raises
        ------
        DataError
            The file is gone or unreadable, the bytes are not an image, or ``max_pixels`` is not a
            positive int; the message names :attr:`where`.
        """
        from PIL import Image

        check_max_pixels(max_pixels, self.where)
        try:
            src: Any = self.path if self.path is not None else io.BytesIO(self.data or b"")
            with Image.open(src) as im:
                im = im.convert("RGB")
                w, h = im.size
                if max_pixels is not None and w * h > max_pixels:
                    scale = math.sqrt(max_pixels / (w * h))
                    nw, nh = max(1, int(w * scale)), max(1, int(h * scale))
                    while nw * nh > max_pixels:  # rounding can leave one row too many
                        nw, nh = (nw - 1, nh) if nw >= nh and nw > 1 else (nw, max(1, nh - 1))
                    im = im.resize((nw, nh), Image.Resampling.BICUBIC)
                return np.asarray(im, dtype=np.uint8).copy()
        except FileNotFoundError:
            raise DataError(f"{self.where}: image file {str(self.path)!r} no longer exists; restore it or reload "
                            "the benchmark.") from None
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
            raise DataError(f"{self.where}: the image cannot be decoded ({err}); the file or bytes are damaged: "
                            "replace them.") from None


def _verify(src: Any, where: str, what: str) -> None:
    from PIL import Image

    try:
        with Image.open(src) as im:
            im.verify()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"{where}: {what} is not a readable image ({err}); replace it with a PNG or JPEG "
                        "file.") from None


def inside_root(root: Path, rel: str, where: str, *, root_name: str = "the benchmark root") -> Path:
    """``root / rel``, refused when ``rel`` is absolute or climbs out of ``root`` (``../``, symlinks);
    ``root_name`` is how the message calls the root (the argument the user passed it as).

    Parameters
    ----------
    root : Path
        The root folder.
    rel : str
        A relative path.
    where : str
        The source, for messages.
    root_name : str
        How the root is named in messages.

    Returns
    -------
    Path
    """
    cand = Path(rel)
    target = (root / cand).resolve()
    if cand.is_absolute() or not target.is_relative_to(root.resolve()):
        raise DataError(f"{where}: image path {rel!r} points outside {root_name} {str(root)!r}; give a path "
                        f"relative to {root_name}, without '..' (or pass a wider {root_name}).")
    return root / cand


def image_from_file(root: Path, rel: str, where: str, *, verify: bool = True) -> ImageRef:
    """An :class:`ImageRef` for the file ``rel`` under ``root``, checked (inside root, exists, readable header).

    Parameters
    ----------
    root : Path
        The benchmark's root.
    rel : str
        The file's path relative to it.
    where : str
        The source, for messages.
    verify : bool
        Check that PIL can read the image's header.

    Returns
    -------
    ImageRef
    """
    if not isinstance(rel, str) or not rel.strip():
        raise DataError(f"{where}: the image path is empty or not text ({rel!r}); give a file name relative to "
                        f"{str(root)!r}.")
    path = inside_root(root, rel.strip(), where)
    if not path.is_file():
        raise DataError(f"{where}: image file {str(path)!r} does not exist; check the benchmark's folder layout "
                        "(see docs/howto/benchmarks.md).")
    if verify:
        _verify(path, where, f"image file {str(path)!r}")
    return ImageRef(path=path, data=None, where=where)


def image_from_bytes(data: bytes, where: str, *, verify: bool = True) -> ImageRef:
    """An :class:`ImageRef` holding an image file's bytes, checked (PIL recognises and verifies them).

    Parameters
    ----------
    data : bytes
        An image file's bytes.
    where : str
        The source, for messages.
    verify : bool
        Check that PIL can read the image.

    Returns
    -------
    ImageRef
    """
    if not data:
        raise DataError(f"{where}: the image bytes are empty; the record carries no image.")
    if verify:
        _verify(io.BytesIO(data), where, "the stored image")
    return ImageRef(path=None, data=bytes(data), where=where)


def image_from_base64(text: str, where: str, *, verify: bool = True) -> ImageRef:
    """An :class:`ImageRef` from base64 text (a ``data:image/...;base64,`` prefix is accepted).

    Parameters
    ----------
    text : str
        Base64 text of an image file.
    where : str
        The source, for messages.
    verify : bool
        Check that PIL can read the image.

    Returns
    -------
    ImageRef
    """
    s = "".join(str(text).split())  # line breaks inside the text are allowed
    if s.startswith("data:") and "," in s:
        s = s.split(",", 1)[1]
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as err:
        raise DataError(f"{where}: the image is not valid base64 ({err}); the cell is truncated or holds "
                        "something else.") from None
    return image_from_bytes(raw, where, verify=verify)
