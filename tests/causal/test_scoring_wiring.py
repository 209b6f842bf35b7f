"""The causal analyses score answers through a scorer: chat-style answers read with scorer="choice",
unreadable answers kept NaN in rows and counted as wrong (and apart) in summaries, the scorer in
the sweep fingerprint, and match= gone."""

from __future__ import annotations

import dataclasses
import string

import numpy as np
import pandas as pd
import pytest

from latentprobe import toy
from latentprobe.causal import decompose, summarize_mediation, summarize_z_to_y, z_to_y
from latentprobe.interventions import Zero
from latentprobe.scoring import ChoiceScorer, ScoringError
from latentprobe.sweep import SweepConfigMismatch
from latentprobe.toy.shapes import ANSWERS

from causal.helpers import NB

OPTIONS = list(ANSWERS)
REFUSAL = "I'm sorry, I cannot determine the answer."


def _chat(text: str) -> str:
    if text.startswith("The answer is (") or text == REFUSAL:  # a trace passed through (a reused clean control)
        return text
    word = text.strip().lower()
    return f"The answer is ({string.ascii_uppercase[OPTIONS.index(word)]})." if word in OPTIONS else REFUSAL


class ChatRunner:
    """The toy runner, answering as a chat model would ("The answer is (B)."); with ``refuse_zero``
    every answer under a ``Zero`` intervention is a refusal."""

    def __init__(self, runner, refuse_zero: bool = True):
        self._runner = runner
        self._refuse_zero = refuse_zero

    def __getattr__(self, name):
        return getattr(self._runner, name)

    def _chat(self, trace, refuse: bool = False):
        examples = [dataclasses.replace(e, answer_text=REFUSAL if refuse else _chat(e.answer_text)) for e in trace]
        return dataclasses.replace(trace, examples=tuple(examples))

    def run(self, *args, **kwargs):
        return self._chat(self._runner.run(*args, **kwargs))

    def intervene(self, trace, intervention=None, **kwargs):
        out = self._runner.intervene(trace, intervention, **kwargs)
        return self._chat(out, refuse=self._refuse_zero and isinstance(intervention, Zero))

    def intervene_many(self, trace, interventions, **kwargs):
        out = self._runner.intervene_many(trace, interventions, **kwargs)
        return {name: self._chat(t, refuse=self._refuse_zero and isinstance(interventions.get(name), Zero))
                for name, t in out.items()}


@pytest.fixture(scope="module")
def tm():
    return toy.load("mediated")


@pytest.fixture(scope="module")
def chat_setup(tm):
    plain_inputs = toy.toy_inputs(tm.examples("test", 8))
    inputs = plain_inputs.replace(meta=tuple({**m, "options": OPTIONS} for m in plain_inputs.meta))
    runner = ChatRunner(tm.runner())
    trace = runner.run(**inputs.run_kwargs(), max_new_tokens=8, progress=False)
    plain = tm.runner().run(**inputs.run_kwargs(), max_new_tokens=8, progress=False)
    return runner, trace, inputs, plain


def _zy(runner, trace, inputs, scorer, **kw):
    return z_to_y(runner, trace, {"zero": Zero()}, modes=["redecode"], gold=inputs, scorer=scorer, n_boot=NB,
                  progress=False, **kw)


def _metric(res, intervention, metric, mode="redecode"):
    s = res.summary
    return s[(s.intervention == intervention) & (s["mode"] == mode) & (s.metric == metric)].iloc[0]


def test_chat_answers_are_read_by_choice_and_not_by_exact(chat_setup):
    runner, trace, inputs, plain = chat_setup
    assert all(a.startswith("The answer is (") for a in trace.answers)
    truth = np.array([a.strip().lower() == g for a, g in zip(plain.answers, inputs.gold)], dtype=float)
    assert truth.mean() > 0.5  # the trained toy answers; the chat wrapper only rewrites the words

    choice = _zy(runner, trace, inputs, "choice")
    control = choice.rows[choice.rows.intervention == "none"]
    assert set(control.parse_method) == {"answer_is"}
    assert list(control.parsed) == [_chat(a)[15] for a in plain.answers]
    assert _metric(choice, "none", "accuracy", "run").estimate == pytest.approx(truth.mean())
    assert _metric(choice, "none", "accuracy").estimate == pytest.approx(truth.mean())
    assert _metric(choice, "none", "accuracy").n_unparseable == 0

    exact = _zy(runner, trace, inputs, "exact")
    rows = exact.rows[exact.rows.intervention == "none"]
    assert (rows.correct == 0.0).all() and set(rows.parse_method) == {"exact"}
    assert _metric(exact, "none", "accuracy").estimate == 0.0
    assert _metric(exact, "none", "accuracy", "run").estimate == 0.0


def test_unreadable_answers_stay_nan_and_count_as_wrong(chat_setup):
    runner, trace, inputs, _ = chat_setup
    res = _zy(runner, trace, inputs, ChoiceScorer())  # options from inputs.meta["options"]
    zero = res.rows[res.rows.intervention == "zero"]
    assert zero.correct.isna().all() and set(zero.parse_method) == {"refusal"} and zero.parsed.isna().all()
    assert (zero.ref_parse_method == "answer_is").all()
    acc, change = _metric(res, "zero", "accuracy"), _metric(res, "zero", "accuracy_change")
    n = len(zero)
    assert (acc.estimate, acc.n, acc.n_unparseable) == (0.0, n, n)
    control = _metric(res, "none", "accuracy").estimate
    assert change.n == n and change.n_unparseable == n
    assert change.estimate == pytest.approx(-control)
    for metric in ("flip_rate", "kl"):
        assert _metric(res, "zero", metric).n_unparseable == 0


def test_the_scorer_is_part_of_the_sweep_fingerprint(chat_setup, tmp_path):
    runner, trace, inputs, _ = chat_setup
    first = _zy(runner, trace, inputs, "choice", out_dir=tmp_path)
    again = _zy(runner, trace, inputs, "choice", out_dir=tmp_path)  # resumes: nothing left to run
    pd.testing.assert_frame_equal(first.rows, again.rows)
    assert first.config["scorer"] == {"type": "choice", "letters": None, "options_by_example": None}
    with pytest.raises(SweepConfigMismatch, match="scorer"):
        _zy(runner, trace, inputs, "exact", out_dir=tmp_path)
    with pytest.raises(SweepConfigMismatch, match="scorer"):
        _zy(runner, trace, inputs, ChoiceScorer(options_by_example={i: OPTIONS for i in inputs.example_ids}),
            out_dir=tmp_path)


def test_match_is_gone_and_bad_scorers_or_golds_are_refused_before_work(chat_setup):
    runner, trace, inputs, _ = chat_setup
    with pytest.raises(TypeError, match="match"):
        z_to_y(runner, trace, gold=inputs, match="exact")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="match"):
        decompose(runner, inputs, toy.Counterfactual(seed=0), match="exact")  # type: ignore[call-arg]
    with pytest.raises(ScoringError, match="scorer='fuzzy'"):
        z_to_y(runner, trace, gold=inputs, scorer="fuzzy")
    bad_gold = inputs.replace(gold=("purple",) + tuple(inputs.gold[1:]))
    with pytest.raises(ScoringError, match="purple"):
        _zy(runner, trace, bad_gold, "choice")


def test_decompose_reads_chat_answers_like_the_plain_toy(tm, chat_setup):
    runner, _, inputs, _ = chat_setup
    kw = dict(n_boot=NB, progress=False, max_new_tokens=8)
    chat = decompose(ChatRunner(tm.runner(), refuse_zero=False), inputs, toy.Counterfactual(seed=0), scorer="choice",
                     **kw)
    plain = decompose(tm.runner(), inputs, toy.Counterfactual(seed=0), scorer="exact", **kw)
    assert set(chat.rows.parse_method) <= {"answer_is", "refusal"}
    assert (chat.rows.correct.fillna(0.0).to_numpy() == plain.rows.correct.fillna(0.0).to_numpy()).all()
    a, b = chat.summary.set_index("effect"), plain.summary.set_index("effect")
    for effect in ("TE", "NDE", "NIE", "mean_clean"):
        assert a.loc[effect, "estimate"] == pytest.approx(b.loc[effect, "estimate"])
    refused = (chat.rows.parse_method == "refusal").groupby(chat.rows.condition).sum()
    for cond in ("clean", "treated", "direct", "indirect"):
        assert a.loc[f"mean_{cond}", "n_unparseable"] == refused[cond]
    assert list(chat.summary.columns)[-1] == "n_unparseable"


# --------------------------------------------------------------------------- the rule, on rows made by hand
def _zy_rows(correct, ref_correct, method, ref_method):
    n = len(correct)
    return pd.DataFrame({
        "example_id": [f"e{i}" for i in range(n)], "intervention": "iv", "mode": "redecode",
        "correct": correct, "ref_correct": ref_correct, "parse_method": method, "ref_parse_method": ref_method,
        "flip": False, "gold_logprob": np.nan, "ref_gold_logprob": np.nan, "kl": np.nan,
        "recorded_logprob": np.nan, "ref_recorded_logprob": np.nan,
    })


def test_zy_summary_counts_unreadable_as_wrong_and_leaves_no_gold_out():
    rows = _zy_rows([1.0, np.nan, np.nan, 0.0], [1.0, 1.0, np.nan, 1.0],
                    ["exact", "refusal", "no_gold", "exact"], ["exact", "exact", "no_gold", "empty"])
    rows.loc[3, "ref_correct"] = np.nan  # the control's answer is empty: unreadable, wrong
    s = summarize_z_to_y(rows, n_boot=200).set_index("metric")
    assert s.loc["accuracy", "n"] == 3  # e2 has no gold
    assert s.loc["accuracy", "estimate"] == pytest.approx(1 / 3)
    assert s.loc["accuracy", "n_unparseable"] == 1
    assert s.loc["accuracy_change", "estimate"] == pytest.approx(1 / 3 - 2 / 3)
    assert s.loc["accuracy_change", "n_unparseable"] == 2
    assert s.loc["flip_rate", "n_unparseable"] == 0


def test_zy_summary_of_rows_without_parse_method_keeps_the_old_rule():
    rows = _zy_rows([1.0, np.nan, 0.0], [1.0, 1.0, 1.0], "x", "x").drop(columns=["parse_method", "ref_parse_method"])
    s = summarize_z_to_y(rows, n_boot=200).set_index("metric")
    assert s.loc["accuracy", "n"] == 2 and s.loc["accuracy", "n_unparseable"] == 0


def test_mediation_summary_counts_unreadable_as_wrong():
    recs = []
    values = {"clean": [1, 1, 1, 1], "treated": [np.nan, 0, 1, np.nan], "direct": [1, 1, 1, 1],
              "indirect": [np.nan, 0, 1, 1]}
    for i in range(4):
        for cond, vals in values.items():
            v = vals[i]
            recs.append({"example_id": f"e{i}", "condition": cond, "correct": float(v),
                         "parse_method": "refusal" if np.isnan(v) else "exact", "gold_logprob": -1.0})
    s = summarize_mediation(pd.DataFrame(recs), n_boot=200).set_index("effect")
    assert s.loc["TE", "n"] == 4  # nobody is dropped
    assert s.loc["TE", "estimate"] == pytest.approx(-3 / 4)
    assert s.loc["NIE", "estimate"] == pytest.approx(-2 / 4)
    assert s.loc["NDE", "estimate"] == 0.0
    assert (s.loc["TE", "n_unparseable"], s.loc["NIE", "n_unparseable"], s.loc["NDE", "n_unparseable"]) == (2, 1, 0)
    assert s.loc["interaction", "n_unparseable"] == 2 and s.loc["mean_treated", "n_unparseable"] == 2
