"""Cleaning model outputs, SQuAD-style normalisation and last-number parsing.

Every parser here starts from :func:`clean_output`: Unicode NFKC (full-width ``Ｂ``, ``（B）`` and
``：`` become ASCII), chat special tokens (``<|im_end|>``, ``</s>``) dropped, and reasoning blocks
(``<think>...</think>``) removed so that only the answer written after them counts.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from typing import Any, Sequence

from latentprobe.errors import InputError
from latentprobe.validate import number

__all__ = ["ScoringError", "clean_output", "exact_match", "normalize_answer", "numeric_match", "parse_number"]


class ScoringError(InputError):
    """Answers, golds, options or scorer settings that cannot be scored as given."""


_THINK = r"(?:think|thinking|reasoning|reason)"
_THINK_BLOCK = re.compile(rf"<{_THINK}>.*?</{_THINK}>", re.S | re.I)
_THINK_CLOSE = re.compile(rf"</{_THINK}>", re.I)
_THINK_OPEN = re.compile(rf"<{_THINK}>", re.I)
_SPECIAL_TOKENS = re.compile(r"<\|[^<>|]{1,40}\|>|</s>|<s>|<eos>|<bos>|<pad>|<eot>|<bot>", re.I)
_ANSWER_TAG = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.S | re.I)
_ANY_ANSWER_TAG = re.compile(r"</?answer>", re.I)
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_LATEX_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mathbf|textit|mbox)\s*\{([^{}]*)\}")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_PUNCT = set(string.punctuation)


def clean_output(text: str | None, *, arg: str = "text") -> str:
    """Return ``text`` NFKC-normalised, without chat special tokens or reasoning blocks.

    A closed ``<think>...</think>`` block is removed; a stray ``</think>`` (the opening tag was in
    the prompt) keeps what follows it; an unclosed ``<think>`` (generation cut off while thinking)
    keeps what precedes it. ``None`` is the empty string.

    Parameters
    ----------
    text : str | None
        A model's output (``None``: empty).
    arg : str
        The argument's name, for the error message.

    Returns
    -------
    str

    Examples
    --------
    >>> clean_output("<think>maybe A</think> The answer is （Ｂ）<|im_end|>")
    'The answer is (B)'
    >>> clean_output("so it is A... wait.</think>\\nC")
    'C'
    >>> clean_output("B<think>let me check")
    'B'
    """
    if text is None:
        return ""
    if not isinstance(text, str):
        raise ScoringError(
            f"{arg} must be a string (the model's decoded output) or None, got {type(text).__name__} "
            f"{text!r:.60}; decode token ids with the tokenizer first."
        )
    s = unicodedata.normalize("NFKC", text)
    s = _SPECIAL_TOKENS.sub(" ", s)
    s = _THINK_BLOCK.sub(" ", s)
    closes = list(_THINK_CLOSE.finditer(s))
    if closes:
        s = s[closes[-1].end():]
    opened = _THINK_OPEN.search(s)
    if opened:
        s = s[: opened.start()]
    return s.strip()


def boxed_content(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (balanced braces, ``\\text{}`` unwrapped), or None."""
    starts = list(_BOXED.finditer(text))
    if not starts:
        return None
    i = start = starts[-1].end()
    depth = 1
    while i < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    inner = text[start : i - 1] if depth == 0 else text[start:]
    for _ in range(3):
        inner = _LATEX_TEXT.sub(r"\1", inner)
    return inner.strip()


def answer_tag_content(text: str) -> str | None:
    """The content of the last ``<answer>...</answer>`` (an unclosed final tag runs to the end), or None."""
    found = list(_ANSWER_TAG.finditer(text))
    return found[-1].group(1).strip() if found else None


def _strip_punct(s: str) -> str:
    return "".join(" " if (ch in _PUNCT or unicodedata.category(ch).startswith("P")) else ch for ch in s)


def normalize_answer(text: str | None) -> str:
    """SQuAD-style normalisation of an open answer, for exact-match scoring.

    After :func:`clean_output` (think blocks and chat tokens removed), answer tags and ``\\boxed{}``
    are unwrapped, the text is lower-cased, punctuation (ASCII and Unicode) becomes spaces, the
    articles *a*, *an*, *the* are dropped and whitespace is collapsed. This is the rule of the SQuAD
    v1.1 evaluation script, except that punctuation separates words instead of joining them
    (``"New-York"`` becomes ``"new york"``).

    Parameters
    ----------
    text : str | None
        An answer.

    Returns
    -------
    str
        Lower-cased, without punctuation, articles or extra whitespace.

    Examples
    --------
    >>> normalize_answer("<think>hmm</think><answer> The  Eiffel-Tower! </answer>")
    'eiffel tower'
    >>> normalize_answer("\\\\boxed{\\\\text{A red apple}}.")
    'red apple'
    >>> normalize_answer(None)
    ''
    """
    s = clean_output(text)
    inner = answer_tag_content(s)
    if inner is not None:
        s = inner
    box = boxed_content(s)
    if box is not None:
        s = box
    s = _ANY_ANSWER_TAG.sub(" ", s).lower()
    s = _ARTICLES.sub(" ", _strip_punct(s))
    return " ".join(s.split())


def exact_match(pred: str | None, gold: str | Sequence[str]) -> bool:
    """True when ``pred`` equals ``gold`` (or any of several golds) after :func:`normalize_answer`.

    An empty prediction never matches, even an empty gold.

    Parameters
    ----------
    pred : str | None
        The answer.
    gold : str | Sequence[str]
        One gold or several accepted ones.

    Returns
    -------
    bool

    Examples
    --------
    >>> exact_match("<answer>Paris.</answer>", "paris")
    True
    >>> exact_match("Lyon", ["Paris", "paris, France"])
    False
    """
    golds = [gold] if isinstance(gold, str) else list(gold) if isinstance(gold, Sequence) else None
    if golds is None or not all(isinstance(g, str) for g in golds):
        raise ScoringError(
            f"gold must be a string or a sequence of strings, got {gold!r:.60}; pass the reference answer text."
        )
    p = normalize_answer(pred)
    return bool(p) and any(p == normalize_answer(g) for g in golds)


# A number: optional minus (not after a word or closing bracket: "3-4" is 3 and 4), digits with
# optional thousands commas (1,234,567; "1, 2" is two numbers), optional decimals and exponent.
_NUMBER = re.compile(
    r"(?:(?<![\w)\]])(?P<sign>[-\u2212]))?(?<![\d.])"
    r"(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?P<frac>\.\d+)?(?:[eE](?P<exp>[-+]?\d+))?"
)


def _last_number(text: str) -> float | None:
    found = list(_NUMBER.finditer(text))
    if not found:
        return None
    m = found[-1]
    value = float(m["int"].replace(",", "") + (m["frac"] or "") + (f"e{m['exp']}" if m["exp"] else ""))
    return -value if m["sign"] else value


def parse_number_with_method(text: str | None) -> tuple[float | None, str]:
    """:func:`parse_number` and how it was found: "answer_tag", "boxed", "hash_marker", "last_number",
    "empty" or "none"."""
    s = clean_output(text)
    if not any(ch.isalnum() for ch in s):
        return None, "empty"
    spans = [("answer_tag", answer_tag_content(s)), ("boxed", boxed_content(s))]
    if "####" in s:
        spans.append(("hash_marker", s.rsplit("####", 1)[1]))
    for method, span in spans:
        value = _last_number(span) if span is not None else None
        if value is not None:
            return value, method
    value = _last_number(s)
    return (value, "last_number") if value is not None else (None, "none")


def parse_number(text: str | None) -> float | None:
    """The last number in ``text``, as CODI scores GSM8k; None when there is none.

    The rule follows ``extract_answer_number`` in CODI's ``test.py`` (github.com/zhenyi4/codi,
    commit 4fd88d4): remove the commas, find every ``-?\\d+\\.?\\d*``, keep the last one as a float;
    CODI's gold is the text after ``####`` without commas, as a float, and ``compute_accuracy``
    compares the two with ``==``.
    Differences, each deliberate: (1) only commas between digit groups of three are removed, so
    ``"1, 2, 3"`` gives 3 (CODI removes every comma and reads 123); (2) a minus sign counts only
    when it does not follow a word or closing bracket (``"3-4"`` gives 4; CODI reads -4); (3) when
    the output marks its answer (``<answer>...</answer>``, ``\\boxed{...}``, or GSM8k's ``#### 42``)
    the last number inside the mark is taken, falling back to the whole text; (4) reasoning in
    ``<think>`` blocks is ignored and full-width digits are read (NFKC); (5) no number gives None,
    where CODI gives ``inf`` (never equal to a gold). Leading-dot decimals (``.5``) and words
    (``"forty-two"``) are not numbers here.

    What it does not prove: the last number is the answer only for models trained to end with it
    (CODI, Coconut). "The answer is 42. It took 3 steps." gives 3.

    Parameters
    ----------
    text : str | None
        The answer.

    Returns
    -------
    float or None

    Examples
    --------
    >>> parse_number("She has 3 apples and buys 1,250 more: 1,253 apples.")
    1253.0
    >>> parse_number("x = -2.5")
    -2.5
    >>> parse_number("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\\n#### 72")
    72.0
    >>> parse_number("no digits here") is None
    True
    """
    return parse_number_with_method(text)[0]


def numeric_match(pred: str | None, gold: str | float, *, tol: float = 1e-6) -> bool | None:
    """Whether the last number of ``pred`` equals ``gold`` within ``tol``; None when ``pred`` has none.

    ``gold`` is a number or a text parsed by :func:`parse_number` (a GSM8k solution ending in
    ``#### 72`` works). ``tol`` is an absolute tolerance; CODI compares exactly (``tol=0``).

    Parameters
    ----------
    pred : str | None
        The answer.
    gold : str | float
        The gold number (or text ending in it, as GSM8k's ``#### 12``).
    tol : float
        Absolute tolerance.

    Returns
    -------
    bool or None

    Examples
    --------
    >>> numeric_match("The total is $1,000.", "#### 1000")
    True
    >>> numeric_match("I think 41", 42)
    False
    >>> numeric_match("I don't know", 42) is None
    True
    """
    number(tol, "tol", minimum=0, where="numeric_match", hint="e.g. 1e-6; 0 compares exactly", error=ScoringError)
    g = _gold_number(gold)
    p = parse_number(pred)
    if p is None:
        return None
    return abs(p - g) <= tol


def _gold_number(gold: Any, where: str = "") -> float:
    if isinstance(gold, (int, float)) and not isinstance(gold, bool) and math.isfinite(gold):
        return float(gold)
    if isinstance(gold, str):
        g = parse_number(gold)
        if g is not None:
            return g
    raise ScoringError(
        f"gold {gold!r:.60}{where} is not a number and contains none; give the reference answer as a number "
        f"or a text that ends with it (e.g. '#### 72')."
    )
