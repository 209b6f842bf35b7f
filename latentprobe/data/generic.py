"""Your own data as :class:`Example` records: a JSONL file with an image folder, or a ``datasets`` folder.

These are the :class:`Example` counterparts of :func:`latentprobe.data.load_jsonl` and
:func:`latentprobe.data.load_hf_disk` (which build an :class:`~latentprobe.perturbations.InputSet`
directly and stay as they are).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from latentprobe.data.images import ImageRef, image_from_bytes, image_from_file
from latentprobe.data.records import LETTERS, Example, cell, check_unique, read_jsonl, scalars
from latentprobe.errors import DataError

__all__ = ["examples_from_hf_disk", "examples_from_jsonl"]


def _options(value: Any, where: str) -> tuple[str, ...] | None:
    """Options given as a list of texts or a ``{"A": text, ...}`` dict (letters from A, consecutive)."""
    if value is None:
        return None
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        keys = sorted(value)
        if keys != list(LETTERS[: len(keys)]):
            raise DataError(f"{where}: option keys {keys} are not consecutive letters from 'A'.")
        value = [value[k] for k in keys]
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) for v in value):
        raise DataError(f"{where}: options must be a list of texts or a dict letter -> text, got {value!r}.")
    return tuple(value)


def _record_example(rec: dict[str, Any], i: int, where: str, *, source: str, question_key: str,
                    answer_key: str | None, id_key: str | None, options_key: str | None, category_key: str | None,
                    images: tuple[ImageRef, ...], skip: tuple[str, ...]) -> Example:
    if question_key not in rec:
        raise DataError(f"{where}: no {question_key!r} field (fields: {sorted(rec)}); pass question_key=.")
    question = cell(rec[question_key])
    if question is None:
        raise DataError(f"{where}, field {question_key!r}: empty.")
    native = cell(rec.get(id_key)) if id_key else None
    native = native if native is not None else str(i)
    options = _options(rec.get(options_key), f"{where}, field {options_key!r}") if options_key else None
    gold = cell(rec.get(answer_key)) if answer_key else None
    attrs = scalars(rec, skip=tuple(k for k in (question_key, answer_key, options_key, category_key, *skip) if k))
    attrs["native_id"] = native
    return Example(example_id=f"{source}/{native}", question=question, gold=gold, images=images, options=options,
                   category=cell(rec.get(category_key)) if category_key else None, source=source, attributes=attrs)


def examples_from_jsonl(root: str | Path, *, image_root: str | Path | None = None, question_key: str = "question",
                        image_key: str | None = "image", answer_key: str | None = "answer", id_key: str | None = "id",
                        options_key: str | None = "options", category_key: str | None = "category",
                        verify_images: bool = True) -> list[Example]:
    """One :class:`Example` per JSON line; ``image_key`` names a file (or a list of files) under ``image_root``.

    ``root`` is the ``.jsonl`` file; ``image_root`` defaults to its folder. Options may be a list of
    texts or a ``{"A": ..., "B": ...}`` dict. Ids are ``jsonl/<id>`` (the line's position when it
    has no ``id_key``). The other plain fields go to ``attributes``.

    Parameters
    ----------
    root : str | Path
        The ``.jsonl`` file.
    image_root : str | Path | None
        Folder the image paths are relative to (default the file's).
    verify_images : bool
        Open every image's header now (a damaged file fails at load time, naming it).
    question_key : str
        Field holding the question.
    image_key : str | None
        Field holding the image (``None``: text only).
    answer_key : str | None
        Field holding the gold answer (``None``: none).
    id_key : str | None
        Field holding the id (``None``: the row's position).
    options_key : str | None
        Field holding the options (``None``: none).
    category_key : str | None
        Field holding the category (``None``: none).

    Returns
    -------
    list[Example]

    Raises
    ------
    DataError
        A missing file, bad JSON, a missing question, an image that does not exist or lies outside
        ``image_root``; the message names file, line and field.
    """
    path = Path(root).expanduser()
    img_root = Path(image_root).expanduser() if image_root is not None else path.parent
    out = []
    for i, (ln, rec) in enumerate(read_jsonl(path)):
        where = f"{path}, line {ln}"
        refs: tuple[ImageRef, ...] = ()
        if image_key is not None and rec.get(image_key) is not None:
            names = rec[image_key] if isinstance(rec[image_key], list) else [rec[image_key]]
            refs = tuple(image_from_file(img_root, n, f"{where}, field {image_key!r}", verify=verify_images)
                         for n in names)
        out.append(_record_example(rec, i, where, source="jsonl", question_key=question_key, answer_key=answer_key,
                                   id_key=id_key, options_key=options_key, category_key=category_key, images=refs,
                                   skip=(image_key,) if image_key else ()))
    check_unique(out, str(path))
    return out


def examples_from_hf_disk(root: str | Path, *, split: str | None = None, question_key: str = "question",
                          image_key: str | None = "image", answer_key: str | None = "answer", id_key: str | None = "id",
                          options_key: str | None = "options", category_key: str | None = "category",
                          verify_images: bool = True) -> list[Example]:
    """One :class:`Example` per row of a dataset written by ``datasets``' ``save_to_disk``.

    The image column (an ``Image`` feature, or a list of them) is read without decoding, so images
    stay lazy; ids are ``hf-disk/<id>`` (the row number when there is no ``id_key`` column).

    Parameters
    ----------
    root : str | Path
        The folder ``save_to_disk`` wrote.
    split : str | None
        The split, when the folder holds several.
    verify_images : bool
        Open every image's header now (a damaged file fails at load time, naming it).
    question_key : str
        Field holding the question.
    image_key : str | None
        Field holding the image (``None``: text only).
    answer_key : str | None
        Field holding the gold answer (``None``: none).
    id_key : str | None
        Field holding the id (``None``: the row's position).
    options_key : str | None
        Field holding the options (``None``: none).
    category_key : str | None
        Field holding the category (``None``: none).

    Returns
    -------
    list[Example]

    Raises
    ------
    DataError
        The ``datasets`` package is missing, the folder holds several splits and ``split`` is not
        given, a row lacks the question, an image column holds something other than images.
    """
    try:
        import datasets
    except ImportError:
        raise DataError("the 'hf-disk' benchmark needs the 'datasets' package: pip install datasets.") from None
    path = Path(root).expanduser()
    try:
        ds = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as err:
        raise DataError(f"{path}: not a dataset saved with save_to_disk ({err}).") from None
    if isinstance(ds, datasets.DatasetDict):
        if split is None or split not in ds:
            raise DataError(f"{path} holds splits {list(ds)}; pass split= (one of them).")
        ds = ds[split]
    feature = ds.features.get(image_key) if image_key else None
    if isinstance(feature, datasets.Image):
        ds = ds.cast_column(image_key, datasets.Image(decode=False))
    elif isinstance(getattr(feature, "feature", None), datasets.Image):  # a list of images (List / Sequence)
        ds = ds.cast_column(image_key, type(feature)(datasets.Image(decode=False)))
    out = []
    for i in range(len(ds)):
        rec = ds[i]
        where = f"{path}, row {i}"
        refs: list[ImageRef] = []
        value = rec.get(image_key) if image_key else None
        for j, im in enumerate(value if isinstance(value, list) else ([] if value is None else [value])):
            w = f"{where}, field {image_key!r}" + (f"[{j}]" if isinstance(value, list) else "")
            if isinstance(im, dict) and im.get("bytes"):
                refs.append(image_from_bytes(im["bytes"], w, verify=verify_images))
            elif isinstance(im, dict) and im.get("path"):
                refs.append(image_from_file(Path(im["path"]).parent, Path(im["path"]).name, w, verify=verify_images))
            else:
                raise DataError(f"{w}: expected an Image feature (bytes or path), got {type(im).__name__}; cast the "
                                "column to datasets.Image().")
        out.append(_record_example(rec, i, where, source="hf-disk", question_key=question_key, answer_key=answer_key,
                                   id_key=id_key, options_key=options_key, category_key=category_key,
                                   images=tuple(refs), skip=(image_key,) if image_key else ()))
    check_unique(out, str(path))
    return out
