"""The benchmark record (:class:`Example`) and the small readers every loader shares.

An :class:`Example` is one question of a benchmark, as the benchmark stores it: the question text,
the option texts in letter order (``A, B, ...``) for multiple choice, the gold answer (the letter
for multiple choice, the number or text otherwise), the images (lazy :class:`ImageRef`), the
benchmark's category column, and anything else the record carries under ``attributes``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from string import ascii_uppercase
from typing import Any, Mapping, Sequence

from latentprobe.data.images import ImageRef
from latentprobe.display import clip
from latentprobe.errors import DataError

__all__ = ["Example", "LETTERS", "cell", "check_unique", "lettered_options", "option_columns", "read_json", "read_jsonl",
           "scalars"]

#: Option letters in order; an example's ``options[i]`` is the text of ``LETTERS[i]``.
LETTERS: str = ascii_uppercase


@dataclass(frozen=True, repr=False)
class Example:
    """One benchmark question.

    Attributes
    ----------
    example_id : str
        Unique within a loaded benchmark; loaders prefix the benchmark's own id with its name
        (``"hrbench4k/17"``), so examples of several benchmarks can be pooled.
    question : str
        The question text as stored (no options, no instruction added).
    gold : str or None
        The answer as the benchmark stores it: the letter for multiple choice, the number or text
        otherwise; ``None`` where the benchmark checks answers another way (VSP's plans).
    images : tuple of ImageRef
        Lazily read images, in the order the benchmark gives them; ``()`` for text-only data.
    options : tuple of str or None
        Option texts in letter order (``A``, ``B``, ...), without their letters; ``None`` when the
        question is not multiple choice.
    category : str or None
        The benchmark's category (task) column.
    source : str
        The benchmark's name (one of :func:`latentprobe.data.list_benchmarks`).
    attributes : mapping
        Everything else the record carries (e.g. ``{"l2-category": ..., "split": ...}``).

    Examples
    --------
    >>> ex = Example("demo/1", "What colour is the car?", "B", options=("red", "blue"), category="colour")
    >>> ex.letters
    ('A', 'B')
    >>> ex.gold_text
    'blue'
    """

    example_id: str
    question: str
    gold: str | None
    images: tuple[ImageRef, ...] = ()
    options: tuple[str, ...] | None = None
    category: str | None = None
    source: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.example_id, str) or not self.example_id:
            raise DataError(f"Example.example_id must be a non-empty str, got {self.example_id!r}.")
        where = f"example {self.example_id!r}"
        if not isinstance(self.question, str):
            raise DataError(f"{where}: question must be a str, got {type(self.question).__name__}.")
        if self.gold is not None and not isinstance(self.gold, str):
            raise DataError(f"{where}: gold must be a str or None, got {type(self.gold).__name__}; convert it "
                            "(str(answer)).")
        images = tuple(self.images)
        if not all(isinstance(im, ImageRef) for im in images):
            raise DataError(f"{where}: images must be ImageRef objects (latentprobe.data.ImageRef).")
        object.__setattr__(self, "images", images)
        if self.options is not None:
            opts = tuple(self.options)
            if not opts or not all(isinstance(o, str) for o in opts) or len(opts) > len(LETTERS):
                raise DataError(f"{where}: options must be 1 to 26 option texts (str), got {self.options!r}.")
            object.__setattr__(self, "options", opts)
        if self.category is not None and not isinstance(self.category, str):
            raise DataError(f"{where}: category must be a str or None, got {type(self.category).__name__}.")
        object.__setattr__(self, "attributes", dict(self.attributes))

    def __repr__(self) -> str:  # one short line: a list of examples prints as a list, not as their images
        parts = [repr(self.example_id), f"question={clip(self.question, 50)!r}", f"gold={self.gold!r}"]
        if self.options:
            parts.append(f"options={len(self.options)}")
        if self.images:
            parts.append(f"images={len(self.images)}")
        if self.category is not None:
            parts.append(f"category={clip(self.category, 30)!r}")
        return f"Example({', '.join(parts)})"

    def __hash__(self) -> int:  # attributes is a dict: hash what identifies the example
        return hash((self.example_id, self.question, self.gold, self.options, self.source))

    @property
    def letters(self) -> tuple[str, ...]:
        """The option letters, ``("A", "B", ...)``; ``()`` without options."""
        return tuple(LETTERS[: len(self.options)]) if self.options else ()

    @property
    def gold_text(self) -> str | None:
        """The text of the gold option for multiple choice (else :attr:`gold` itself)."""
        if self.options and self.gold is not None and self.gold in self.letters:
            return self.options[LETTERS.index(self.gold)]
        return self.gold


# --------------------------------------------------------------------------- shared readers


def cell(value: object) -> str | None:
    """A table cell as text: ``None`` for missing (None, NaN, empty), else ``str`` (ints stay ints' text).

    Parameters
    ----------
    value : Any
        A table cell.

    Returns
    -------
    str or None
        The text, ``None`` for an empty or missing cell.
    """
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        return cell(value.item())
    s = str(value)
    return s if s.strip() else None


def scalars(record: Mapping[str, Any], skip: Sequence[str] = ()) -> dict[str, Any]:
    """The record's plain fields (str, int, float, bool, None, lists of them) except ``skip``.

    Parameters
    ----------
    record : Mapping[str, Any]
        A record.
    skip : Sequence[str]
        Fields left out.

    Returns
    -------
    dict[str, Any]
        Its plain (str, number, bool) fields.
    """
    out: dict[str, Any] = {}
    for k, v in record.items():
        if k in skip:
            continue
        if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):
            v = v.tolist()
        if v is None or isinstance(v, (str, int, float, bool)):
            out[str(k)] = None if isinstance(v, float) and math.isnan(v) else v
        elif isinstance(v, (list, tuple)) and all(x is None or isinstance(x, (str, int, float, bool, list)) for x in v):
            out[str(k)] = list(v)
    return out


def option_columns(columns: Sequence[str], row: Mapping[str, Any], where: str) -> tuple[str, ...] | None:
    """Option texts from the letter columns ``A, B, ...`` present and filled in a row, in letter order.

    A filled letter after an empty one (``A, B, D`` with ``C`` empty) is refused: the letters would
    no longer name positions.

    Parameters
    ----------
    columns : Sequence[str]
        The option columns, in letter order.
    row : Mapping[str, Any]
        The row.
    where : str
        Where the value was read (file, row, field), for messages.

    Returns
    -------
    tuple of str or None
    """
    texts: list[str] = []
    gap: str | None = None
    for letter in LETTERS:
        if letter not in columns:
            break
        text = cell(row.get(letter))
        if text is None:
            gap = gap or letter
            continue
        if gap is not None:
            raise DataError(f"{where}, field {letter!r}: option {letter} is filled but option {gap} is empty; options "
                            "must be consecutive letters from A.")
        texts.append(text)
    return tuple(texts) or None


_LETTERED = re.compile(r"^\s*\(?([A-Z])[\).:]\s*")


def lettered_options(items: Sequence[str], where: str) -> tuple[str, ...]:
    """Option texts from ``"(A) text"`` items (``"A. text"``, ``"A) text"``, ``"A: text"`` too), letters in order.

    The letters are checked, not trusted: item ``j`` must carry ``LETTERS[j]``.

    Parameters
    ----------
    items : Sequence[str]
        Option texts, possibly prefixed ``"(A) "``.
    where : str
        Where the value was read (file, row, field), for messages.

    Returns
    -------
    tuple of str

    Examples
    --------
    >>> lettered_options(["(A) 12", "(B) 13", "(C) none of them"], "row 0")
    ('12', '13', 'none of them')
    """
    out: list[str] = []
    for j, item in enumerate(items):
        m = _LETTERED.match(item)
        if m is None or m.group(1) != LETTERS[j]:
            raise DataError(f"{where}: choice {j} {item!r} should start with '({LETTERS[j]})'.")
        out.append(item[m.end():].strip())
    return tuple(out)


def check_unique(examples: Sequence[Example], source: str) -> None:
    """Refuse duplicate example ids (results are matched on them).

    Parameters
    ----------
    examples : Sequence[Example]
        The examples read.
    source : str
        Where the examples come from (named in the message).

    Raises
    ------
    DataError
        No examples at all (an empty file, or filters that keep nothing), or an id that occurs twice.
    """
    if not examples:
        raise DataError(f"{source}: no examples were read (the file is empty, or the options keep none of its "
                        "records); check the file, and the split, subsets or categories asked for.")
    seen: set[str] = set()
    for ex in examples:
        if ex.example_id in seen:
            raise DataError(f"{source}: example id {ex.example_id!r} occurs twice; ids must be unique (results are "
                            "matched on them): fix the id column or drop the duplicate row.")
        seen.add(ex.example_id)


def need_file(path: Path, kind: str) -> None:
    """Refuse a path that is not a file: missing, or a folder where a ``kind`` file is expected."""
    if path.is_dir():
        raise DataError(f"{path} is a folder; give the {kind} file itself (a path ending in the file's name).")
    if not path.is_file():
        raise DataError(f"{path} does not exist.")


def read_json(path: Path) -> Any:
    """A JSON file's content; a typed error naming the file, line and column when it does not parse.

    Parameters
    ----------
    path : Path
        The file.

    Returns
    -------
    object
        The parsed JSON.
    """
    need_file(path, "JSON")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}, line {err.lineno}, column {err.colno}: not valid JSON ({err.msg}).") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason}); is it the right file?") from None


def read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` for each non-blank line of a JSON Lines file (objects only).

    Parameters
    ----------
    path : Path
        The file.

    Returns
    -------
    list[tuple[int, dict[str, Any]]]
        ``(line number, record)`` of each non-empty line.
    """
    need_file(path, "JSON Lines")
    out: list[tuple[int, dict[str, Any]]] = []
    with path.open(encoding="utf-8") as f:
        for ln, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}, line {ln}: not valid JSON ({err.msg}).") from None
            if not isinstance(rec, dict):
                raise DataError(f"{path}, line {ln}: a record must be a JSON object, got {type(rec).__name__}.")
            out.append((ln, rec))
    return out
