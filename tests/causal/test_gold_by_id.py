"""Gold answers given as an InputSet or a mapping are matched by example id, never by position: the same ids
in another order give the same rows, and ids the trace lacks (or lacks gold for) are refused by name."""

from __future__ import annotations

import pandas as pd
import pytest

from latentprobe import toy
from latentprobe.causal import decompose, z_to_y
from latentprobe.errors import InputError
from latentprobe.interventions import Zero
from latentprobe.perturbations import BlankImage

from causal.helpers import NB


@pytest.fixture(scope="module")
def setup():
    tm = toy.load("mediated")
    inputs = toy.toy_inputs(tm.examples("test", 8))
    runner = tm.runner()
    trace = runner.run(**inputs.run_kwargs(), max_new_tokens=8, progress=False)
    return tm, runner, trace, inputs


def _zy(runner, trace, gold):
    return z_to_y(runner, trace, {"zero": Zero()}, modes=["redecode"], gold=gold, n_boot=NB, progress=False)


def test_gold_as_a_reversed_input_set_gives_each_example_its_own_gold(setup):
    _tm, runner, trace, inputs = setup
    assert len(set(inputs.gold)) > 1  # else reversing could not show anything
    reversed_inputs = inputs.select(list(range(len(inputs)))[::-1])
    assert reversed_inputs.example_ids == tuple(reversed(trace.example_ids))
    forward = _zy(runner, trace, inputs)
    backward = _zy(runner, trace, reversed_inputs)
    pd.testing.assert_frame_equal(backward.rows, forward.rows)
    pd.testing.assert_frame_equal(backward.summary, forward.summary)
    # by position the reversed golds would be another example's: the run's accuracy would differ
    by_position = _zy(runner, trace, list(reversed_inputs.gold))
    run = lambda res: res.summary[(res.summary["mode"] == "run") & (res.summary.metric == "accuracy")]  # noqa: E731
    truth = sum(a.strip() == g for a, g in zip(trace.answers, inputs.gold)) / len(inputs)
    assert run(forward).estimate.iloc[0] == pytest.approx(truth) == run(backward).estimate.iloc[0]
    assert run(by_position).estimate.iloc[0] != pytest.approx(truth)
    # a mapping is matched by id too
    mapping = dict(zip(reversed_inputs.example_ids, reversed_inputs.gold))
    pd.testing.assert_frame_equal(_zy(runner, trace, mapping).rows, forward.rows)


def test_gold_of_other_examples_is_refused_naming_the_ids(setup):
    tm, runner, trace, inputs = setup
    others = toy.toy_inputs(tm.examples("train", 8))
    assert not set(others.example_ids) & set(trace.example_ids)
    with pytest.raises(InputError, match="matched by example id") as err:
        _zy(runner, trace, others)
    assert others.example_ids[0] in str(err.value) and trace.example_ids[0] in str(err.value)
    subset = inputs.select([0, 1, 2])
    with pytest.raises(InputError, match=r"5 missing") as err:
        _zy(runner, trace, subset)
    assert trace.example_ids[7] in str(err.value) and "unknown to the data" not in str(err.value)
    partial = dict(zip(inputs.example_ids[:-1], inputs.gold[:-1]))
    with pytest.raises(InputError, match=f"1 missing.*{inputs.example_ids[-1]}"):
        _zy(runner, trace, partial)
    with pytest.raises(InputError, match=f"1 missing.*{inputs.example_ids[-1]}"):
        decompose(runner, inputs, BlankImage(), gold=partial, n_boot=NB, progress=False)
