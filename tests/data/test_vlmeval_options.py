"""VLMEvalKit's option encodings: letter columns, ``multi-choice options`` (MME-RealWorld), ``options`` (PuzzleVQA)."""

from __future__ import annotations

import pytest

from latentprobe.data import DataError, load_benchmark, to_input_set
from latentprobe.scoring import ChoiceScorer, score_answers, summarize_scores

from . import builders as B


def test_mme_realworld_lite_in_the_vlmevalkit_tsv_layout_loads_with_its_options_and_scores(tmp_path):
    path = B.mme_realworld_lite_tsv(tmp_path)
    exs = load_benchmark("vlmevalkit-tsv", path)
    assert [e.example_id for e in exs] == ["vlmevalkit-tsv/0", "vlmevalkit-tsv/1", "vlmevalkit-tsv/2"]
    assert exs[0].options == ("10", "20", "7", "0", "The image does not feature the number.")
    assert exs[1].options[:2] == ("11", "21")
    assert [e.gold for e in exs] == ["B", "C", "E"] and [e.gold_text for e in exs][:2] == ["20", "7"]
    assert exs[1].category == "Reasoning/Monitoring/count" and exs[1].attributes["l2-category"] == "Reasoning"
    assert "multi-choice options" not in exs[0].attributes  # read as options, not kept twice
    assert len(exs[0].images) == 1
    # the choice scorer reads each example's options from the InputSet's meta, as the study does
    inputs = to_input_set(exs, prompt="{question}\n{options}")
    assert "A. 10\nB. 20\nC. 7" in inputs.prompts[0]
    answers = ["The answer is (B).", "21", "I cannot tell."]  # right letter; a wrong option's text; unreadable
    frame = score_answers(ChoiceScorer(), answers, list(inputs.gold), examples=list(inputs.meta))
    assert frame["correct"].astype(object).where(frame["correct"].notna(), None).tolist() == [True, False, None]
    assert frame["parsed"].tolist()[:2] == ["B", "B"]
    summary = summarize_scores(frame)
    assert (summary.n_correct, summary.n_unparseable) == (1, 1)


def test_the_full_mme_realworld_table_text_form_and_letter_columns(tmp_path):
    text = "The choices are listed below:\n(A) red\n(B) dark\nblue\n(C) green"
    rows = [{"index": 1, "question": "Colour?", "multi-choice options": text, "answer": "B"},
            {"index": 2, "question": "Shape?", "multi-choice options": text, "A": "square", "B": "circle",
             "answer": "A"}]
    exs = load_benchmark("vlmevalkit-tsv", B.write_tsv(tmp_path / "t.tsv", rows))
    assert exs[0].options == ("red", "dark\nblue", "green")
    assert exs[1].options == ("square", "circle")  # letter columns win, as in VLMEvalKit's build_prompt
    assert exs[1].attributes["multi-choice options"] == text


def test_puzzlevqa_options_list_and_text_answers(tmp_path):
    rows = [{"index": 1, "question": "Which?", "options": "['3', '5', '7']", "answer": "5"},
            {"index": 2, "question": "Which?", "options": "['red', 'blue']", "answer": "A"}]
    exs = load_benchmark("vlmevalkit-tsv", B.write_tsv(tmp_path / "p.tsv", rows))
    assert exs[0].options == ("3", "5", "7") and exs[0].gold == "B" and exs[0].attributes["answer_text"] == "5"
    assert exs[1].gold == "A" and "answer_text" not in exs[1].attributes


@pytest.mark.parametrize("cell, message", [
    ("['(A) x', '(C) y']", r"row 0 \(index 1\), field 'multi-choice options': choice 1 '\(C\) y' should start "
                           r"with '\(B\)'"),
    ("['(A) x', (B) y]", r"field 'multi-choice options': looks like a list but does not parse"),
    ("no options here", r"field 'multi-choice options': no '\(A\) text' option lines"),
])
def test_malformed_multi_choice_options_name_row_and_field(tmp_path, cell, message):
    rows = [{"index": 1, "question": "Q?", "multi-choice options": cell, "answer": "A"}]
    with pytest.raises(DataError, match=message):
        load_benchmark("vlmevalkit-tsv", B.write_tsv(tmp_path / "m.tsv", rows))


def test_an_answer_that_is_neither_letter_nor_option_is_refused(tmp_path):
    rows = [{"index": 1, "question": "Q?", "options": "['3', '5']", "answer": "9"}]
    with pytest.raises(DataError, match=r"field 'answer': '9' is not one of the row's option letters \['A', 'B'\] "
                                        "nor one option's text"):
        load_benchmark("vlmevalkit-tsv", B.write_tsv(tmp_path / "m.tsv", rows))
