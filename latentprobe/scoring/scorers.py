"""Scorers: one answer and its gold in, a :class:`Score` out; unparseable answers kept apart.

A scorer never turns an answer it cannot read into a wrong answer: ``Score.correct is None``
marks it, :func:`score_answers` keeps it in the table, and :func:`summarize_scores` reports
accuracy over the parsed answers next to the number and fraction that could not be parsed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from latentprobe.scoring._text import (
    ScoringError,
    _gold_number,
    clean_output,
    normalize_answer,
    parse_number_with_method,
)
from latentprobe.scoring.choice import _norm, _read_short, _resolve_options, parse_choice
from latentprobe.validate import number

__all__ = [
    "SCORE_COLUMNS", "CallableScorer", "ChoiceScorer", "ExactScorer", "NumericScorer", "Score", "ScoreSummary",
    "Scorer", "score_answers", "summarize_scores",
]

#: Columns of the table :func:`score_answers` returns, in order.
SCORE_COLUMNS = ("answer", "gold", "parsed", "method", "correct")


@dataclass(frozen=True)
class Score:
    """One scored answer.

    ``correct`` is True/False, or None when the answer could not be read (empty, refusal,
    ambiguous, no number...); ``parsed`` is what was read (a letter, a number, normalised text);
    ``method`` says how (the parser's method name).

    Parameters
    ----------
    correct : bool | None
        True/False, or None when the answer could not be read (empty, refusal, ambiguous, no number...).
    parsed : str | None
        What was read (a letter, a number, normalised text).
    method : str
        How (the parser's method name).
    """

    correct: bool | None
    parsed: str | None
    method: str


@runtime_checkable
class Scorer(Protocol):
    """Anything with ``score(answer, gold, example=None) -> Score``."""

    def score(self, answer: str | None, gold: str | float | Sequence[str], example: object = None) -> Score:
        """Score one answer.

        Parameters
        ----------
        answer : str | None
            The decoded answer text.
        gold : str | float | Sequence[str]
            The gold answer (text, a number, or several accepted texts).
        example : object
            The example (its id or its record), for per-example options and messages.

        Returns
        -------
        Score
        """
        ...


def _where(example: Any) -> str:
    if isinstance(example, Mapping) and "example_id" in example:
        example = example["example_id"]
    return "" if example is None else f" (example {example!r:.40})"


class ChoiceScorer:
    """Score multiple-choice answers with :func:`parse_choice`.

    A gold is a letter ("B", "(b)") or an option's text. An answer naming a letter outside the
    options scores False (it answered, wrongly); empty, refused, ambiguous or unreadable answers
    score None.

    Parameters
    ----------
    options_by_example : mapping, callable or None
        Each example's options: a mapping example id -> options (the key is ``example`` itself,
        or ``example["example_id"]`` when ``example`` is a mapping with one, as the causal
        analyses pass it), a callable ``example -> options``, or None (an ``example`` that is a
        mapping with an "options" key supplies them, e.g. an InputSet's ``meta`` entry; otherwise
        the letters alone).
    letters : str, optional
        Option letters when they are not A, B, C, ... (A-D when there are no option texts).

    Examples
    --------
    >>> scorer = ChoiceScorer(options_by_example={"q1": ["red", "blue"]})
    >>> scorer.score("The answer is (B).", "B", example="q1")
    Score(correct=True, parsed='B', method='answer_is')
    >>> scorer.score("red", "blue", example="q1")
    Score(correct=False, parsed='A', method='option_text')
    >>> scorer.score("A or B", "B", example="q1")
    Score(correct=None, parsed=None, method='ambiguous')
    """

    def __init__(self, options_by_example: Mapping[Any, Any] | Callable[[Any], Any] | None = None,
                 letters: str | Sequence[str] | None = None) -> None:
        self.options_by_example = options_by_example
        self.letters = letters
        if not (options_by_example is None or isinstance(options_by_example, Mapping) or callable(options_by_example)):
            raise ScoringError(
                f"options_by_example must be a mapping example -> options, a callable example -> options, or None; "
                f"got {type(options_by_example).__name__}."
            )

    def options_for(self, example: object = None) -> Any:
        """The options of ``example`` as :func:`parse_choice` takes them.

        Parameters
        ----------
        example : object
            As in :meth:`Scorer.score`.

        Returns
        -------
        sequence of str, mapping or None
        """
        obe = self.options_by_example
        if isinstance(obe, Mapping):
            key = example["example_id"] if isinstance(example, Mapping) and "example_id" in example else example
            try:
                return obe[key]
            except (KeyError, TypeError):
                raise ScoringError(
                    f"options_by_example has no entry for example {key!r:.40} ({len(obe)} entries); pass "
                    f"example= with a key of options_by_example (e.g. the example id) to score()."
                ) from None
        if obe is not None:
            return obe(example)
        if isinstance(example, Mapping) and "options" in example:
            return example["options"]
        return None

    def gold_letter(self, gold: str | float | Sequence[str], example: object = None) -> str:
        """The gold as an option letter; a :class:`ScoringError` if it names none of the options.

        Parameters
        ----------
        gold : str | float | Sequence[str]
            A letter or an option's text.
        example : object
            As in :meth:`Scorer.score`.

        Returns
        -------
        str
        """
        opts = _resolve_options(self.options_for(example), self.letters, where=_where(example))
        if isinstance(gold, str):
            g = clean_output(gold).strip().strip("()[]. ").upper()
            if g in opts.letters:
                return g
            hits = [x for x, t in opts.norms.items() if t and t == _norm(gold)]
            if len(hits) == 1:
                return hits[0]
            r = _read_short(gold, opts)
            if r.kind in ("letter", "text") and r.letter:
                return r.letter
        raise ScoringError(
            f"gold {gold!r:.60}{_where(example)} is not among the options {', '.join(opts.letters)}; give the "
            f"gold as one of these letters or as one option's exact text."
        )

    def score(self, answer: str | None, gold: str | float | Sequence[str], example: object = None) -> Score:
        """Score one answer (see the class docstring).

        Parameters
        ----------
        answer, gold, example
            As in :meth:`Scorer.score`.

        Returns
        -------
        Score
        """
        options = self.options_for(example)
        gold_letter = self.gold_letter(gold, example)
        p = parse_choice(answer, options, letters=self.letters)
        if p.letter is not None:
            return Score(p.letter == gold_letter, p.letter, p.method)
        if p.method == "out_of_range":
            return Score(False, None, p.method)
        return Score(None, None, p.method)


class NumericScorer:
    """Score numeric answers by their last number (:func:`parse_number`) within ``tol`` of the gold.

    Parameters
    ----------
    tol : float
        Absolute tolerance.

    Examples
    --------
    >>> NumericScorer().score("so she pays 3 * 4 = 12 dollars", "#### 12")
    Score(correct=True, parsed='12', method='last_number')
    >>> NumericScorer(tol=0.01).score("about 3.14", 3.14159)
    Score(correct=True, parsed='3.14', method='last_number')
    >>> NumericScorer().score("I don't know", 7)
    Score(correct=None, parsed=None, method='none')
    """

    def __init__(self, tol: float = 1e-6) -> None:
        number(tol, "tol", minimum=0, where="NumericScorer", hint="e.g. 1e-6; 0 compares exactly", error=ScoringError)
        self.tol = float(tol)

    def score(self, answer: str | None, gold: str | float | Sequence[str], example: object = None) -> Score:
        """Score one answer (see the class docstring).

        Parameters
        ----------
        answer, gold, example
            As in :meth:`Scorer.score`.

        Returns
        -------
        Score
        """
        g = _gold_number(gold, _where(example))
        value, method = parse_number_with_method(answer)
        if value is None:
            return Score(None, None, method)
        text = str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
        return Score(abs(value - g) <= self.tol, text, method)


class ExactScorer:
    """Score open answers by SQuAD-style exact match (:func:`normalize_answer`); an empty answer is None.

    Examples
    --------
    >>> ExactScorer().score("<answer>The Eiffel Tower.</answer>", "eiffel tower")
    Score(correct=True, parsed='eiffel tower', method='exact')
    >>> ExactScorer().score("<think>...</think>", "paris")
    Score(correct=None, parsed=None, method='empty')
    """

    def score(self, answer: str | None, gold: str | float | Sequence[str], example: object = None) -> Score:
        """Score one answer (see the class docstring).

        Parameters
        ----------
        answer, gold, example
            As in :meth:`Scorer.score`.

        Returns
        -------
        Score
        """
        golds = [gold] if isinstance(gold, str) else list(gold) if isinstance(gold, Sequence) else None
        if not golds or not all(isinstance(g, str) for g in golds):
            raise ScoringError(
                f"gold {gold!r:.60}{_where(example)} must be a string or a non-empty sequence of strings; "
                f"pass the reference answer text."
            )
        p = normalize_answer(answer)
        if not p:
            return Score(None, None, "empty")
        return Score(any(p == normalize_answer(g) for g in golds), p, "exact")


class CallableScorer:
    """Score with a user function ``fn(answer_text, gold, example) -> bool | None`` (None: unparseable).

    Parameters
    ----------
    fn : Callable[[Any, Any, Any], bool | None]
        ``fn(answer_text, gold, example) -> bool | None``.

    Examples
    --------
    >>> yes_no = CallableScorer(lambda a, g, ex: None if not a else a.strip().lower().startswith(g))
    >>> yes_no.score("Yes, it is.", "yes")
    Score(correct=True, parsed='Yes, it is.', method='callable')
    >>> yes_no.score("", "yes")
    Score(correct=None, parsed=None, method='callable')
    """

    def __init__(self, fn: Callable[[Any, Any, Any], bool | None]) -> None:
        if not callable(fn):
            raise ScoringError(f"fn must be callable as fn(answer_text, gold, example) -> bool | None, got {fn!r:.60}.")
        self.fn = fn

    def score(self, answer: str | None, gold: str | float | Sequence[str], example: object = None) -> Score:
        """Score one answer (see the class docstring).

        Parameters
        ----------
        answer, gold, example
            As in :meth:`Scorer.score`.

        Returns
        -------
        Score
        """
        out = self.fn(answer, gold, example)
        if out is None:
            return Score(None, None, "callable")
        if not isinstance(out, (bool, np.bool_)):
            raise ScoringError(
                f"the scoring function {getattr(self.fn, '__name__', self.fn)!r} returned {out!r:.40} "
                f"({type(out).__name__}){_where(example)}; it must return True, False or None (unparseable)."
            )
        return Score(bool(out), None if answer is None else str(answer), "callable")


def score_answers(scorer: Scorer, answers: Sequence[Any], golds: Sequence[Any],
                  examples: Sequence[Any] | None = None) -> pd.DataFrame:
    """Score every answer; one row per item with columns ``answer, gold, parsed, method, correct``.

    ``correct`` is a nullable boolean column: ``<NA>`` marks answers that could not be parsed.
    ``examples`` (e.g. example ids) is passed to ``scorer.score`` item by item.

    Parameters
    ----------
    scorer : Scorer
        The scorer.
    answers : Sequence[Any]
        Decoded answers.
    golds : Sequence[Any]
        Gold answers, aligned.
    examples : Sequence[Any] | None
        The examples, aligned (passed to the scorer).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SCORE_COLUMNS`.

    Examples
    --------
    >>> frame = score_answers(ChoiceScorer(), ["(A)", "B is right", "I'm sorry"], ["A", "C", "A"])
    >>> frame[["parsed", "method", "correct"]]
      parsed          method  correct
    0      A   parenthesised     True
    1      B  leading_letter    False
    2   None         refusal     <NA>
    """
    if not callable(getattr(scorer, "score", None)):
        raise ScoringError(f"scorer must have a score(answer, gold, example) method, got {type(scorer).__name__}.")
    answers, golds = list(answers), list(golds)
    examples = [None] * len(answers) if examples is None else list(examples)
    if not len(answers) == len(golds) == len(examples):
        raise ScoringError(
            f"answers, golds and examples must have one entry per item; got {len(answers)} answers, {len(golds)} "
            f"golds and {len(examples)} examples."
        )
    rows = []
    for i, (a, g, ex) in enumerate(zip(answers, golds, examples)):
        s = scorer.score(a, g, ex)
        if not isinstance(s, Score):
            raise ScoringError(
                f"{type(scorer).__name__}.score returned {type(s).__name__} for item {i}; it must return a Score."
            )
        rows.append((a, g, s.parsed, s.method, s.correct))
    frame = pd.DataFrame(rows, columns=list(SCORE_COLUMNS), dtype=object)
    frame["correct"] = frame["correct"].astype("boolean")
    return frame


@dataclass(frozen=True)
class ScoreSummary:
    """Accuracy over parsed answers, with the unparseable ones counted, never folded in.

    ``accuracy = n_correct / n_parsed`` (NaN when nothing parsed); ``accuracy_all = n_correct / n``
    counts unparseable answers as wrong, a lower bound.

    What it does not prove: two conditions whose unparseable fractions differ are not compared by
    ``accuracy`` alone (an intervention that makes the model refuse its hard items raises it);
    report ``n_unparseable`` beside it, and ``accuracy_all`` as the bound.

    Parameters
    ----------
    n : int
        Answers scored.
    n_parsed : int
        Answers read.
    n_correct : int
        Answers read and correct.
    n_unparseable : int
        Answers not read.
    frac_unparseable : float
        ``n_unparseable / n``.
    accuracy : float
        ``n_correct / n_parsed``.
    accuracy_all : float
        ``n_correct / n``.
    """

    n: int
    n_parsed: int
    n_correct: int
    n_unparseable: int
    frac_unparseable: float
    accuracy: float
    accuracy_all: float


def summarize_scores(frame: pd.DataFrame) -> ScoreSummary:
    """Summarise a :func:`score_answers` table.

    Parameters
    ----------
    frame : pd.DataFrame
        A :func:`score_answers` table.

    Returns
    -------
    ScoreSummary

    Examples
    --------
    >>> frame = score_answers(NumericScorer(), ["12", "so 7", "no idea"], [12, 8, 3])
    >>> s = summarize_scores(frame)
    >>> s.accuracy, s.n_parsed, s.n_unparseable, round(s.frac_unparseable, 3)
    (0.5, 2, 1, 0.333)
    """
    columns = list(frame.columns) if isinstance(frame, pd.DataFrame) else None
    if columns is None or "correct" not in columns:
        raise ScoringError(
            f"frame must be the DataFrame score_answers returns (columns {', '.join(SCORE_COLUMNS)}); got "
            f"{type(frame).__name__}" + (f" with columns {columns}" if columns is not None else "") + "."
        )
    try:
        correct = frame["correct"].astype("boolean")
    except (TypeError, ValueError):
        raise ScoringError(
            "frame['correct'] must hold True, False or missing (unparseable) values; rebuild it with score_answers."
        ) from None
    n = int(len(correct))
    parsed = correct.notna()
    n_parsed = int(parsed.sum())
    n_correct = int(correct[parsed].astype(bool).sum())
    return ScoreSummary(
        n=n, n_parsed=n_parsed, n_correct=n_correct, n_unparseable=n - n_parsed,
        frac_unparseable=(n - n_parsed) / n if n else math.nan,
        accuracy=n_correct / n_parsed if n_parsed else math.nan,
        accuracy_all=n_correct / n if n else math.nan,
    )
