"""Answer scoring that reads what models really write.

Multiple choice (:func:`parse_choice`, :class:`ChoiceScorer`), numbers by the last-number rule
CODI uses for GSM8k (:func:`parse_number`, :class:`NumericScorer`), SQuAD-style exact match for
open answers (:func:`normalize_answer`, :class:`ExactScorer`), and any rule of your own
(:class:`CallableScorer`); :func:`scorer_from_name` turns a name ("choice", "numeric", "exact",
"first_word") or a function into a scorer, and :func:`advise_scorer` says which one the data call for.
Answers that cannot be read score ``correct=None``. The analyses (:mod:`latentprobe.causal`,
:mod:`latentprobe.behavioural`) count them as wrong and report how many in ``n_unparseable``;
:func:`summarize_scores` gives both readings (``accuracy`` over the parsed answers, ``accuracy_all``
with the unreadable ones as wrong) and the count.

Examples
--------
>>> from latentprobe.scoring import ChoiceScorer, score_answers, summarize_scores
>>> frame = score_answers(ChoiceScorer(), ["Answer: (B)", "<answer>C</answer>", ""], ["B", "D", "A"])
>>> summarize_scores(frame).accuracy, summarize_scores(frame).n_unparseable
(0.5, 1)
"""

from latentprobe.scoring._text import (
    ScoringError,
    clean_output,
    exact_match,
    normalize_answer,
    numeric_match,
    parse_number,
)
from latentprobe.scoring.advice import ScorerAdvice, advise_scorer
from latentprobe.scoring.choice import ParsedChoice, parse_choice
from latentprobe.scoring.names import SCORER_NAMES, FirstWordScorer, scorer_config, scorer_from_name
from latentprobe.scoring.vsp import VspOutcome, VspPlanScorer, extract_boxed, parse_vsp_plan, simulate_vsp, vsp_gold
from latentprobe.scoring.scorers import (
    SCORE_COLUMNS,
    CallableScorer,
    ChoiceScorer,
    ExactScorer,
    NumericScorer,
    Score,
    Scorer,
    ScoreSummary,
    score_answers,
    summarize_scores,
)

__all__ = [
    "SCORE_COLUMNS", "SCORER_NAMES", "CallableScorer", "ChoiceScorer", "ExactScorer", "FirstWordScorer",
    "NumericScorer", "ParsedChoice", "Score", "ScoreSummary", "Scorer", "ScorerAdvice", "ScoringError", "VspOutcome",
    "VspPlanScorer", "advise_scorer", "clean_output", "exact_match", "extract_boxed", "parse_vsp_plan", "simulate_vsp",
    "vsp_gold",
    "normalize_answer", "numeric_match", "parse_choice", "parse_number", "score_answers", "scorer_config",
    "scorer_from_name", "summarize_scores",
]

# doctest.testmod(latentprobe.scoring) runs the examples of everything re-exported here.
__test__ = {name: globals()[name] for name in __all__ if name not in ("SCORE_COLUMNS", "SCORER_NAMES")}
