"""Reading a multiple-choice letter out of what a model actually wrote.

The parser tries readings from the most explicit to the least and stops at the first that
answers (see :func:`parse_choice`). It never guesses: an output that names two different
options, refuses, or says nothing usable gives ``letter=None`` with the reason in ``method``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from latentprobe.scoring._text import ScoringError, answer_tag_content, boxed_content, clean_output, normalize_answer

__all__ = ["ParsedChoice", "parse_choice"]

_DEFAULT_LETTERS = "ABCD"


@dataclass(frozen=True)
class ParsedChoice:
    """The option a model's output names.

    Attributes
    ----------
    letter : str or None
        An upper-case letter among the options, or None (empty, refusal, ambiguous, out of range,
        nothing found). Never a guess.
    method : str
        How it was read: "answer_tag", "boxed", "answer_is", "leading_letter", "parenthesised",
        "last_line", "option_label", "option_text", "bare_letter"; or, with ``letter=None``:
        "empty", "refusal", "ambiguous", "out_of_range" (a letter not among the options, which a
        scorer counts as wrong, not unparseable) or "none".
    text : str
        The cleaned span the reading came from (think blocks and chat tokens removed).
    """

    letter: str | None
    method: str
    text: str = ""


@dataclass(frozen=True)
class _Options:
    letters: tuple[str, ...]
    texts: dict[str, str]  # letter -> option text as given ("" when only letters are known)
    norms: dict[str, str]  # letter -> text normalised for matching ("" when it cannot be matched)


def _norm(text: str) -> str:
    """Option-matching normalisation: SQuAD-style, keeping articles when nothing else is left."""
    s = normalize_answer(text)
    if s:
        return s
    s = "".join(" " if ch in string.punctuation else ch for ch in clean_output(text).lower())
    return " ".join(s.split())


def _check_letters(letters: Any, arg: str = "letters") -> tuple[str, ...]:
    seq = tuple(letters) if isinstance(letters, (str, Sequence)) else None
    if not seq or not all(isinstance(x, str) and len(x) == 1 and x.isascii() and x.isalpha() for x in seq):
        raise ScoringError(
            f"{arg}={letters!r:.60} is not a sequence of single ASCII letters; use letters such as 'A', 'B', 'C' "
            f"(e.g. letters='ABCDE', or a mapping {{'A': text, ...}})."
        )
    up = tuple(x.upper() for x in seq)
    if len(set(up)) != len(up):
        raise ScoringError(f"{arg}={letters!r:.60} repeats a letter; give each option its own letter.")
    return up


def _resolve_options(options: Any = None, letters: Any = None, *, where: str = "") -> _Options:
    """Check ``options``/``letters`` as :func:`parse_choice` takes them and return their letters and texts."""
    if options is None:
        lets = _check_letters(_DEFAULT_LETTERS if letters is None else letters)
        return _Options(lets, {x: "" for x in lets}, {x: "" for x in lets})
    if isinstance(options, Mapping):
        keys = [k.strip().upper() if isinstance(k, str) else k for k in options]
        lets = _check_letters(keys, f"the keys of options{where}") if keys else ()
        texts = list(options.values())
    elif isinstance(options, Sequence) and not isinstance(options, (str, bytes)):
        texts = list(options)
        lets = _check_letters(string.ascii_uppercase if letters is None else letters)
        if len(texts) > len(lets):
            raise ScoringError(
                f"options{where} has {len(texts)} entries but only {len(lets)} letters ({''.join(lets)}); "
                f"pass letters= with one letter per option, or a mapping letter -> text."
            )
        lets = lets[: len(texts)]
    else:
        raise ScoringError(
            f"options{where} must be a sequence of option texts (letters A, B, ... in order), a mapping "
            f"letter -> text, or None for letters {_DEFAULT_LETTERS}; got {type(options).__name__} "
            f"{options!r:.60}. A string of letters is not accepted: pass letters='ABCD' instead."
        )
    if not lets:
        raise ScoringError(f"options{where} is empty; give at least one option.")
    bad = [t for t in texts if not isinstance(t, (str, int, float))]
    if bad:
        raise ScoringError(f"options{where} has a non-text option {bad[0]!r:.60}; option texts must be strings.")
    raw = {x: str(t).strip() for x, t in zip(lets, texts)}
    return _Options(lets, raw, {x: _norm(t) for x, t in raw.items()})


# --- letter tokens -------------------------------------------------------------------------------
_LETTER_AT = re.compile(r"([(\[]\s*)?([A-Za-z])(\s*[)\]])?")
# Words after a bare letter that make it a label ("A is wrong", "B because") rather than the article
# "A cat" or the pronoun "I think".
_CONNECTIVES = frozenset(
    "is was seems seem would should must looks appears fits matches best correct right because since as "
    "and or which are then so therefore vs versus only here".split()
)
_DECOR = " \t\r\n*_`\"'“”‘’:=>#~|$-"
_LEAD_WORD = re.compile(r"(?i)(?:option|choice|letter|the)\s+(?=[(\[]?[A-Za-z](?![A-Za-z0-9]))")
_SEP = re.compile(
    r"(?i)\s*(?:,\s*(?:or|and)\b|,|/|&|、|;|\bor\b|\band\b|\bvs\.?|\bversus\b)\s*"
    r"(?:(?:maybe|perhaps|possibly|even)\s+)?(?:(?:option|choice)s?\s+)?"
)
_NEGATED = re.compile(
    r"(?i)(?:\bnot|n't|\bexcept|\bthan|\bneither|\bnor|\bexclude|\beliminate)\s*(?:(?:option|choice)s?\s*)?[(\[]?\s*$"
)


def _ascii_alnum(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def _letter_at(s: str, pos: int, opts: _Options) -> tuple[str, int, bool] | None:
    """A letter token at ``s[pos]``: (upper-case letter, end, bracketed), or None for a word."""
    m = _LETTER_AT.match(s, pos)
    # a letter in single quotes ("'B'") is a token; a quote inside a word ("don't", "I'm") is not
    quoted = pos > 0 and s[pos - 1] in "'‘’" and (pos == 1 or not _ascii_alnum(s[pos - 2]))
    if not m or (pos > 0 and (_ascii_alnum(s[pos - 1]) or (s[pos - 1] in "'’" and not quoted))):
        return None
    opened, letter, closed = m.group(1), m.group(2), m.group(3)
    end = m.end()
    nxt = s[end : end + 1]
    closing_quote = (quoted or pos == 0) and nxt in ("'", "’") and not _ascii_alnum(s[end + 1 : end + 2] or " ")
    if nxt and (_ascii_alnum(nxt) or nxt == "-" or (nxt in "'’" and not closing_quote)):
        return None  # a word: "Bob", "I'm", "B-shaped"
    if nxt == "." and s[end + 1 : end + 2].isalpha():
        return None  # an abbreviation: "e.g.", "U.S."
    up = letter.upper()
    if opened and closed:
        return up, end, True
    rest = s[end:]
    if not nxt or not nxt.isspace() or re.match(r"[ \t]*(?:\r?\n|$)", rest):
        return up, end, False  # "B", "B.", "b)", "B: red", "**B**", "B\nbecause"
    word = rest.split(None, 1)[0]
    if not word[0].isalpha() or word.lower().strip(string.punctuation) in _CONNECTIVES:
        return up, end, False  # "B - red", "B (red)", "A is wrong", "B because"
    own = opts.norms.get(up)
    if own and (_norm(rest[: 4 * len(own) + 16]) + " ").startswith(own + " "):
        return up, end, False  # "B red" where red is option B
    return None  # the article "A cat", the pronoun "I think"


def _strip_decor(span: str) -> str:
    s = span.lstrip(_DECOR)
    m = _LEAD_WORD.match(s)
    return s[m.end() :].lstrip(_DECOR) if m else s


def _more_letters(s: str, end: int, opts: _Options) -> set[str]:
    """Letters listed after the one ending at ``end``: "A or B", "A, C and D", "A/B"."""
    found: set[str] = set()
    end += len(s[end:]) - len(s[end:].lstrip("'’*`"))  # a closing quote or emphasis: "'A' or 'B'", "**A** or B"
    while (m := _SEP.match(s, end)) and m.end() > end:
        start = m.end() + len(s[m.end():]) - len(s[m.end():].lstrip("'‘’*`"))
        r = _letter_at(s, start, opts)
        if r is None:
            break
        found.add(r[0])
        end = r[1] + len(s[r[1]:]) - len(s[r[1]:].lstrip("'’*`"))
    return found & set(opts.letters)


def _text_at_start(ns: str, opts: _Options) -> tuple[str | None, int]:
    """The option whose normalised text begins ``ns`` (longest wins): (letter or "?" if two tie, length)."""
    best: list[str] = []
    size = 0
    for letter, t in opts.norms.items():
        if t and (ns + " ").startswith(t + " "):
            if len(t) > size:
                best, size = [letter], len(t)
            elif len(t) == size:
                best.append(letter)
    if not best:
        return None, 0
    return (best[0] if len(best) == 1 else "?"), size


@dataclass(frozen=True)
class _Reading:
    letter: str | None
    kind: str  # "letter", "text", "ambiguous", "out_of_range", ""
    bracketed: bool = False


_NOTHING = _Reading(None, "")


def _read_short(span: str, opts: _Options, *, allow_text: bool = True) -> _Reading:
    """Read the answer at the start of a short span (a tag's content, the words after "answer is").

    An option's text there wins over an unbracketed letter ("A cat" is the option, not A)."""
    s = _strip_decor(span)
    if not s:
        return _NOTHING
    lr = _letter_at(s, 0, opts)
    if allow_text and not (lr and lr[2]):
        found = _read_text(_norm(s), opts)
        if found.kind:
            return found
    return _read_letter(s, lr, opts) if lr else _NOTHING


def _read_text(ns: str, opts: _Options) -> _Reading:
    """The option whose text opens the normalised span ``ns``; "red or blue" is ambiguous."""
    letter, size = _text_at_start(ns, opts)
    if letter is None:
        return _NOTHING
    if letter == "?":
        return _Reading(None, "ambiguous")
    m = re.match(r"\s+(?:or|and|vs|versus)\s+(?:(?:maybe|perhaps|possibly)\s+)?(.*)", ns[size:])
    if m:
        other, _ = _text_at_start(m.group(1), opts)
        other_letter = _letter_at(m.group(1), 0, opts)
        named = {other} | ({other_letter[0]} if other_letter else set())
        if named & (set(opts.letters) - {letter}):
            return _Reading(None, "ambiguous")
    return _Reading(letter, "text")


def _read_letter(s: str, lr: tuple[str, int, bool], opts: _Options) -> _Reading:
    """Check the letter token ``lr`` opening ``s`` against what follows it on the line."""
    letter, end, bracketed = lr
    if _more_letters(s, end, opts) - {letter}:
        return _Reading(None, "ambiguous")  # "A or B", "A, C and D"
    named, _ = _text_at_start(_norm(s[end : end + 200]), opts)
    if named is not None and named != letter and opts.norms.get(letter):
        return _Reading(None, "ambiguous")  # "A: blue" where blue is option B
    own = opts.texts.get(letter)
    own_text = r"(?i:" + r"\s+".join(map(re.escape, own.split())) + ")?" if own else ""
    skip = re.match(r"[ \t.:)\]-]*" + own_text + r"[ \t,;]*", s[end:])  # same line only
    nxt = _letter_at(s, end + skip.end(), opts) if skip.end() else None
    labelled = nxt is not None and (nxt[2] or bracketed or s[nxt[1] : nxt[1] + 1] in ".):"
                                    or s[nxt[1] - 1 : nxt[1]] in ")]")  # "A) red B) blue": closed labels
    if labelled and nxt[0] != letter and nxt[0] in opts.letters:
        return _Reading(None, "ambiguous")  # an echoed option list: "(A) red (B) blue"
    if letter not in opts.letters:
        return _Reading(None, "out_of_range")
    return _Reading(letter, "letter", bracketed)


# --- cues, refusals and prose --------------------------------------------------------------------
_CUE = re.compile(
    r"(?i)(?:"
    r"(?<![A-Za-z])(?:final|correct|right|best|true|my)?\s*(?:answer|option|choice)s?\s*"
    r"(?:is|would\s+be|should\s+be|will\s+be|must\s+be|=|:|-)\s*"
    r"(?:probably|likely|clearly|definitely|therefore)?"
    r"|(?<![A-Za-z])i\s*(?:would|'d|will|'ll)?\s*(?:choose|pick|select|go\s+with)"
    r"|正确(?:答案|选项)\s*(?:是|为|应为)?|答案\s*(?:应该是|应为|是|为)?|(?:故|应|所以)?选(?:择|项)?\s*(?:是|为)?"
    r")"
)
_REFUSAL = re.compile(
    r"(?i)(?:\bi\s*(?:am|'m)\s*(?:sorry|unable)|^sorry\b|\bi\s*(?:cannot|can't|can\s*not|could\s*not|"
    r"couldn't|do\s*not|don't)\s*(?:determine|answer|tell|help|provide|see|identify|say|know|be\s+sure)|"
    r"(?:cannot|can't|could\s*not)\s+be\s+(?:determined|answered)|\bunable\s+to\s+(?:determine|answer|tell)|"
    r"\bnot\s+enough\s+information|\binsufficient\s+information|\bas\s+an\s+ai\b|"
    r"\bnone\s+of\s+the\s+(?:above|options|choices)|"
    r"无法(?:确定|回答|判断)|抱歉)"
)
_OPTION_WORD = re.compile(r"(?i)(?:option|choice)\b")
_PAREN = re.compile(r"(?<![A-Za-z0-9])[(\[]\s*([A-Za-z])\s*[)\]]")
_LABEL = re.compile(r"(?i)(?<![A-Za-z])(?:option|choice)s?\s*[(\[]?\s*([A-Za-z])(?![A-Za-z0-9'’])")
_BARE = re.compile(r"(?<![A-Za-z0-9'’.\-])[A-Z](?![A-Za-z0-9'’\-])")


# a self-correction after an answer cue: "I choose A. Actually no, B." (no later cue to read)
_CORRECTION = re.compile(r"(?i)\b(?:actually|wait|on second thought|i mean|correction)\b|\bno\s*[,—–-]")


def _negated(s: str, start: int) -> bool:
    return bool(_NEGATED.search(s[max(0, start - 24) : start]))


def _mask_option_texts(s: str, opts: _Options) -> str:
    """Blank out option texts (as a dummy word) so that "Vitamin D" is not read as the letter D."""
    for t in sorted((t for t in opts.texts.values() if t), key=len, reverse=True):
        words = [re.escape(w) for w in t.split()]
        pattern = r"(?i)(?<![A-Za-z0-9])" + r"\s+".join(words) + r"(?![A-Za-z0-9])"
        s = re.sub(pattern, lambda m: "x" * len(m.group()), s)
    return s


def _text_mentions(s: str, opts: _Options) -> set[str]:
    """Letters whose option text occurs in ``s`` as whole words, not negated and not inside a longer match."""
    ns = _norm(s)
    spans = []
    for letter, t in opts.norms.items():
        if t:
            for m in re.finditer(r"(?<!\S)" + re.escape(t) + r"(?!\S)", ns):
                spans.append((m.start(), m.end(), letter))
    kept = set()
    for a, b, letter in spans:
        inside = any(a2 <= a and b <= b2 and (b2 - a2) > (b - a) for a2, b2, _ in spans)
        negated = re.search(r"(?:^|\s)(?:not|no|t|except|than|nor)\s*$", ns[:a])
        if not inside and not negated:
            kept.add(letter)
    return kept


def _prose(s: str, opts: _Options) -> ParsedChoice | None:
    """Letters mentioned anywhere: one distinct letter answers, two are ambiguous."""
    masked = _mask_option_texts(s, opts)
    found: list[tuple[str, str]] = []
    for method, pattern in (("parenthesised", _PAREN), ("option_label", _LABEL)):
        for m in pattern.finditer(masked):
            if m.group(1).upper() in opts.letters and not _negated(masked, m.start()):
                found.append((method, m.group(1).upper()))
    for m in _BARE.finditer(masked):
        r = _letter_at(masked, m.start(), opts)
        if r and r[0] in opts.letters and not _negated(masked, m.start()):
            found.append(("bare_letter", r[0]))
    found += [("option_text", x) for x in sorted(_text_mentions(s, opts))]
    letters = {x for _, x in found}
    if len(letters) > 1:
        return ParsedChoice(None, "ambiguous", s)
    return ParsedChoice(found[0][1], found[0][0], s) if found else None


def _letter_line(line: str, opts: _Options) -> str | None:
    """The letter of a line that holds nothing else ("B", "**(B)**", "B. blue" where blue is B), or None."""
    s = _strip_decor(line)
    r = _letter_at(s, 0, opts)
    if r is None or r[0] not in opts.letters:
        return None
    rest = _norm(s[r[1] :])
    return r[0] if not rest or rest == opts.norms.get(r[0]) else None


def _as_choice(r: _Reading, method: str, span: str) -> ParsedChoice:
    if r.kind in ("ambiguous", "out_of_range"):
        return ParsedChoice(None, r.kind, span)
    return ParsedChoice(r.letter, method, span)


def _parse_clean(s: str, opts: _Options, inside: frozenset[str] = frozenset()) -> ParsedChoice:
    if not any(ch.isalnum() for ch in s):
        return ParsedChoice(None, "empty", s)
    for method, content in (("answer_tag", answer_tag_content), ("boxed", boxed_content)):
        inner = None if method in inside else content(s)
        if inner is not None:  # the marked answer alone counts; "<answer>\boxed{B}</answer>" works too
            found = _parse_clean(inner, opts, inside | {"answer_tag", method})
            return replace(found, method=method) if found.letter else found
    for m in reversed(list(_CUE.finditer(s))):
        span = s[m.end() :].lstrip(_DECOR + " ").split("\n", 1)[0]
        r = _read_short(span, opts)
        if r.kind:
            tail = s[m.end() :]
            fix = _CORRECTION.search(tail)
            later = fix and set(_BARE.findall(tail[fix.end() :]) + _PAREN.findall(tail[fix.end() :]))
            if r.letter and later and {x.upper() for x in later} & (set(opts.letters) - {r.letter}):
                return ParsedChoice(None, "ambiguous", tail.strip())  # "I choose A. Actually no, B."
            return _as_choice(r, "answer_is", span.strip())
    lines = [ln.strip() for ln in s.splitlines() if ln.strip()]
    whole = _norm(s)
    lead = _read_short(s, opts, allow_text=False)
    last = _letter_line(lines[-1], opts) if len(lines) > 1 else None
    if lead.kind == "letter" and (lead.bracketed or whole not in {t for t in opts.norms.values() if t}):
        if last is not None and last != lead.letter:
            return ParsedChoice(None, "ambiguous", s)  # "A\n...\nB": the output changed its mind
        method = "parenthesised" if lead.bracketed else "leading_letter"
        if _OPTION_WORD.match(s.lstrip(_DECOR)):
            method = "option_label"
        return ParsedChoice(lead.letter, method, lines[0])
    if lead.kind == "ambiguous":
        return ParsedChoice(None, "ambiguous", lines[0])
    if last is not None:
        return ParsedChoice(last, "last_line", lines[-1])
    exact = [x for x, t in opts.norms.items() if t and t == whole]
    if len(exact) == 1:
        return ParsedChoice(exact[0], "option_text", s)
    if _REFUSAL.search(s):
        return ParsedChoice(None, "refusal", s)
    found = _prose(s, opts)
    if found is not None:
        return found
    return ParsedChoice(None, "out_of_range" if lead.kind == "out_of_range" else "none", s)


def parse_choice(text: str | None, options: Sequence[str] | Mapping[str, str] | None = None, *,
                 letters: str | Sequence[str] | None = None) -> ParsedChoice:
    """Read which option a model's output chooses.

    Parameters
    ----------
    text : str or None
        The decoded output. Full-width characters are folded (NFKC); ``<think>`` blocks and chat
        special tokens are removed first, so only the answer written after the reasoning counts.
    options : sequence of str, mapping, or None
        Option texts for letters A, B, C, ... in order (or for ``letters``), a mapping
        letter -> text, or None for the letters alone (``letters``, default A-D).
    letters : str or sequence of str, optional
        The option letters, when they are not A, B, C, ...

    Returns
    -------
    ParsedChoice
        ``letter`` among the options or None; ``method`` says which reading answered.

    Readings, first that answers wins: the last ``<answer>`` tag, then the last ``\\boxed{}``
    (their content read by the rules below); an answer cue ("the answer is", "Answer:", "the
    correct option is", "I choose", 答案, 选; the last cue that is followed by an answer);
    a letter opening the output ("B", "B.", "b)", "(B) red", "**B**", "B: red", "B because ...";
    a last line "B" that disagrees is ambiguous) or ending it on its own line; the whole output
    being one option's text; a refusal gives None; finally every mention in prose, "(B)",
    "option B", a capital letter standing alone, an option's text: one distinct option answers,
    two are ambiguous. Option texts are matched whole-word after SQuAD normalisation; the longest
    wins ("dark red" over "red"), and an option text that begins with a letter word ("A cat", "I")
    is read as text, not as that letter, unless the letter is bracketed. "A cat" and "I think"
    are the article and the pronoun, not letters; "not A" is not a mention of A.

    What it does not prove: a letter is what the output names, not what the model believes; a
    scorer should report the unparsed outputs beside accuracy.

    Examples
    --------
    >>> parse_choice("The answer is (B).")
    ParsedChoice(letter='B', method='answer_is', text='(B).')
    >>> parse_choice("<think>A? no.</think>\\n**C**").letter
    'C'
    >>> parse_choice("dark red", ["red", "dark red"]).letter
    'B'
    >>> parse_choice("A cat", ["A dog", "A cat"]).letter
    'B'
    >>> parse_choice("A or B").method
    'ambiguous'
    >>> parse_choice("I'm sorry, I cannot determine this from the image.").method
    'refusal'
    >>> parse_choice("答案：Ｄ").letter
    'D'
    """
    opts = _resolve_options(options, letters)
    return _parse_clean(clean_output(text), opts)
