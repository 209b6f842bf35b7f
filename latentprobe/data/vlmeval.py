"""VLMEvalKit's benchmark tables (TSV, or the same columns in parquet) and HR-Bench 4K / 8K, which ships in it.

Layout (verified against open-compass/VLMEvalKit, ``vlmeval/dataset/image_base.py`` at commit
0507265599, ``ImageBaseDataset.__init__`` / ``dump_image``, and the column table of
``docs/zh-CN/Development.md``): one row per question with columns ``index``, ``image`` (base64
image bytes) and/or ``image_path``, ``question``, optional ``hint``, option columns ``A``, ``B``,
... (empty when unused), ``answer``, ``category``, ``l2-category``, ``split``. To save space the
``image`` cell of a row may hold another row's ``index`` instead of the image (VLMEvalKit treats a
cell of at most 64 characters as such a reference); a cell may also hold a Python list literal of
several images (``toliststr`` in ``vlmeval/smp``), and ``image_path`` likewise.

Option encodings, in the order they are tried (open-compass/VLMEvalKit
``vlmeval/dataset/image_mcq.py`` at commit 944ee120ae41110d01573abf657337b8aa34216f):

1. Letter columns ``A``, ``B``, ... (``ImageMCQDataset.build_prompt``: every letter column present
   and not NaN is an option).
2. ``multi-choice options``: MME-RealWorld's tables (``MMERealWorld.load_data``). The published
   MME-RealWorld-Lite table (``yifanzhang114/MME-RealWorld-Base64``, ``mme_realworld_lite.tsv``)
   holds a Python list literal of ``"(A) text"`` strings there, which VLMEvalKit evaluates and
   slices (``options[i][4:]``) into columns ``A``-``E``; the full MME-RealWorld table it builds
   itself holds the same items as text, ``"The choices are listed below:\n(A) ...\n(B) ..."``
   (Chinese header for MME-RealWorld-CN), beside columns ``A``-``E``. The items' ``"(A) "`` form
   is MME-RealWorld's own (github.com/yfzhang114/MME-RealWorld,
   ``evaluation/output_test_template.json`` at 1cd8d11). The other columns of the Lite table
   (``index, image, question, answer, category, l2-category``) are those VLMEvalKit reads from
   it; the file itself was not opened here.
3. ``options``: a Python list literal of bare option texts (``PuzzleVQA``, ``VisualPuzzles``);
   PuzzleVQA's ``answer`` is the option's text, which becomes its letter as
   ``vlmeval/dataset/utils/puzzlevqa.py`` ``to_choice_letter`` maps it.

HR-Bench (DreamMr/HR-Bench on the Hugging Face hub, files ``hr_bench_4k.tsv`` / ``hr_bench_4k.parquet``
and ``hr_bench_8k.*`` at commit 37c2d2e; evaluation code github.com/DreamMr/HR-Bench,
``hrbench/vlmeval/dataset/utils/hrbench.py`` at 3d16a02) uses these columns: ``index``, ``question``,
``answer`` (a letter), ``category``, ``A``-``D``, ``cycle_category`` and ``image`` (base64). The
column list is taken from a mirror's dataset card (huggingface.co/datasets/ohjoonhee/HR-Bench,
README ``dataset_info``) since the original card lists none; 800 rows per resolution (each question
four times, options cycled), the repeats referring to the first row's image by index.
"""

from __future__ import annotations

import ast
import re
import warnings
from pathlib import Path
from typing import Any, Sequence

from latentprobe.data.images import ImageRef, image_from_base64, image_from_bytes, image_from_file
from latentprobe.data.records import LETTERS, Example, cell, check_unique, lettered_options, option_columns, scalars
from latentprobe.errors import DataError

__all__ = ["OPTION_FIELDS", "image_cell", "load_hrbench", "load_vlmevalkit_tsv", "read_table", "row_options"]

_REF_MAX = 64  # VLMEvalKit: an image cell this short names another row's index
#: The columns other than ``A``, ``B``, ... that VLMEvalKit's tables keep options in, in the order tried.
OPTION_FIELDS: tuple[str, ...] = ("multi-choice options", "options")
_LETTER_LINE = re.compile(r"^\s*\([A-Z]\)")


def read_table(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """``(columns, rows)`` of a ``.tsv`` (every cell as text, empty for missing) or ``.parquet`` file.

    Parameters
    ----------
    path : Path
        A ``.tsv`` or ``.parquet`` file.

    Returns
    -------
    tuple[list[str], list[dict[str, Any]]]
        The columns and the rows.
    """
    import pandas as pd

    if not path.is_file():
        raise DataError(f"{path} does not exist.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".tsv":
            with warnings.catch_warnings():  # a row with more cells than the header is an error, not a warning
                warnings.simplefilter("error", pd.errors.ParserWarning)
                frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_filter=False,
                                    index_col=False)
        elif suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            raise DataError(f"{path}: expected a .tsv or .parquet file, got {suffix or 'no extension'!r}.")
    except DataError:
        raise
    except Exception as err:  # pandas/pyarrow parser errors carry the line; keep their text
        raise DataError(f"{path}: cannot be read as a {suffix[1:]} table ({type(err).__name__}: {err}).") from None
    columns = [str(c) for c in frame.columns]
    if len(set(columns)) != len(columns):
        raise DataError(f"{path}, header row: duplicate column names {columns}; rename them.")
    return columns, frame.to_dict("records")


def _listed(text: str) -> list[str]:
    """VLMEvalKit's ``toliststr``: a ``[...]`` Python list literal becomes its items, anything else one item."""
    s = text.strip()
    if s.startswith("[") and s.endswith("]"):
        try:
            items = ast.literal_eval(s)
        except (ValueError, SyntaxError):
            return [s]
        return [str(x) for x in items]
    return [s]


def _items(text: str, where: str) -> list[str]:
    """A list literal's items, or the ``(A) ...`` lines of a text (a header line before them is dropped)."""
    s = text.strip()
    if s.startswith("[") and s.endswith("]"):
        try:
            items = ast.literal_eval(s)
        except (ValueError, SyntaxError) as err:
            raise DataError(f"{where}: looks like a list but does not parse ({err}); expected e.g. "
                            "['(A) text', '(B) text'].") from None
        if not isinstance(items, (list, tuple)) or not all(isinstance(x, str) for x in items):
            raise DataError(f"{where}: expected a list of option strings, got {s[:80]!r}.")
        return [str(x) for x in items]
    lines: list[str] = []
    for line in s.splitlines():
        if _LETTER_LINE.match(line):
            lines.append(line.strip())
        elif lines and line.strip():
            lines[-1] += "\n" + line.strip()  # an option text that runs over several lines
    if not lines:
        raise DataError(f"{where}: no '(A) text' option lines in {s[:80]!r}.")
    return lines


def row_options(columns: Sequence[str], row: dict[str, Any], where: str) -> tuple[tuple[str, ...] | None, str | None]:
    """A row's options and the column they came from (``"A"`` for the letter columns), in VLMEvalKit's encodings.

    Letter columns first, then ``multi-choice options`` (``"(A) text"`` items: a list literal or
    lines), then ``options`` (a list literal of bare texts); ``(None, None)`` when the row has none.

    Parameters
    ----------
    columns : Sequence[str]
        The option columns.
    row : dict[str, Any]
        The row.
    where : str
        Where the value was read (file, row, field), for messages.

    Returns
    -------
    tuple
        The options (``None`` when the row has none) and the column they came from.

    Examples
    --------
    >>> row_options(["question", "multi-choice options"], {"multi-choice options": "['(A) 2', '(B) 3']"}, "row 0")
    (('2', '3'), 'multi-choice options')
    >>> row_options(["options"], {"options": "['red', 'blue']"}, "row 0")
    (('red', 'blue'), 'options')
    """
    letters = option_columns(columns, row, where)
    if letters is not None:
        return letters, "A"
    for name in OPTION_FIELDS:
        value = row.get(name) if name in columns else None
        if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
            value = value.tolist()  # a parquet list column
        if isinstance(value, (list, tuple)):
            items = [str(x) for x in value]
            if not items:
                continue
        else:
            text = cell(value)
            if text is None:
                continue
            items = _items(text, f"{where}, field {name!r}")
        if name == "options":
            return tuple(i.strip() for i in items), name
        return lettered_options(items, f"{where}, field {name!r}"), name
    return None, None


def _gold(answer: str | None, options: tuple[str, ...] | None, where: str) -> str | None:
    """The gold letter: the ``answer`` cell, or the letter of the option whose text it is (PuzzleVQA)."""
    if answer is None or options is None:
        return answer
    gold = answer.strip()
    letters = LETTERS[: len(options)]
    if gold in letters:
        return gold
    matches = [LETTERS[j] for j, text in enumerate(options) if text.strip() == gold]
    if len(matches) == 1:
        return matches[0]
    raise DataError(f"{where}, field 'answer': {gold!r} is not one of the row's option letters {list(letters)} "
                    "nor one option's text.")


def image_cell(value: object, where: str, verify: bool) -> list[ImageRef] | None:
    """Images stored in a cell as bytes (a Hugging Face image struct or raw bytes); ``None`` if the cell is text.

    Parameters
    ----------
    value : Any
        A table cell (a Hugging Face image struct, raw bytes, or text).
    where : str
        Where the value was read (file, row, field), for messages.
    verify : bool
        Check that PIL can read each image.

    Returns
    -------
    list of ImageRef or None
    """
    if isinstance(value, dict) and ("bytes" in value or "path" in value):
        if value.get("bytes"):
            return [image_from_bytes(value["bytes"], where, verify=verify)]
        raise DataError(f"{where}: the image struct carries no bytes (path {value.get('path')!r} only); "
                        "re-export the table with embedded images.")
    if isinstance(value, (bytes, bytearray)):
        return [image_from_bytes(bytes(value), where, verify=verify)]
    return None


def _table_examples(path: Path, columns: list[str], rows: list[dict[str, Any]], *, source: str, root: Path,
                    required: Sequence[str], verify: bool) -> list[Example]:
    missing = [c for c in required if c not in columns]
    if missing:
        raise DataError(f"{path}, header row: missing column(s) {missing} (columns: {columns}); is this a "
                        f"{source} file?")
    if "image" not in columns and "image_path" in columns and not root.is_dir():
        raise DataError(f"{path}: image_path columns need an image folder; pass image_root=.")
    where_of = [f"{path}, row {i} (index {cell(r.get('index'))})" for i, r in enumerate(rows)]
    by_index: dict[str, int] = {}
    for i, r in enumerate(rows):
        idx = cell(r.get("index"))
        if idx is None:
            raise DataError(f"{where_of[i]}, field 'index': empty; every row needs an index.")
        if idx in by_index:
            raise DataError(f"{where_of[i]}, field 'index': index {idx} repeats row {by_index[idx]}; indices must "
                            "be unique.")
        by_index[idx] = i
    cache: dict[int, list[ImageRef]] = {}

    def images_of(i: int, depth: int = 0) -> list[ImageRef]:
        if i in cache:
            return cache[i]
        where = f"{where_of[i]}, field 'image'"
        value = rows[i].get("image") if "image" in columns else None
        refs = image_cell(value, where, verify)
        if refs is None and cell(value) is not None:
            text = cell(value) or ""
            if len(text) <= _REF_MAX:  # another row's index
                target = by_index.get(text.strip())
                if target is None or target == i or depth > 0:
                    raise DataError(f"{where}: {text!r} is neither an image nor the index of a row holding one; "
                                    "VLMEvalKit refers to another row's image by its index.")
                refs = images_of(target, depth + 1)
            else:
                refs = [image_from_base64(s, where, verify=verify) for s in _listed(text)]
        if refs is None and "image_path" in columns and cell(rows[i].get("image_path")) is not None:
            where = f"{where_of[i]}, field 'image_path'"
            refs = [image_from_file(root, p, where, verify=verify) for p in _listed(cell(rows[i]["image_path"]) or "")]
        if refs is None and ("image" in columns or "image_path" in columns):
            raise DataError(f"{where_of[i]}, field 'image': empty; the row has no image (VLMEvalKit skips such rows: "
                            "drop it).")
        cache[i] = refs or []
        return cache[i]

    skip = {"index", "image", "image_path", "question", "answer", "category", *LETTERS}
    out: list[Example] = []
    for i, r in enumerate(rows):
        where = where_of[i]
        question = cell(r.get("question"))
        if question is None:
            raise DataError(f"{where}, field 'question': empty; every row needs a question.")
        options, field = row_options(columns, r, where)
        gold = _gold(cell(r.get("answer")) if "answer" in columns else None, options, where)
        attrs = scalars(r, skip=tuple(skip | ({field} if field else set())))
        if gold is not None and options is not None and gold != (cell(r.get("answer")) or "").strip():
            attrs["answer_text"] = cell(r.get("answer"))
        attrs["native_id"] = cell(r.get("index"))
        out.append(Example(example_id=f"{source}/{cell(r.get('index'))}", question=question, gold=gold,
                           images=tuple(images_of(i)), options=options, category=cell(r.get("category")),
                           source=source, attributes=attrs))
    check_unique(out, str(path))
    return out


def _single_table(root: Path, file: str | None, patterns: Sequence[str], what: str) -> Path:
    if root.is_file():
        return root
    if not root.is_dir():
        raise DataError(f"{root} does not exist; pass the {what} file or the folder holding it.")
    if file is not None:
        return root / file
    for pattern in patterns:
        found = sorted(root.glob(pattern))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise DataError(f"{root}: several {what} files match {pattern!r} ({[p.name for p in found]}); pass file=.")
    raise DataError(f"{root}: no {what} file ({', '.join(patterns)}); pass file= or the file itself.")


def load_vlmevalkit_tsv(root: str | Path, *, file: str | None = None, image_root: str | Path | None = None,
                        source: str = "vlmevalkit-tsv", verify_images: bool = True) -> list[Example]:
    """Read a VLMEvalKit benchmark table (``.tsv``, or ``.parquet`` with the same columns).

    Parameters
    ----------
    root : path
        The table file, or a folder holding exactly one ``.tsv`` (else pass ``file=``).
    file : str, optional
        The table's name inside ``root``.
    image_root : path, optional
        Folder that ``image_path`` cells are relative to (default: the table's folder).
    source : str
        The name recorded in :attr:`Example.source` and prefixed to ids (default ``"vlmevalkit-tsv"``).
    verify_images : bool
        Check every image's header with PIL at load (default); ``False`` only decodes base64.

    Returns
    -------
    list of Example
        One per row: ``example_id = f"{source}/{index}"``, options from the filled letter columns
        or else the ``multi-choice options`` or ``options`` column (see the module docstring), gold
        the ``answer`` cell (an option's text becomes its letter, the text kept as
        ``attributes["answer_text"]``), category the ``category`` cell, the other columns (``hint``,
        ``l2-category``, ``split``, ...) in ``attributes``.

    Raises
    ------
    DataError
        A missing column, an empty question or index, a bad base64 image, a reference to a
        missing row, an image path outside ``image_root``; the message names file, row and field.
    """
    path = _single_table(Path(root).expanduser(), file, ("*.tsv", "*.parquet"), "VLMEvalKit table")
    columns, rows = read_table(path)
    img_root = Path(image_root).expanduser() if image_root is not None else path.parent
    return _table_examples(path, columns, rows, source=source, root=img_root, required=("index", "question"),
                           verify=verify_images)


def load_hrbench(root: str | Path, *, resolution: str, file: str | None = None,
                 verify_images: bool = True) -> list[Example]:
    """Read HR-Bench 4K or 8K (``hr_bench_4k.tsv`` / ``.parquet``, ``hr_bench_8k.*``) as published.

    ``root`` is the downloaded dataset folder (``DreamMr/HR-Bench``) or the file itself; the
    parquet file is preferred when both are there (same rows, smaller). Required columns:
    ``index, question, answer, category, A, B, C, D, image``; ``cycle_category`` goes to
    ``attributes``. Example ids are ``hrbench4k/<index>`` (``hrbench8k/...``).

    Parameters
    ----------
    root : str | Path
        The downloaded dataset folder or the file itself.
    resolution : str
        ``"4k"`` or ``"8k"``.
    file : str | None
        The file, relative to ``root`` (default: found).
    verify_images : bool
        Open every image's header now (a damaged file fails at load time, naming it).

    Returns
    -------
    list[Example]
    """
    if resolution not in ("4k", "8k"):
        raise DataError(f"HR-Bench resolution {resolution!r}; use '4k' or '8k'.")
    stem = f"hr_bench_{resolution}"
    path = _single_table(Path(root).expanduser(), file, (f"{stem}.parquet", f"{stem}.tsv"), f"HR-Bench {resolution}")
    columns, rows = read_table(path)
    return _table_examples(path, columns, rows, source=f"hrbench{resolution}", root=path.parent,
                           required=("index", "question", "answer", "category", "A", "B", "C", "D", "image"),
                           verify=verify_images)
