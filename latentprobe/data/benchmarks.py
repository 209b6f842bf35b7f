"""Folder-and-file benchmarks: V* Bench, MME-RealWorld-Lite, TableVQA-Bench and Mirage's VSP spatial planning.

Each loader reads the benchmark in the layout its authors publish (cited in each docstring) and
returns :class:`~latentprobe.data.records.Example` records with lazy images.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from latentprobe.data.images import ImageRef, image_from_file
from latentprobe.data.records import (LETTERS, Example, cell, check_unique, lettered_options, read_json, read_jsonl,
                                      scalars)
from latentprobe.data.vlmeval import image_cell, read_table
from latentprobe.errors import DataError
from latentprobe.seeding import numpy_rng

__all__ = ["load_mme_realworld_lite", "load_tablevqa", "load_vsp", "load_vstar"]

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def _folder(root: str | Path, what: str) -> Path:
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"{path} is not a folder; pass the downloaded {what} folder.")
    return path


def _text(rec: dict[str, Any], key: str, where: str, *, required: bool = True) -> str | None:
    value = rec.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}, field {key!r}: expected non-empty text, got {value!r}.")
    return value


def load_vstar(root: str | Path, *, categories: Sequence[str] = ("direct_attributes", "relative_position"),
               shuffle_options: bool = False, seed: int = 0, verify_images: bool = True) -> list[Example]:
    """Read V* Bench in the ``craigwu/vstar_bench`` layout.

    Layout (verified against github.com/penghao-wu/vstar, ``vstar_bench_eval.py`` at commit
    7539bcc, and the dataset's file list, huggingface.co/datasets/craigwu/vstar_bench at d9ae62c):
    folders ``direct_attributes/`` and ``relative_position/``; each image file (any file that is
    not ``.json``) has a JSON file of the same stem holding ``question`` and ``options`` (option
    texts), plus ``target_object`` and ``bbox``. The *first* option is the correct one (the
    evaluation scores ``option_chosen == 0``), so :attr:`Example.gold` is ``"A"`` unless
    ``shuffle_options`` permutes the options (seeded per example with
    :func:`latentprobe.seeding.numpy_rng`), which moves the gold letter with them. The
    ``test_questions.jsonl`` file at the dataset's root (a later addition with prompts already
    rendered) is not read: its fields could not be checked against the authors' code.

    Parameters
    ----------
    root : path
        The ``vstar_bench`` folder.
    categories : sequence of str
        Sub-folders to read (each becomes :attr:`Example.category`).
    shuffle_options : bool
        Permute each example's options (deterministic for ``seed``); default keeps the stored
        order (gold ``"A"``).
    seed : int
        Seed of the permutation.
    verify_images : bool
        Check every image's header with PIL at load.

    Returns
    -------
    list of Example
        Ids ``vstar/<category>/<image stem>``; ``attributes`` keep ``target_object``, ``bbox`` and
        the stored ``correct_option`` text.

    Raises
    ------
    DataError
        A missing folder or JSON file, bad JSON, a question or options missing; the message names
        the file and field.
    """
    base = _folder(root, "V* Bench (craigwu/vstar_bench)")
    out: list[Example] = []
    for cat in categories:
        folder = base / cat
        if not folder.is_dir():
            raise DataError(f"{base}: no {cat!r} folder; V* Bench has direct_attributes/ and relative_position/ "
                            "(pass categories= to read others).")
        for img in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() != ".json"
                          and not p.name.startswith(".")):
            ann_path = img.with_suffix(".json")
            where = f"{ann_path}"
            if not ann_path.is_file():
                raise DataError(f"{img}: no annotation file {ann_path.name} next to the image; V* pairs each image "
                                "with a same-named .json.")
            ann = read_json(ann_path)
            if not isinstance(ann, dict):
                raise DataError(f"{where}: expected a JSON object, got {type(ann).__name__}.")
            question = _text(ann, "question", where) or ""
            options = ann.get("options")
            if not isinstance(options, list) or len(options) < 2 or not all(isinstance(o, str) for o in options):
                raise DataError(f"{where}, field 'options': expected a list of at least two option texts, "
                                f"got {options!r}.")
            example_id = f"vstar/{cat}/{img.stem}"
            order = list(range(len(options)))
            if shuffle_options:
                order = [int(j) for j in numpy_rng(seed, "vstar-options", example_id).permutation(len(options))]
            ref = image_from_file(base, str(img.relative_to(base)), f"{img}, field 'image'", verify=verify_images)
            attrs = scalars(ann, skip=("question", "options"))
            attrs["correct_option"] = options[0]
            out.append(Example(example_id=example_id, question=question, gold=LETTERS[order.index(0)],
                               images=(ref,), options=tuple(options[j] for j in order), category=cat,
                               source="vstar", attributes=attrs))
    check_unique(out, str(base))
    return out


def _mme_json(base: Path, file: str | None) -> Path:
    if file is not None:
        return base / file
    for cand in ("MME-RealWorld-Lite.json", "data/MME-RealWorld-Lite.json"):
        if (base / cand).is_file():
            return base / cand
    found = sorted(base.glob("*.json"))
    if len(found) == 1:
        return found[0]
    raise DataError(f"{base}: cannot tell which JSON file holds the questions ({[p.name for p in found]}); pass "
                    "file= (e.g. 'MME-RealWorld-Lite.json').")


def load_mme_realworld_lite(root: str | Path, *, file: str | None = None, image_dir: str | None = None,
                            verify_images: bool = True) -> list[Example]:
    """Read MME-RealWorld-Lite from its unpacked ``data.zip`` (``yifanzhang114/MME-RealWorld-Lite``).

    Layout: a JSON list of questions in the full benchmark's format, each with ``Question_id``,
    ``Image`` (a file name), ``Text``, ``Question Type``, ``Answer choices`` (``"(A) text"``
    strings), ``Ground truth`` (a letter), ``Category``, ``Subtask`` and ``Task`` (fields as read
    by github.com/yfzhang114/MME-RealWorld, ``evaluation/model_vqa_mme_real_world.py`` at 9caa8b8;
    the Lite card, huggingface.co/datasets/yifanzhang114/MME-RealWorld-Lite, says its ``data.zip``
    holds the images and question JSON "with the question format identical to the full split").
    Not verified: the exact folder the images unpack to; the loader looks for ``Image`` under
    ``image_dir`` if given, else under the root, ``imgs/`` and ``data/imgs/``, in that order.
    The lmms-eval parquet variant and VLMEvalKit's ``MME-RealWorld-Lite.tsv`` load with
    ``vlmevalkit-tsv``.

    ``category`` is the ``Category`` field (the fine task, e.g. ``"book_map_poster"``);
    ``attributes`` keep ``subtask``, ``task`` and ``question_type``. Ids are
    ``mme-realworld-lite/<Question_id>``.

    Parameters
    ----------
    root : str | Path
        The unpacked dataset folder.
    file : str | None
        The question JSON (default: found under ``root``).
    image_dir : str | None
        The image folder (default: searched as above).
    verify_images : bool
        Open every image's header now (a damaged file fails at load time, naming it).

    Returns
    -------
    list[Example]

    Raises
    ------
    DataError
        Bad JSON, a missing field, an option without its ``(A)`` letter or out of order, a gold
        letter that is not an option, an image that is not found; the message names file, row and
        field.
    """
    base = _folder(root, "MME-RealWorld-Lite")
    path = _mme_json(base, file)
    data = read_json(path)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of questions, got {type(data).__name__}.")
    dirs = [image_dir] if image_dir is not None else ["", "imgs", "data/imgs"]
    out: list[Example] = []
    for i, rec in enumerate(data):
        where = f"{path}, row {i}"
        if not isinstance(rec, dict):
            raise DataError(f"{where}: a question must be a JSON object, got {type(rec).__name__}.")
        qid = _text(rec, "Question_id", where) or ""
        where = f"{path}, row {i} (Question_id {qid})"
        question = _text(rec, "Text", where) or ""
        image = _text(rec, "Image", where) or ""
        choices = rec.get("Answer choices")
        if not isinstance(choices, list) or not choices or not all(isinstance(c, str) for c in choices):
            raise DataError(f"{where}, field 'Answer choices': expected a list of '(A) text' strings, got {choices!r}.")
        options = lettered_options(choices, f"{where}, field 'Answer choices'")
        gold = cell(rec.get("Ground truth"))
        if gold is None or gold.strip() not in LETTERS[: len(options)]:
            raise DataError(f"{where}, field 'Ground truth': {gold!r} is not one of the option letters "
                            f"{list(LETTERS[: len(options)])}.")
        rel = next((f"{d}/{image}" if d else image for d in dirs if (base / d / image).is_file()), None)
        if rel is None:
            raise DataError(f"{where}, field 'Image': {image!r} is not under {base} (looked in "
                            f"{[str(base / d) for d in dirs]}); pass image_dir= (the folder data.zip unpacked to).")
        ref = image_from_file(base, rel, f"{where}, field 'Image'", verify=verify_images)
        out.append(Example(example_id=f"mme-realworld-lite/{qid}", question=question, gold=gold.strip(),
                           images=(ref,), options=tuple(options), category=cell(rec.get("Category")),
                           source="mme-realworld-lite",
                           attributes={"subtask": cell(rec.get("Subtask")), "task": cell(rec.get("Task")),
                                       "question_type": cell(rec.get("Question Type")), "native_id": qid}))
    check_unique(out, str(path))
    return out


TABLEVQA_SUBSETS: tuple[str, ...] = ("vwtq", "vwtq_syn", "vtabfact", "fintabnetqa")


def load_tablevqa(root: str | Path, *, subsets: Sequence[str] = TABLEVQA_SUBSETS, tables: bool = True,
                  verify_images: bool = True) -> list[Example]:
    """Read TableVQA-Bench (``terryoo/TableVQA-Bench``): one parquet file per subset.

    Layout (dataset card huggingface.co/datasets/terryoo/TableVQA-Bench, README ``dataset_info`` at
    17e291a, and its ``data/`` listing): ``data/<subset>-00000-of-00001-<hash>.parquet`` for the
    subsets ``vwtq`` (750 rows), ``vwtq_syn``, ``vtabfact``, ``fintabnetqa`` (250 each), with
    columns ``qa_id``, ``image`` (a Hugging Face image struct: bytes and path), ``question``,
    ``text_markdown_table``, ``text_html_table`` and ``gt`` (the answer text). Files may also lie
    directly in ``root``.

    :attr:`Example.category` is the subset, gold is ``gt`` (free text: no options), ids are
    ``tablevqa/<subset>/<qa_id>``; with ``tables=True`` the two table renderings stay in
    ``attributes`` (for text-only baselines).

    Parameters
    ----------
    root : str | Path
        The dataset folder (or its ``data`` folder).
    subsets : Sequence[str]
        Which subsets.
    tables : bool
        Keep the tables' text renderings in ``attributes``.
    verify_images : bool
        Open every image's header now (a damaged file fails at load time, naming it).

    Returns
    -------
    list[Example]

    Raises
    ------
    DataError
        A subset file that is missing or duplicated, a missing column, an empty question or gold, an
        image struct without bytes; the message names file, row and field.
    """
    base = _folder(root, "TableVQA-Bench")
    out: list[Example] = []
    for subset in subsets:
        found = sorted(base.glob(f"data/{subset}-*.parquet")) + sorted(base.glob(f"{subset}-*.parquet"))
        if len(found) != 1:
            raise DataError(f"{base}: expected one {subset}-*.parquet file (under data/ or the root), found "
                            f"{[str(p) for p in found]}; subsets are {list(TABLEVQA_SUBSETS)}.")
        path = found[0]
        columns, rows = read_table(path)
        missing = [c for c in ("qa_id", "image", "question", "gt") if c not in columns]
        if missing:
            raise DataError(f"{path}, header row: missing column(s) {missing} (columns: {columns}).")
        for i, r in enumerate(rows):
            qa_id = cell(r.get("qa_id"))
            where = f"{path}, row {i} (qa_id {qa_id})"
            if qa_id is None:
                raise DataError(f"{path}, row {i}, field 'qa_id': empty.")
            for key in ("question", "gt"):
                if cell(r.get(key)) is None:
                    raise DataError(f"{where}, field {key!r}: empty.")
            refs = image_cell(r.get("image"), f"{where}, field 'image'", verify_images)
            if not refs:
                raise DataError(f"{where}, field 'image': expected an image struct (bytes, path), got "
                                f"{type(r.get('image')).__name__}.")
            attrs: dict[str, Any] = {"subset": subset, "native_id": qa_id}
            if tables:
                attrs.update({k: cell(r.get(k)) for k in ("text_markdown_table", "text_html_table") if k in columns})
            out.append(Example(example_id=f"tablevqa/{subset}/{qa_id}", question=cell(r["question"]) or "",
                               gold=cell(r["gt"]), images=tuple(refs), category=subset, source="tablevqa",
                               attributes=attrs))
    check_unique(out, str(base))
    return out


_MIRAGE_PREFIX = "data/vsp_spatial_planning/"
_LEVEL = re.compile(r"level_?(\d+)")


def _vsp_image(base: Path, rel: str, where: str, verify: bool) -> ImageRef:
    rel = rel.strip()
    rel = rel[2:] if rel.startswith("./") else rel
    if not (base / rel).is_file() and rel.startswith(_MIRAGE_PREFIX):
        rel = rel[len(_MIRAGE_PREFIX):]  # paths are written relative to Mirage's repository root
    return image_from_file(base, rel, where, verify=verify)


def load_vsp(root: str | Path, *, file: str = "test_direct.jsonl", verify_images: bool = True) -> list[Example]:
    """Read the VSP spatial-planning split as Mirage ships it (``data/vsp_spatial_planning``).

    Layout (verified against github.com/UMass-Embodied-AGI/Mirage at commit 53f26de: README,
    ``src/test.py``, ``src/task.py`` and the archive ``data/vsp_spatial_planning/
    vsp_spatial_planning_test.tar.gz``): unpacking gives ``test_direct.jsonl`` and
    ``imgs_test/level<k>/img/<map_id>.png`` (k = 3..6, 100 maps each); each line has
    ``text_input`` (the full instruction, with an ``<image>`` marker where the map goes),
    ``image_input`` (``./data/vsp_spatial_planning/imgs_test/...``, relative to Mirage's
    repository root), ``map_id`` and ``map_desc`` (the grid). The training file
    (``train_direct.jsonl``) adds ``image_output`` and ``text_output``.

    ``root`` is the ``vsp_spatial_planning`` folder (or Mirage's repository root with
    ``file="data/vsp_spatial_planning/test_direct.jsonl"``). There is no stored answer: a plan is
    judged by simulating it on ``map_desc`` (Mirage's ``simulate_vsp``), so :attr:`Example.gold`
    is ``None`` and ``map_desc`` is kept in ``attributes``. ``category`` is the level
    (``"level3"``), ids are ``vsp/level3/<map_id>``. The question is ``text_input`` verbatim.

    Parameters
    ----------
    root : str | Path
        The ``vsp_spatial_planning`` folder (or Mirage's repository root, with ``file``).
    file : str
        The JSON-lines file, relative to ``root``.
    verify_images : bool
        Open every image's header now (a damaged file fails at load time, naming it).

    Returns
    -------
    list[Example]

    Raises
    ------
    DataError
        Bad JSON, a missing field, an image that does not exist or lies outside ``root``; the
        message names file, line and field.
    """
    base = _folder(root, "VSP (Mirage's data/vsp_spatial_planning)")
    path = base / file
    out: list[Example] = []
    for ln, rec in read_jsonl(path):
        where = f"{path}, line {ln}"
        question = _text(rec, "text_input", where) or ""
        image = _text(rec, "image_input", where) or ""
        ref = _vsp_image(base, image, f"{where}, field 'image_input'", verify_images)
        m = _LEVEL.search(image)
        level = f"level{m.group(1)}" if m else None
        map_id = cell(rec.get("map_id"))
        if "map_desc" not in rec:
            raise DataError(f"{where}, field 'map_desc': missing; the plan cannot be checked without the map.")
        native = f"{level}/{map_id}" if level and map_id is not None else str(ln)
        attrs = scalars(rec, skip=("text_input", "image_input"))
        attrs["native_id"] = native
        out.append(Example(example_id=f"vsp/{native}", question=question, gold=None, images=(ref,),
                           category=level, source="vsp", attributes=attrs))
    check_unique(out, str(path))
    return out
