"""The behavioural probe scores answers through a scorer: case and punctuation do not matter."""

from __future__ import annotations

import pytest

from latentprobe.behavioural import behavioural_probe
from latentprobe.scoring import ScoringError
from latentprobe.toy import load, toy_derived_inputs


@pytest.fixture(scope="module")
def probe_inputs():
    tm = load("mediated")
    original, derived = toy_derived_inputs(tm.examples("test", n=60))
    return tm, original, derived


def test_behavioural_probe_is_case_insensitive(probe_inputs):
    tm, original, derived = probe_inputs
    kw = dict(max_new_tokens=8, batch_size=64, n_boot=200)
    res = behavioural_probe(tm.runner(), original, derived, **kw)
    shouted = derived.replace(gold=tuple(f"{g.upper()}." for g in derived.gold))
    loud = behavioural_probe(tm.runner(), original, shouted, **kw)
    acc, loud_acc = res.summary.set_index("condition").accuracy, loud.summary.set_index("condition").accuracy
    assert acc["image"] > 0.5
    assert loud_acc.to_dict() == acc.to_dict()
    assert list(res.summary.columns)[-1] == "n_unparseable"
    assert set(res.rows.parse_method_image) <= {"exact", "empty"}
    first = behavioural_probe(tm.runner(), original, shouted, scorer="first_word", **kw)
    assert first.summary.set_index("condition").accuracy["image"] == 0.0  # "red" is not "red."


def test_behavioural_probe_refuses_an_unknown_scorer(probe_inputs):
    tm, original, derived = probe_inputs
    with pytest.raises(ScoringError, match="behavioural_probe: scorer='fuzzy'"):
        behavioural_probe(tm.runner(), original, derived, scorer="fuzzy")
