"""Which scorer the data call for: :func:`advise_scorer`, read from what the examples hold.

A scorer refused on data that cannot take it (``"choice"`` on examples without options) should
say what the data do take. Multiple-choice data whose options sit where the loader did not read
them (a ``multi-choice options`` or ``choices`` field, lettered lines in the question) are still
multiple choice: the advice is to bring the options in, not to score letters as free text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from latentprobe.scoring._text import parse_number

__all__ = ["OPTION_LIKE_FIELDS", "ScorerAdvice", "advise_scorer"]

#: Field names (lower-cased) that hold a question's options in the layouts we know of.
OPTION_LIKE_FIELDS: tuple[str, ...] = ("multi-choice options", "options", "choices", "answer choices", "option",
                                       "candidates", "answer_choices", "multiple_choice_answer")
_LINE = re.compile(r"(?m)^\s*\(?([A-Z])[\).:]\s+\S")


@dataclass(frozen=True)
class ScorerAdvice:
    """A scorer name for the data and why.

    Attributes
    ----------
    scorer : str
        ``"choice"``, ``"numeric"`` or ``"exact"``.
    reason : str
        One or two sentences for an error message: what the data hold and what to do.
    field : str or None
        The field that seems to hold the options, when they were found outside ``options``.
    """

    scorer: str
    reason: str
    field: str | None = None


def _parts(record: Any) -> tuple[Any, str, Mapping[str, Any]]:
    """``(options, question, attributes)`` of an :class:`~latentprobe.data.Example` or an InputSet meta entry."""
    if isinstance(record, Mapping):
        attrs = record.get("attributes") or {}
        extra = {k: v for k, v in record.items() if k not in ("options", "question", "attributes")}
        return record.get("options"), str(record.get("question") or ""), {**extra, **attrs}
    return (getattr(record, "options", None), str(getattr(record, "question", "") or ""),
            dict(getattr(record, "attributes", {}) or {}))


def _filled(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and value != value:
        return False
    if isinstance(value, (list, tuple, Mapping)):
        return len(value) > 0
    return bool(str(value).strip())


def advise_scorer(records: Sequence[Any], golds: Sequence[Any] | None = None) -> ScorerAdvice:
    """The scorer the data call for, with the reason, from the examples' options, fields and gold answers.

    Parameters
    ----------
    records : sequence
        :class:`~latentprobe.data.Example` records or an InputSet's ``meta`` entries (mappings with
        ``options``, ``question`` and ``attributes``).
    golds : sequence, optional
        The gold answers (default: each record's ``gold``, where it has one).

    Returns
    -------
    ScorerAdvice
        ``"choice"`` when every example has options, or when examples without options hold them in
        an option-like field (:data:`OPTION_LIKE_FIELDS`) or as lettered lines in the question (the
        reason says where, and how to bring them in); ``"numeric"`` when every gold answer is a
        number; ``"exact"`` otherwise (when the gold answers are option letters without option texts,
        the reason says the options are stored elsewhere, e.g. in the image).

    Examples
    --------
    >>> from latentprobe.data import Example
    >>> ex = Example("mme/1", "How many?", "B", attributes={"multi-choice options": "['(A) 1', '(B) 2']"})
    >>> advise_scorer([ex]).scorer, advise_scorer([ex]).field
    ('choice', 'multi-choice options')
    >>> advise_scorer([Example("gsm/1", "2 + 2?", "4")]).scorer
    'numeric'
    >>> advise_scorer([Example("q/1", "Who?", "Ada Lovelace")]).scorer
    'exact'
    """
    records = list(records)
    if golds is None:
        golds = [getattr(r, "gold", None) if not isinstance(r, Mapping) else r.get("gold") for r in records]
    golds = [None if g is None else str(g).strip() for g in golds]
    without = [r for r in records if not _filled(_parts(r)[0])]
    if records and not without:
        return ScorerAdvice("choice", "every example has options: use scorer = \"choice\".")
    for r in without:
        _, question, attrs = _parts(r)
        for key, value in attrs.items():
            if str(key).strip().lower() in OPTION_LIKE_FIELDS and _filled(value):
                return ScorerAdvice(
                    "choice", f"the examples are multiple choice, but their options are in the field {key!r}, which "
                    "the loader did not read as options: give them as options (a loader that reads that field, e.g. "
                    "benchmark \"vlmevalkit-tsv\" for VLMEvalKit tables, or option columns A, B, ...), then use "
                    "scorer = \"choice\"; scorer = \"exact\" would compare letters as free text.", field=str(key))
        if len(_LINE.findall(question)) >= 2:
            return ScorerAdvice(
                "choice", "the examples are multiple choice with their options written into the question text "
                "(lines 'A. ...', '(B) ...'): give them as options (option columns or an options field), then use "
                "scorer = \"choice\".")
    known = [g for g in golds if g]
    if known and all(len(g) == 1 and g.isupper() for g in known):
        return ScorerAdvice(
            "exact", "the gold answers are option letters, but the examples carry no option texts (stored in the "
            "image, or in a field the loader does not read): give the options to the loader if they exist (then "
            "scorer = \"choice\"), else use scorer = \"exact\", which compares the answer with the letter as text.")
    if known and all(parse_number(g) is not None and re.fullmatch(r"[-+$\d.,\s%#]+", g) for g in known):
        return ScorerAdvice("numeric", "the gold answers are numbers: use scorer = \"numeric\".")
    return ScorerAdvice("exact", "the gold answers are free text: use scorer = \"exact\" (or \"numeric\" for "
                        "numbers).")
