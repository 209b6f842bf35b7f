"""advise_scorer: the advice follows what the data hold."""

from __future__ import annotations

from latentprobe.data import Example, load_benchmark, to_input_set
from latentprobe.scoring import advise_scorer


def test_options_in_an_unread_column_call_for_choice_not_exact():
    ex = Example("t/1", "How many?", "B", attributes={"multi-choice options": "['(A) 1', '(B) 2']"})
    advice = advise_scorer([ex])
    assert advice.scorer == "choice" and advice.field == "multi-choice options"
    assert "'multi-choice options'" in advice.reason and "vlmevalkit-tsv" in advice.reason


def test_input_set_meta_is_read_like_examples():
    exs = [Example("t/1", "Which?\n(A) red\n(B) blue", "A"), Example("t/2", "Which?\nA. x\nB. y", "B")]
    inputs = to_input_set(exs, prompt="{question}")
    advice = advise_scorer(inputs.meta, inputs.gold)
    assert advice.scorer == "choice" and "question text" in advice.reason and advice.field is None


def test_letters_without_options_numbers_and_text():
    letters = advise_scorer([Example("t/1", "Which shape?", "C"), Example("t/2", "Which?", "A")])
    assert letters.scorer == "exact" and "option letters" in letters.reason
    assert advise_scorer([Example("g/1", "2+2?", "4"), Example("g/2", "Cost?", "1,250")]).scorer == "numeric"
    assert advise_scorer([Example("p/1", "Is Tom a wumpus?", "Tom is a wumpus.")]).scorer == "exact"
    assert advise_scorer([Example("c/1", "Q?", "B", options=("x", "y"))]).scorer == "choice"


def test_mme_realworld_tsv_read_as_published_needs_no_advice(tmp_path):
    from data import builders as B

    exs = load_benchmark("vlmevalkit-tsv", B.mme_realworld_lite_tsv(tmp_path))
    assert advise_scorer(exs).scorer == "choice" and all(e.options for e in exs)
