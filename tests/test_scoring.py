"""Tests for latentprobe.scoring: choice parsing, numbers, normalisation, scorers, summaries, errors."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latentprobe.errors import InputError, LatentProbeError
from latentprobe.scoring import (
    SCORE_COLUMNS,
    CallableScorer,
    ChoiceScorer,
    ExactScorer,
    NumericScorer,
    ParsedChoice,
    Score,
    Scorer,
    ScoreSummary,
    ScoringError,
    exact_match,
    normalize_answer,
    numeric_match,
    parse_choice,
    parse_number,
    score_answers,
    summarize_scores,
)

COLORS = ["red", "blue", "green", "yellow"]
SHADES = ["red", "dark red", "blue", "light blue"]
ANIMALS = ["A dog", "A cat", "A bird", "A fish"]
PRONOUNS = ["I", "you", "we"]
VITAMINS = ["Vitamin C", "Vitamin D", "Vitamin A", "Vitamin E"]
YES_NO = ["yes", "no"]
BY_LETTER = {"A": "red", "B": "blue", "C": "green"}
NINE = [f"choice {i}" for i in range(9)]  # letters A-I

# (output, options, expected letter, expected method)
CHOICE_CASES = [
    # -- bare letters and their usual decorations
    ("B", None, "B", "leading_letter"),
    ("B.", None, "B", "leading_letter"),
    ("  C  ", None, "C", "leading_letter"),
    ("(B)", None, "B", "parenthesised"),
    ("[D]", None, "D", "parenthesised"),
    ("b)", None, "B", "leading_letter"),
    ("b", None, "B", "leading_letter"),
    ("a.", None, "A", "leading_letter"),
    ("**B**", None, "B", "leading_letter"),
    ("**B. blue**", COLORS, "B", "leading_letter"),
    ("`C`", None, "C", "leading_letter"),
    ('"A"', None, "A", "leading_letter"),
    ("B: blue", COLORS, "B", "leading_letter"),
    ("B - blue", COLORS, "B", "leading_letter"),
    ("B blue", COLORS, "B", "leading_letter"),
    ("(C) green", COLORS, "C", "parenthesised"),
    ("D) yellow", COLORS, "D", "leading_letter"),
    ("B. The sky in the picture is blue, so A and C are out.", COLORS, "B", "leading_letter"),
    ("B because the sky is blue.", COLORS, "B", "leading_letter"),
    ("A is correct: the apple is red.", COLORS, "A", "leading_letter"),
    ("B\n\nExplanation: the car is blue.", COLORS, "B", "leading_letter"),
    ("B<|im_end|>", None, "B", "leading_letter"),
    ("C</s>", None, "C", "leading_letter"),
    ("Option B", None, "B", "option_label"),
    ("Option C.", COLORS, "C", "option_label"),
    # -- answer cues
    ("The answer is B", None, "B", "answer_is"),
    ("The answer is (B).", None, "B", "answer_is"),
    ("The answer is: C", None, "C", "answer_is"),
    ("the answer is b.", None, "B", "answer_is"),
    ("Answer: (C) red", ["blue", "green", "red"], "C", "answer_is"),
    ("Answer: A", None, "A", "answer_is"),
    ("ANSWER: D", None, "D", "answer_is"),
    ("**Answer:** B", None, "B", "answer_is"),
    ("### Final answer\nC", None, "C", "last_line"),
    ("Final answer: C", None, "C", "answer_is"),
    ("the correct option is C", None, "C", "answer_is"),
    ("The correct answer is option B, the blue one.", COLORS, "B", "answer_is"),
    ("So the best choice is D.", None, "D", "answer_is"),
    ("The answer is **B**.", None, "B", "answer_is"),
    ("The answer is blue.", COLORS, "B", "answer_is"),
    ("The answer is a cat", ["dog", "cat"], "B", "answer_is"),
    ("The answer would be A because the apple is red.", COLORS, "A", "answer_is"),
    ("I would choose option C.", None, "C", "answer_is"),
    ("I'd go with B.", None, "B", "answer_is"),
    ("Looking at the image, the car is blue. Therefore, the answer is B.", COLORS, "B", "answer_is"),
    ("A seems likely at first, but the answer is B.", COLORS, "B", "answer_is"),
    ("Let me think. The answer is not A. The answer is C.", None, "C", "answer_is"),
    ("答案：B", None, "B", "answer_is"),
    ("答案是 B", None, "B", "answer_is"),
    ("答案是C。", None, "C", "answer_is"),
    ("选 B", None, "B", "answer_is"),
    ("故选D", None, "D", "answer_is"),
    ("正确答案是（A）", None, "A", "answer_is"),
    ("B是正确的", None, "B", "leading_letter"),
    ("我认为选项C最合适", None, "C", "answer_is"),
    # -- tags, boxes, think blocks
    ("<answer>B</answer>", None, "B", "answer_tag"),
    ("<answer> (C) </answer>", None, "C", "answer_tag"),
    ("<answer>blue</answer>", COLORS, "B", "answer_tag"),
    ("I compared the colours. <answer>D</answer>", None, "D", "answer_tag"),
    ("<answer>A</answer> wait, no <answer>C</answer>", None, "C", "answer_tag"),
    ("<answer>B", None, "B", "answer_tag"),
    ("\\boxed{B}", None, "B", "boxed"),
    ("The final answer is $\\boxed{\\text{C}}$.", None, "C", "boxed"),
    ("\\boxed{(A)}", None, "A", "boxed"),
    ("<answer>\\boxed{D}</answer>", None, "D", "answer_tag"),
    ("<answer></answer>", None, None, "empty"),
    ("<answer>I cannot tell</answer>", None, None, "refusal"),
    ("<think>It could be A. No, the sky is blue.</think>\nB", COLORS, "B", "leading_letter"),
    ("<think>Option A is red... the answer is A?</think> The answer is C.", None, "C", "answer_is"),
    ("<think>A or B?</think><answer>B</answer>", None, "B", "answer_tag"),
    ("the apple is red so A... no wait.</think>\n\nD", None, "D", "leading_letter"),
    ("B<think>let me double-check", None, "B", "leading_letter"),
    ("<think>I am still thinking about A and B", None, None, "empty"),
    ("<THINK>A</THINK>C", None, "C", "leading_letter"),
    # -- option text
    ("red", COLORS, "A", "option_text"),
    ("Blue.", COLORS, "B", "option_text"),
    ("It is green.", COLORS, "C", "option_text"),
    ("The car in the picture is yellow", COLORS, "D", "option_text"),
    ("yes", YES_NO, "A", "option_text"),
    ("No, it is not.", YES_NO, "B", "option_text"),
    ("blue", BY_LETTER, "B", "option_text"),
    # -- full-width and lower-case
    ("Ｂ", None, "B", "leading_letter"),
    ("（B）", None, "B", "parenthesised"),
    ("答案：Ｃ", None, "C", "answer_is"),
    ("Answer：ｄ", None, "D", "answer_is"),
    ("c", None, "C", "leading_letter"),
    # -- prose mentions
    ("I think it's B.", None, "B", "bare_letter"),
    ("I think (C) is right.", None, "C", "parenthesised"),
    ("Probably option D, since the others are too small.", None, "D", "option_label"),
    ("Let me think step by step.\nThe sky is blue.\n\nB", COLORS, "B", "last_line"),
    ("It must be B", None, "B", "bare_letter"),
    # -- empty, refusals, ambiguity: never a guess
    ("", None, None, "empty"),
    ("   \n ", None, None, "empty"),
    (None, None, None, "empty"),
    ("...", None, None, "empty"),
    ("<think>A</think>", None, None, "empty"),
    ("I cannot determine the answer from the image.", None, None, "refusal"),
    ("I'm sorry, but I can't help with that.", None, None, "refusal"),
    ("Sorry, the image is too blurry.", COLORS, None, "refusal"),
    ("The colour cannot be determined from this picture.", COLORS, None, "refusal"),
    ("There is not enough information to choose.", None, None, "refusal"),
    ("无法确定", None, None, "refusal"),
    ("A or B", None, None, "ambiguous"),
    ("A and C", None, None, "ambiguous"),
    ("a or b", None, None, "ambiguous"),
    ("A/B", None, None, "ambiguous"),
    ("The answer is A or B.", None, None, "ambiguous"),
    ("The answer is A, C and D.", None, None, "ambiguous"),
    ("Both (A) and (C) fit.", None, None, "ambiguous"),
    ("red or blue", COLORS, None, "ambiguous"),
    ("The answer is red or blue.", COLORS, None, "ambiguous"),
    ("It is red, or maybe blue.", COLORS, None, "ambiguous"),
    ("A\n\nHmm, actually\nB", None, None, "ambiguous"),
    ("The answer is B or maybe C.", None, None, "ambiguous"),
    ("Both A and B", None, None, "ambiguous"),
    ("(A) red (B) blue (C) green (D) yellow\nAnswer:", COLORS, None, "ambiguous"),
    ("A. red B. blue C. green D. yellow", COLORS, None, "ambiguous"),
    ("(B) blue, because (A) is red.", COLORS, "B", "parenthesised"),
    ("B. A is wrong because the car is not red.", COLORS, "B", "leading_letter"),
    ("Neither A nor B; it is C.", None, "C", "bare_letter"),
    ("B. blue\nA. red is incorrect", COLORS, "B", "leading_letter"),
    ("B\n\nI double-checked:\n**(B)**", None, "B", "leading_letter"),
    ("The answer is $B$.", None, "B", "answer_is"),
    ("Let me look at each option.\nA. red is too warm.\nD. yellow is too bright.\nSo:\nB. blue", COLORS, "B",
     "last_line"),
    ("Options A and C are wrong; B is right.", None, None, "ambiguous"),
    ("The weather is nice today.", None, None, "none"),
    ("The answer is not A.", None, None, "none"),
    # -- adversarial: letter words inside option texts, article "a", pronoun "I"
    ("A cat", ANIMALS, "B", "option_text"),
    ("A dog.", ANIMALS, "A", "option_text"),
    ("The answer is A bird", ANIMALS, "C", "answer_is"),
    ("(A) dog", ANIMALS, "A", "parenthesised"),
    ("(A) cat", ANIMALS, None, "ambiguous"),  # the label says A (dog), the text says B (cat)
    ("A cat is sitting on the mat.", ["dog", "cat"], "B", "option_text"),
    ("a dog", ["cat", "dog"], "B", "option_text"),
    ("I", PRONOUNS, "A", "option_text"),
    ("We", PRONOUNS, "C", "option_text"),
    ("I think the answer is C.", None, "C", "answer_is"),
    ("I'm not sure, but I believe it is D.", None, "D", "bare_letter"),  # a hedge still answers
    ("I'm not sure.", None, None, "none"),
    ("I believe D.", None, "D", "bare_letter"),
    ("I", NINE, "I", "leading_letter"),
    ("I think so.", NINE, None, "none"),
    ("Vitamin D.", VITAMINS, "B", "option_text"),
    ("The answer is Vitamin A", VITAMINS, "C", "answer_is"),
    ("E.g. the cat on the left.", ["dog", "cat"], "B", "option_text"),
    # -- substrings: the longest match wins, two different full matches are ambiguous
    ("red", SHADES, "A", "option_text"),
    ("dark red", SHADES, "B", "option_text"),
    ("It is a dark red colour.", SHADES, "B", "option_text"),
    ("light blue", SHADES, "D", "option_text"),
    ("It is not red, it is dark red.", SHADES, "B", "option_text"),
    ("red and blue", SHADES, None, "ambiguous"),
    ("The jacket is dark red and the hat is light blue.", SHADES, None, "ambiguous"),
    ("Q: What colour is the car?\nA: blue", COLORS, None, "ambiguous"),
    ("B. red", SHADES, None, "ambiguous"),
    ("B. A cat", ANIMALS, "B", "leading_letter"),
    ("It is definitely not green.", COLORS, None, "none"),
    ("The sky is blue and the grass is green.", COLORS, None, "ambiguous"),
    ("Hmm, A? Actually it's C.", None, None, "ambiguous"),
    # -- more realistic chat outputs
    ("The image shows a red apple on a table. The correct answer is A.", COLORS, "A", "answer_is"),
    ("Based on the image, the answer is:\n\nB. blue", COLORS, "B", "answer_is"),
    ("Answer:\nC", None, "C", "answer_is"),
    ("The answer is (A) red, not (B) blue.", COLORS, "A", "answer_is"),
    ("A. red\nB. blue\nC. green\nD. yellow\nAnswer: D", COLORS, "D", "answer_is"),
    ("B) blue is the answer", COLORS, "B", "leading_letter"),
    ("The correct choice would be (D).", None, "D", "answer_is"),
    ("The answer is A.\nThe answer is B.", None, "B", "answer_is"),
    ("The image shows...\n\n**Answer: B**", None, "B", "answer_is"),
    ("The car is blue (B).", COLORS, "B", "parenthesised"),
    ("I'll go with the red one.", COLORS, "A", "answer_is"),
    ("The answer is: **(C) green**", COLORS, "C", "answer_is"),
    ("Answer: (B)<|eot_id|>", None, "B", "answer_is"),
    ("答案：B，因为天空是蓝色的。", COLORS, "B", "answer_is"),
    ("None of the above", ["cat", "none of the above"], "B", "option_text"),
    ("The answer is 4", None, None, "none"),
    # -- letters outside the options
    ("E", None, None, "out_of_range"),
    ("The answer is E.", None, None, "out_of_range"),
    ("(E)", None, None, "out_of_range"),
    ("C", YES_NO, None, "out_of_range"),
    ("F.", None, None, "out_of_range"),
    ("The answer is (E)", {"A": "x", "B": "y", "C": "z", "D": "w", "E": "v"}, "E", "answer_is"),
    # -- the issue's list, item by item (see ISSUE_CASES below)
    ("答案是B", None, "B", "answer_is"),
    ("<think>A looks right... no, the car is blue, so not A.</think> B", COLORS, "B", "leading_letter"),
    ("Ｂ", COLORS, "B", "leading_letter"),
    ("**B**", COLORS, "B", "leading_letter"),
    ("\\boxed{B}", COLORS, "B", "boxed"),
    ("green", COLORS, "C", "option_text"),
    ("<answer>B</answer>", COLORS, "B", "answer_tag"),
    # Decision: "A and C are both wrong, B" names three letters. The parser reads a letter as
    # eliminated only after a negation ("not A", "except A", "neither A nor C"); reading "are both
    # wrong" as one would take a grammar of predicates ("A and C are both right, B" reads the same
    # way), so the output is ambiguous (unparseable, counted apart), never a guessed B. With an
    # answer cue it is read: "A and C are both wrong; the answer is B".
    ("A and C are both wrong, B", None, None, "ambiguous"),
    ("A and C are both wrong, B.", COLORS, None, "ambiguous"),
    ("A and C are both wrong; the answer is B", None, "B", "answer_is"),
    ("Not A and not C, so B.", None, "B", "bare_letter"),
    # single quotes around a letter; an echoed list with closing brackets only
    ("The answer is 'B'.", COLORS, "B", "answer_is"),
    ("Answer: 'C'", None, "C", "answer_is"),
    ("The answer is ‘D’", None, "D", "answer_is"),
    ("'A' or 'B'", COLORS, None, "ambiguous"),
    ("**A** or **B**", COLORS, None, "ambiguous"),
    ("A) red B) blue C) green D) yellow", ["red", "blue", "green", "yellow"], None, "ambiguous"),
    ("B's colour is the answer", None, None, "none"),
    # a self-correction after a cue, with no later cue: ambiguous; a re-check that keeps the letter: read
    ("I choose A. Actually no, B.", COLORS, None, "ambiguous"),
    ("Answer: A. Wait, let me double check: yes, A.", COLORS, "A", "answer_is"),
    # letters inside words are not letters
    ("Basically, yes.", None, None, "none"),
    ("OK", None, None, "none"),
    ("ABC", None, None, "none"),
    ("Because the car is red.", None, None, "none"),
    # "a" as an article next to an option text that starts with it
    ("It is a blue car.", COLORS, "B", "option_text"),
    ("a cat", ["a dog", "a cat"], "B", "option_text"),
    # lower case and a refusal with options
    ("the answer is (c)", COLORS, "C", "answer_is"),
    ("d", COLORS, "D", "leading_letter"),
    ("I cannot determine the colour from the image.", COLORS, None, "refusal"),
    ("The answer is F.", COLORS, None, "out_of_range"),
    ("E", COLORS, None, "out_of_range"),
    ("A or B", COLORS, None, "ambiguous"),
]

# Every output the issue names, and what it must read (options COLORS unless said otherwise).
ISSUE_CASES = {
    "(B)": "B", "B.": "B", "The answer is B": "B", "Answer: (C) red": "C", "green": "C", "<answer>B</answer>": "B",
    "<think>A looks right... no, the car is blue, so not A.</think> B": "B", "**B**": "B", "\\boxed{B}": "B",
    "答案：B": "B", "答案是B": "B", "Ｂ": "B", "A or B": None, "A and C are both wrong, B": None, "": None,
    "I cannot determine the answer from the image.": None, "Basically, yes.": None, "c": "C", "E": None,
}


@pytest.mark.parametrize(("output", "options", "letter", "method"), CHOICE_CASES)
def test_parse_choice_table(output, options, letter, method):
    got = parse_choice(output, options)
    assert (got.letter, got.method) == (letter, method), f"{output!r} with {options!r} -> {got}"


def test_the_table_is_large_and_varied():
    assert len(CHOICE_CASES) >= 80  # at least 60 realistic outputs, counted
    assert len({(out, repr(opts)) for out, opts, *_ in CHOICE_CASES}) == len(CHOICE_CASES)
    methods = {m for *_, m in CHOICE_CASES}
    assert {"answer_tag", "boxed", "answer_is", "leading_letter", "parenthesised", "option_text", "empty",
            "refusal", "ambiguous", "none", "out_of_range"} <= methods


@pytest.mark.parametrize(("output", "letter"), list(ISSUE_CASES.items()))
def test_the_issues_list(output, letter):
    options = ["blue", "green", "red"] if output == "Answer: (C) red" else COLORS
    got = parse_choice(output, options)
    assert got.letter == letter, f"{output!r} -> {got}"
    if letter is None:  # no letter when the output is empty, refuses, names two options or one outside them
        assert got.method in {"empty", "refusal", "ambiguous", "out_of_range", "none"}


def test_the_issues_list_is_in_the_table():
    tabled = {out for out, *_ in CHOICE_CASES}
    missing = [out for out in ISSUE_CASES if out not in tabled and out not in {"green", "c", "I cannot determine the "
                                                                                "answer from the image."}]
    assert not missing


def test_parsed_choice_is_frozen_and_keeps_the_span():
    got = parse_choice("<think>hmm</think> The answer is (B) blue.", COLORS)
    assert got == ParsedChoice("B", "answer_is", "(B) blue.")
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.letter = "A"  # type: ignore[misc]


def test_custom_letters():
    assert parse_choice("The answer is E", letters="ABCDE").letter == "E"
    assert parse_choice("Z", ["x", "y"], letters="YZ").letter == "Z"
    assert parse_choice("(y)", ["x", "y"], letters="YZ").letter == "Y"
    assert parse_choice("A", ["x", "y"], letters="YZ").method == "out_of_range"
    assert parse_choice("b", {"a": "x", "b": "y"}).letter == "B"


KNOWN_METHODS = {"answer_tag", "boxed", "answer_is", "leading_letter", "parenthesised", "last_line", "option_label",
                 "option_text", "bare_letter", "empty", "refusal", "ambiguous", "out_of_range", "none"}


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("ABCDEIabcde ()[].:,*\n<>/answerthinkisor答案选Ｂ1")), max_size=60),
       options=st.sampled_from([None, COLORS, SHADES, ANIMALS, PRONOUNS, BY_LETTER]))
def test_parse_choice_never_raises_and_never_invents_a_letter(text, options):
    got = parse_choice(text, options)
    allowed = set("ABCD") if options is None else set(options) if isinstance(options, dict) else set("ABCD"[: len(options)])
    assert got.method in KNOWN_METHODS
    assert (got.letter is None) == (got.method in {"empty", "refusal", "ambiguous", "out_of_range", "none"})
    assert got.letter is None or got.letter in allowed


@settings(max_examples=200, deadline=None)
@given(n=st.integers(-10**9, 10**9), cents=st.integers(0, 99), style=st.sampled_from(["{:,}", "{}"]))
def test_parse_number_reads_formatted_numbers(n, cents, style):
    text = style.format(n)
    assert parse_number(f"So the total is {text} dollars.") == n
    assert parse_number(f"Step 1: 3 + 4 = 7.\n#### {text}.{cents:02d}") == pytest.approx(
        math.copysign(abs(n) + cents / 100, n) if n else cents / 100
    )


def test_duplicate_option_texts_are_ambiguous():
    assert parse_choice("red", ["red", "red", "blue"]).method == "ambiguous"


# --- numbers --------------------------------------------------------------------------------------
NUMBER_CASES = [
    ("42", 42.0),
    ("The answer is 42.", 42.0),
    ("She has 3 apples and buys 1,250 more: 1,253 apples.", 1253.0),
    ("1,234,567", 1234567.0),
    ("x = -3", -3.0),
    ("The temperature dropped to -12.5 degrees", -12.5),
    ("3-4", 4.0),
    ("It costs $1,000.50.", 1000.5),
    ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72", 72.0),
    ("#### 1,080", 1080.0),
    ("\\boxed{12} since 12 - 9 = 3", 12.0),
    ("<answer>7</answer> (checked with 2 + 5)", 7.0),
    ("<think>maybe 5</think> 6", 6.0),
    ("１２３", 123.0),
    ("1, 2, 3", 3.0),
    ("0.5", 0.5),
    ("Speed of light 3e8 m/s", 3e8),
    ("It is 50%.", 50.0),
    ("5 apples + 3 apples = 8 apples", 8.0),
    ("The result is \u22127", -7.0),
    ("no digits here", None),
    ("", None),
    (None, None),
    ("<think>42</think>", None),
    ("forty-two", None),
]


@pytest.mark.parametrize(("text", "expected"), NUMBER_CASES)
def test_parse_number(text, expected):
    got = parse_number(text)
    assert got == expected if expected is None else got == pytest.approx(expected)


def test_numeric_match():
    assert numeric_match("so the total is 1,000", "#### 1000") is True
    assert numeric_match("so the total is 999", 1000) is False
    assert numeric_match("3.14", math.pi, tol=0.01) is True
    assert numeric_match("3.14", math.pi) is False
    assert numeric_match("no number", 1) is None
    assert numeric_match("7", 7, tol=0) is True


# --- normalisation --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Eiffel Tower", "eiffel tower"),
        ("  an   apple!! ", "apple"),
        ("<think>blah</think><answer>Paris</answer>", "paris"),
        ("New-York, USA.", "new york usa"),
        ("\\boxed{\\text{Blue}}", "blue"),
        ("Ｐａｒｉｓ。", "paris"),
        ("A", ""),
        (None, ""),
        ("theater", "theater"),
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_exact_match():
    assert exact_match("the  Eiffel tower.", "Eiffel Tower")
    assert exact_match("Lyon", ["Paris", "Lyon"])
    assert not exact_match("Paris, France", "Paris")
    assert not exact_match("", "")
    assert not exact_match(None, "x")


# --- scorers --------------------------------------------------------------------------------------
def test_choice_scorer_with_options_by_example():
    scorer = ChoiceScorer(options_by_example={"q1": COLORS, "q2": ANIMALS})
    assert isinstance(scorer, Scorer)
    assert scorer.score("Answer: (B)", "B", example="q1") == Score(True, "B", "answer_is")
    assert scorer.score("A cat", "B", example="q2") == Score(True, "B", "option_text")
    assert scorer.score("red", "blue", example="q1") == Score(False, "A", "option_text")
    assert scorer.score("(b)", "(B)", example="q1").correct is True
    assert scorer.score("I'm sorry", "A", example="q1") == Score(None, None, "refusal")
    assert scorer.score("E", "A", example="q1") == Score(False, None, "out_of_range")


def test_choice_scorer_option_sources():
    by_callable = ChoiceScorer(options_by_example=lambda ex: ex["opts"])
    assert by_callable.score("green", "C", example={"opts": COLORS}).correct is True
    from_example = ChoiceScorer()
    assert from_example.score("dark red", "B", example={"options": SHADES}).correct is True
    letters_only = ChoiceScorer(letters="ABCDE")
    assert letters_only.score("(E)", "E").correct is True


def test_numeric_exact_and_callable_scorers():
    assert NumericScorer().score("so 3 * 4 = 12", "#### 12") == Score(True, "12", "last_number")
    assert NumericScorer().score("\\boxed{2.5}", 2.5) == Score(True, "2.5", "boxed")
    assert NumericScorer().score("", 1) == Score(None, None, "empty")
    assert NumericScorer().score("1e999", 1) == Score(False, "inf", "last_number")
    assert NumericScorer(tol=0).score("-0.25", "-1/4 = -0.25") == Score(True, "-0.25", "last_number")
    assert ExactScorer().score("Paris.", ["paris", "Paris, France"]).correct is True
    assert ExactScorer().score("Lyon", "paris") == Score(False, "lyon", "exact")
    seen = []

    def fn(answer, gold, example):
        seen.append(example)
        return None if answer is None else np.bool_(answer.strip() == gold)

    scorer = CallableScorer(fn)
    assert scorer.score(" yes", "yes", example=3) == Score(True, " yes", "callable")
    assert scorer.score(None, "yes").correct is None
    assert seen == [3, None]


def test_score_answers_and_summary_count_unparseable_separately():
    answers = ["Answer: (B)", "<answer>C</answer>", "", "A or B", "I'm sorry", "E", "red"]
    golds = ["B", "D", "A", "A", "A", "A", "red"]
    frame = score_answers(ChoiceScorer(options_by_example={i: COLORS for i in range(7)}), answers, golds,
                          examples=range(7))
    assert list(frame.columns) == list(SCORE_COLUMNS)
    assert frame["method"].tolist() == ["answer_is", "answer_tag", "empty", "ambiguous", "refusal",
                                        "out_of_range", "option_text"]
    assert frame["correct"].isna().tolist() == [False, False, True, True, True, False, False]
    summary = summarize_scores(frame)
    assert summary == ScoreSummary(n=7, n_parsed=4, n_correct=2, n_unparseable=3, frac_unparseable=3 / 7,
                                   accuracy=0.5, accuracy_all=2 / 7)


def test_summary_of_nothing_parsed_is_nan_not_zero():
    frame = score_answers(NumericScorer(), ["none", ""], [1, 2])
    s = summarize_scores(frame)
    assert (s.n, s.n_parsed, s.n_unparseable) == (2, 0, 2)
    assert math.isnan(s.accuracy) and s.accuracy_all == 0.0 and s.frac_unparseable == 1.0
    empty = summarize_scores(score_answers(ExactScorer(), [], []))
    assert empty.n == 0 and math.isnan(empty.accuracy)


def test_score_answers_frame_is_tidy():
    frame = score_answers(ExactScorer(), ["Paris", None], ["paris", "rome"])
    assert frame["correct"].dtype == "boolean"
    assert frame["parsed"].tolist() == ["paris", None]
    assert isinstance(frame, pd.DataFrame) and len(frame) == 2


# --- typed errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: parse_choice("B", "ABCD"), "options"),
        (lambda: parse_choice("B", 3), "options"),
        (lambda: parse_choice("B", []), "empty"),
        (lambda: parse_choice("B", [["x"]]), "non-text option"),
        (lambda: parse_choice("B", ["a"] * 27), "letters"),
        (lambda: parse_choice("B", letters="AB1"), "letters"),
        (lambda: parse_choice("B", letters="ABA"), "repeats"),
        (lambda: parse_choice("B", {"A": "x", "BB": "y"}), "keys of options"),
        (lambda: parse_choice("B", {"A": "x", "a": "y"}), "repeats"),
        (lambda: parse_choice(b"B"), "decode"),
        (lambda: parse_choice(["B"]), "string"),
        (lambda: ChoiceScorer().score("B", "E"), "gold 'E'"),
        (lambda: ChoiceScorer(options_by_example={"q1": COLORS}).score("B", "purple", example="q1"), "purple"),
        (lambda: ChoiceScorer(options_by_example={"q1": COLORS}).score("B", "B", example="q9"), "q9"),
        (lambda: ChoiceScorer(options_by_example=5), "options_by_example"),
        (lambda: NumericScorer(tol=-1), "tol"),
        (lambda: NumericScorer().score("3", "three", example="ex7"), "ex7"),
        (lambda: numeric_match("3", None), "gold"),
        (lambda: numeric_match("3", 3, tol=float("nan")), "tol"),
        (lambda: ExactScorer().score("x", 3), "gold"),
        (lambda: exact_match("x", None), "gold"),
        (lambda: CallableScorer("not callable"), "callable"),
        (lambda: CallableScorer(lambda a, g, e: "yes").score("x", "y", example="q4"), "q4"),
        (lambda: score_answers(ExactScorer(), ["a", "b"], ["a"]), "one entry per item"),
        (lambda: score_answers(object(), ["a"], ["a"]), "score"),
        (lambda: summarize_scores(pd.DataFrame({"x": [1]})), "columns"),
        (lambda: summarize_scores([1, 2]), "DataFrame"),
        (lambda: summarize_scores(pd.DataFrame({"correct": ["yes"]})), "True, False or missing"),
    ],
)
def test_typed_errors_name_the_problem(call, fragment):
    with pytest.raises(ScoringError, match=None) as info:
        call()
    assert isinstance(info.value, InputError) and isinstance(info.value, LatentProbeError)
    assert fragment in str(info.value)


# --- scorers by name ------------------------------------------------------------------------------
def test_scorer_from_name_builds_each_scorer():
    from latentprobe.scoring import SCORER_NAMES, FirstWordScorer, VspPlanScorer, scorer_from_name

    assert SCORER_NAMES == ("choice", "numeric", "exact", "first_word", "vsp_plan")
    assert isinstance(scorer_from_name("vsp_plan"), VspPlanScorer)
    assert isinstance(scorer_from_name("choice"), ChoiceScorer)
    assert isinstance(scorer_from_name("Numeric"), NumericScorer)
    assert isinstance(scorer_from_name("exact"), ExactScorer)
    assert isinstance(scorer_from_name(None), ExactScorer)
    assert isinstance(scorer_from_name("first-word"), FirstWordScorer)
    assert scorer_from_name("numeric", tol=0.5).tol == 0.5
    assert scorer_from_name("choice", letters="ABCDE").score("(E)", "E").correct is True
    own = ExactScorer()
    assert scorer_from_name(own) is own
    wrapped = scorer_from_name(lambda a, g, ex: None if not a else a.lower() == g)
    assert isinstance(wrapped, CallableScorer) and wrapped.score("YES", "yes").correct is True


def test_first_word_scorer_is_the_old_rule():
    from latentprobe.scoring import FirstWordScorer

    s = FirstWordScorer()
    assert s.score("Red square", "red") == Score(True, "red", "first_word")
    assert s.score("  RED\n", "red circle") == Score(True, "red", "first_word")
    assert s.score("blue", "red").correct is False
    assert s.score("", "red") == Score(None, None, "empty")
    assert s.score(None, "red").correct is None


def test_choice_scorer_reads_options_by_example_id_from_a_mapping_example():
    by_id = ChoiceScorer(options_by_example={"q1": COLORS})
    assert by_id.score("blue", "B", example={"example_id": "q1", "category": "x"}).correct is True
    from_meta = ChoiceScorer()
    assert from_meta.score("The answer is (B).", "blue", example={"example_id": "q2", "options": COLORS}).correct
    with pytest.raises(ScoringError, match="'q9'"):
        by_id.score("B", "B", example={"example_id": "q9"})


def test_scorer_config_tells_scorers_apart():
    from latentprobe.scoring import FirstWordScorer, scorer_config

    configs = [scorer_config(s) for s in (ExactScorer(), FirstWordScorer(), NumericScorer(), NumericScorer(tol=1),
                                          ChoiceScorer(), ChoiceScorer(letters="ABCDE"),
                                          ChoiceScorer(options_by_example={"q": COLORS}),
                                          ChoiceScorer(options_by_example={"q": SHADES}),
                                          CallableScorer(lambda a, g, e: a == g), CallableScorer(lambda a, g, e: a != g))]
    assert len({repr(c) for c in configs}) == len(configs)
    assert scorer_config(ChoiceScorer(options_by_example={"q": COLORS})) == scorer_config(
        ChoiceScorer(options_by_example={"q": list(COLORS)}))

    class Mine:
        def __init__(self, k):
            self.k = k

        def score(self, answer, gold, example=None):
            return Score(None, None, "mine")

    assert scorer_config(Mine(1)) != scorer_config(Mine(2))
    assert scorer_config(Mine(1)) == scorer_config(Mine(1))


@pytest.mark.parametrize(
    ("arg", "options", "fragment"),
    [
        ("fuzzy", {}, "scorer='fuzzy' is not a scorer name"),
        ("exact", {"tol": 1}, "does not take the options ['tol']"),
        (ExactScorer(), {"tol": 1}, "options go with a scorer name"),
        (3, {}, "is not a scorer"),
    ],
)
def test_scorer_from_name_errors(arg, options, fragment):
    from latentprobe.scoring import scorer_from_name

    with pytest.raises(ScoringError) as info:
        scorer_from_name(arg, **options)
    assert isinstance(info.value, LatentProbeError) and fragment in str(info.value)
    assert "'choice'" in str(info.value) or fragment != "is not a scorer"
