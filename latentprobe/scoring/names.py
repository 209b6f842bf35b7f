"""Scorers by name (:func:`scorer_from_name`), the old first-word rule as a scorer, and a scorer's
fingerprint (:func:`scorer_config`) for resumable sweeps."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from latentprobe.fingerprint import callable_fingerprint, source_digest
from latentprobe.scoring._text import ScoringError
from latentprobe.scoring.scorers import CallableScorer, ChoiceScorer, ExactScorer, NumericScorer, Score, Scorer
from latentprobe.scoring.vsp import VspPlanScorer

__all__ = ["SCORER_NAMES", "FirstWordScorer", "scorer_config", "scorer_from_name"]


class FirstWordScorer:
    """The first word of the answer against the first word of the gold, lower-cased.

    The rule the analyses used as ``match="first_word"``: both texts are lower-cased and split on
    whitespace, and the first words are compared as they are (punctuation kept). An empty answer
    scores None (unparseable), where the old rule scored it wrong. In :func:`latentprobe.causal.z_to_y`
    a flip then compares the first answer token only, as before.

    Examples
    --------
    >>> FirstWordScorer().score("Red, I think", "red")
    Score(correct=False, parsed='red,', method='first_word')
    >>> FirstWordScorer().score("Circle is the shape", "circle")
    Score(correct=True, parsed='circle', method='first_word')
    >>> FirstWordScorer().score("  ", "red")
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
        if not isinstance(gold, str):
            where = "" if example is None else f" (example {example!r:.40})"
            raise ScoringError(f"gold {gold!r:.60}{where} must be a string; pass the reference answer text.")
        words = str(answer or "").lower().split()
        if not words:
            return Score(None, None, "empty")
        gold_words = gold.lower().split()
        return Score(bool(gold_words) and words[0] == gold_words[0], words[0], "first_word")


_BY_NAME: dict[str, Callable[..., Any]] = {
    "choice": ChoiceScorer, "numeric": NumericScorer, "exact": ExactScorer, "first_word": FirstWordScorer,
    "vsp_plan": VspPlanScorer,
}
#: The names :func:`scorer_from_name` knows.
SCORER_NAMES: tuple[str, ...] = tuple(_BY_NAME)


def scorer_from_name(name_or_scorer: str | Scorer | Callable[..., Any] | None = "exact", **options: Any) -> Scorer:
    """A scorer from its name, a scorer, or a function.

    Parameters
    ----------
    name_or_scorer : str, Scorer, callable or None
        ``"choice"`` (:class:`ChoiceScorer`), ``"numeric"`` (:class:`NumericScorer`), ``"exact"``
        (:class:`ExactScorer`, also for None), ``"first_word"`` (:class:`FirstWordScorer`), ``"vsp_plan"``
        (:class:`~latentprobe.scoring.vsp.VspPlanScorer`: the gold is the VSP map); an
        object with a ``score(answer, gold, example)`` method, returned as it is; or a function
        ``fn(answer, gold, example) -> bool | None`` (None: unparseable), wrapped in
        :class:`CallableScorer`.
    **options
        Keyword arguments of the named scorer's class (``options_by_example=``, ``letters=`` for
        "choice", ``tol=`` for "numeric"); only with a name.

    Returns
    -------
    Scorer

    Raises
    ------
    ScoringError
        An unknown name, options the scorer does not take, options given with a scorer object, or
        anything else.

    Examples
    --------
    >>> scorer_from_name("choice").score("The answer is (B).", "B")
    Score(correct=True, parsed='B', method='answer_is')
    >>> scorer_from_name("numeric", tol=0.5).score("about 3.2", 3)
    Score(correct=True, parsed='3.2', method='last_number')
    >>> type(scorer_from_name(None)).__name__
    'ExactScorer'
    >>> scorer_from_name(lambda a, g, ex: a == g).score("x", "x").correct
    True
    """
    if name_or_scorer is None:
        name_or_scorer = "exact"
    if isinstance(name_or_scorer, str):
        key = name_or_scorer.strip().lower().replace("-", "_")
        if key not in _BY_NAME:
            raise ScoringError(
                f"scorer={name_or_scorer!r} is not a scorer name; use one of {', '.join(map(repr, SCORER_NAMES))}, "
                f"a Scorer object, or a function (answer, gold, example) -> bool | None."
            )
        try:
            return _BY_NAME[key](**options)
        except TypeError as exc:
            raise ScoringError(
                f"scorer={name_or_scorer!r} does not take the options {sorted(options)} ({exc}); see "
                f"help({_BY_NAME[key].__name__}) for its parameters."
            ) from None
    if options:
        raise ScoringError(
            f"options {sorted(options)} are given with a scorer object ({type(name_or_scorer).__name__}); options "
            f"go with a scorer name only, e.g. scorer_from_name('choice', letters='ABCDE')."
        )
    if callable(getattr(name_or_scorer, "score", None)):
        return name_or_scorer  # type: ignore[return-value]
    if callable(name_or_scorer):
        return CallableScorer(name_or_scorer)
    raise ScoringError(
        f"scorer={name_or_scorer!r:.60} ({type(name_or_scorer).__name__}) is not a scorer; use a name "
        f"({', '.join(map(repr, SCORER_NAMES))}), an object with score(answer, gold, example), or a function "
        f"(answer, gold, example) -> bool | None."
    )


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=repr)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def scorer_config(scorer: Scorer) -> dict[str, Any]:
    """A JSON-ready description of a scorer that changes when its rule does.

    Built-in scorers by their settings (``options_by_example`` by a hash of its entries, or by its
    code when it is a function); a :class:`CallableScorer` by its function's code; any other
    scorer by its class, its class's source code and what it reads (its methods, globals and attributes). The causal analyses
    put it in their sweep fingerprint, so a sweep folder scored one way is not resumed another way.

    Parameters
    ----------
    scorer : Scorer
        A scorer.

    Returns
    -------
    dict[str, Any]

    Examples
    --------
    >>> scorer_config(ExactScorer())
    {'type': 'exact'}
    >>> scorer_config(NumericScorer(tol=0.5))
    {'type': 'numeric', 'tol': 0.5}
    >>> scorer_config(ChoiceScorer()) == scorer_config(ChoiceScorer(options_by_example={"q1": ["x", "y"]}))
    False
    """
    if isinstance(scorer, ExactScorer) and type(scorer) is ExactScorer:
        return {"type": "exact"}
    if isinstance(scorer, FirstWordScorer) and type(scorer) is FirstWordScorer:
        return {"type": "first_word"}
    if type(scorer) is VspPlanScorer:
        return {"type": "vsp_plan"}
    if type(scorer) is NumericScorer:
        return {"type": "numeric", "tol": scorer.tol}
    if type(scorer) is ChoiceScorer:
        obe = scorer.options_by_example
        if obe is None:
            options: Any = None
        elif isinstance(obe, Mapping):
            options = {"entries": _digest(sorted(([str(k), v] for k, v in obe.items()), key=lambda kv: kv[0]))}
        else:
            options = callable_fingerprint(obe, what="ChoiceScorer options_by_example")
        letters = None if scorer.letters is None else list(scorer.letters)
        return {"type": "choice", "letters": letters, "options_by_example": options}
    if type(scorer) is CallableScorer:
        return {"type": "callable", "fn": callable_fingerprint(scorer.fn, what="scoring function")}
    cls = type(scorer)  # its class's code and its state, with what they read (latentprobe.callables)
    return {"type": f"{cls.__module__}.{cls.__qualname__}", "class_source": source_digest(cls),
            "state": callable_fingerprint(scorer, what="scorer")}
