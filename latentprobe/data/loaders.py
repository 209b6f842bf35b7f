"""JSONL + image folder, and ``datasets`` saved with ``save_to_disk``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from latentprobe.data.images import inside_root
from latentprobe.data.records import read_jsonl
from latentprobe.errors import DataError
from latentprobe.perturbations import InputSet
from latentprobe.validate import positive_int

__all__ = ["DataError", "load_jsonl", "load_hf_disk", "load_image"]



def load_image(path: str | Path, *, size: tuple[int, int] | int | None = None) -> np.ndarray:
    """Read an image file as an ``HxWx3`` uint8 array (optionally resized to ``size``, (H, W)).

    Parameters
    ----------
    path : str | Path
        An image file.
    size : tuple[int, int] | int | None
        Resize to this size (``None``: keep).

    Returns
    -------
    np.ndarray
        uint8 ``H x W x 3``.
    """
    from PIL import Image

    p = Path(path)
    if not p.is_file():
        raise DataError(f"image file {p} does not exist.")
    if size is not None:
        sizes = (size,) if isinstance(size, int) else tuple(size) if isinstance(size, (tuple, list)) else (size,)
        if len(sizes) not in (1, 2) or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in sizes):
            raise DataError(f"image size={size!r} for {p}: use a positive int or an (H, W) pair of positive ints.")
    try:
        with Image.open(p) as im:
            im = im.convert("RGB")
            if size is not None:
                h, w = (size, size) if isinstance(size, int) else size
                im = im.resize((w, h), Image.Resampling.BICUBIC)
            return np.asarray(im, dtype=np.uint8).copy()
    except (OSError, SyntaxError, ValueError) as err:  # PIL: truncated or unreadable file (no file name in it)
        raise DataError(f"image file {p} cannot be read ({err}); the file is truncated, damaged or not an image: "
                        "replace it.") from None


def _check_limit(limit: Any, source: str) -> None:
    positive_int(limit, "limit", allow_none=True, where=source, hint="None reads every record", error=DataError)


def _build(records: Sequence[dict[str, Any]], *, get_image: Callable[[dict[str, Any], int], Any],
           question_key: str, answer_key: str | None, id_key: str | None, prompt_template: str,
           source: str) -> InputSet:
    if not records:
        raise DataError(f"{source}: no examples were read (the file or dataset is empty); give a file "
                        "with at least one record.")
    ids, prompts, images, gold, meta = [], [], [], [], []
    for i, rec in enumerate(records):
        if question_key not in rec:
            raise DataError(f"{source}: record {i} has no {question_key!r} field (fields: {sorted(rec)}); "
                            "pass question_key=.")
        q = str(rec[question_key])
        ids.append(str(rec[id_key]) if id_key and id_key in rec else str(i))
        try:
            prompts.append(prompt_template.format(question=q, **{k: v for k, v in rec.items() if k != "question"}))
        except KeyError as err:
            raise DataError(f"{source}: prompt_template names {err} which record {i} lacks.") from None
        images.append(get_image(rec, i))
        gold.append(None if answer_key is None or rec.get(answer_key) is None else str(rec[answer_key]))
        meta.append({k: v for k, v in rec.items() if isinstance(v, (str, int, float, bool)) or v is None})
    has_images = any(im is not None for im in images)
    has_gold = any(g is not None for g in gold)
    return InputSet(example_ids=tuple(ids), prompts=tuple(prompts), images=tuple(images) if has_images else None,
                    gold=tuple(gold) if has_gold else None, meta=tuple(meta))


def load_jsonl(path: str | Path, *, image_root: str | Path | None = None, question_key: str = "question",
               image_key: str | None = "image", answer_key: str | None = "answer", id_key: str | None = "id",
               prompt_template: str = "<|vision_start|><|image_pad|><|vision_end|>{question}",
               image_size: tuple[int, int] | int | None = None, limit: int | None = None) -> InputSet:
    """Read one example per JSON line; ``image_key`` names a file under ``image_root``.

    ``prompt_template`` is formatted with ``question`` and the record's other fields; the default
    puts one image token before the question, as Qwen2.5-VL chat prompts do. Use
    ``image_key=None`` for text-only data.

    Parameters
    ----------
    path : str | Path
        The ``.jsonl`` file.
    image_root : str | Path | None
        Folder the image paths are relative to (default the file's).
    question_key : str
        Field holding the question.
    image_key : str | None
        Field holding the image (``None``: text only).
    answer_key : str | None
        Field holding the gold answer (``None``: none).
    id_key : str | None
        Field holding the id (``None``: the row's position).
    prompt_template : str
        Formatted with ``question`` and the record's other fields.
    image_size : tuple[int, int] | int | None
        Resize every image to this size (``None``: keep).
    limit : int | None
        Read at most this many records.

    Returns
    -------
    InputSet
    """
    p = Path(path)
    _check_limit(limit, str(p))
    if not p.is_file():
        raise DataError(f"{p} does not exist.")
    root = Path(image_root) if image_root is not None else p.parent
    read = read_jsonl(p)[:limit]
    records = [rec for _, rec in read]
    lines = [ln for ln, _ in read]

    def get_image(rec: dict[str, Any], i: int) -> Any:
        if image_key is None or rec.get(image_key) is None:
            return None
        where = f"{p}, row {i} (line {lines[i]}), field {image_key!r}"
        return load_image(inside_root(root, str(rec[image_key]), where, root_name="image_root"), size=image_size)

    return _build(records, get_image=get_image, question_key=question_key, answer_key=answer_key, id_key=id_key,
                  prompt_template=prompt_template, source=str(p))


def load_hf_disk(path: str | Path, *, split: str | None = None, question_key: str = "question",
                 image_key: str | None = "image", answer_key: str | None = "answer", id_key: str | None = "id",
                 prompt_template: str = "<|vision_start|><|image_pad|><|vision_end|>{question}",
                 image_size: tuple[int, int] | int | None = None, limit: int | None = None) -> InputSet:
    """Read a dataset written by ``datasets``' ``save_to_disk`` (needs the ``datasets`` package).

    Image columns may hold PIL images or arrays.

    Parameters
    ----------
    path : str | Path
        The folder ``save_to_disk`` wrote.
    split : str | None
        The split, when the folder holds several.
    question_key : str
        Field holding the question.
    image_key : str | None
        Field holding the image (``None``: text only).
    answer_key : str | None
        Field holding the gold answer (``None``: none).
    id_key : str | None
        Field holding the id (``None``: the row's position).
    prompt_template : str
        Formatted with ``question`` and the record's other fields.
    image_size : tuple[int, int] | int | None
        Resize every image to this size (``None``: keep).
    limit : int | None
        Read at most this many records.

    Returns
    -------
    InputSet
    """
    try:
        import datasets
    except ImportError:
        raise DataError("load_hf_disk needs the 'datasets' package: pip install datasets.") from None
    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        if split is None:
            raise DataError(f"{path} holds splits {list(ds)}; pass split=.")
        ds = ds[split]
    n = len(ds) if limit is None else min(limit, len(ds))
    records = [ds[i] for i in range(n)]

    def get_image(rec: dict[str, Any], i: int) -> Any:
        if image_key is None or rec.get(image_key) is None:
            return None
        im = rec[image_key]
        if hasattr(im, "convert"):
            from PIL import Image

            im = im.convert("RGB")
            if image_size is not None:
                h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
                im = im.resize((w, h), Image.Resampling.BICUBIC)
            return np.asarray(im, dtype=np.uint8).copy()
        return np.asarray(im, dtype=np.uint8)

    return _build(records, get_image=get_image, question_key=question_key, answer_key=answer_key, id_key=id_key,
                  prompt_template=prompt_template, source=str(path))
