"""latentprobe.causal.steps: the influence matrix, early exit, latent count K', oracle injection, format-only."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from latentprobe import toy
from latentprobe.causal import StepResult, step_influence
from latentprobe.causal.steps import early_exit_trace, latent_distances, with_latent_count
from latentprobe.errors import InputError
from latentprobe.schema_steps import STEP_ROWS, STEP_SUMMARY
from latentprobe.toy.perturbations import Counterfactual, toy_inputs
from latentprobe.trace import Segment


@pytest.fixture(scope="module")
def mediated():
    tm = toy.load("mediated")
    runner = tm.runner()
    inputs = toy_inputs(tm.examples("test", 6))
    return runner, inputs, runner.run(**inputs.run_kwargs(), progress=False)


def test_distances_exactly_zero_for_equal_vectors_in_fp32():
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        v = torch.randn(128, generator=g) * 37.0
        assert latent_distances(v, v.clone()) == (0.0, 0.0)
    a, b = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 1.0])
    cos, l2 = latent_distances(a, b)
    assert cos == pytest.approx(1.0, abs=1e-7) and l2 == pytest.approx(np.sqrt(10) / 3, rel=1e-6)
    assert latent_distances(a, -a)[0] == pytest.approx(2.0, abs=1e-7)


@pytest.mark.parametrize("intervention", ["swap", "noise"])
def test_influence_entries_before_the_intervened_step_are_exactly_zero(mediated, intervention):
    runner, inputs, trace = mediated
    res = step_influence(runner, trace, intervention=intervention, gold=inputs, early_exit=False,
                         format_only=False, no_latents=False, n_boot=100)
    assert isinstance(res, StepResult)
    STEP_ROWS.check(res.table)
    STEP_SUMMARY.check(res.summary)
    t = res.table[(res.table.condition == "influence") & (res.table.target_step >= 0)]
    k = res.config["num_latents"]
    assert len(t) == 2 * len(trace) * k * k  # every (example, i, j), both distances
    below = t[t.target_step < t.step]
    assert len(below) == 2 * len(trace) * k * (k - 1) // 2
    assert (below.value.to_numpy() == 0.0).all()
    diag = t[t.target_step == t.step]
    assert (diag.value.to_numpy() > 0).all()  # the intervened latent itself changed
    m = res.matrix()
    assert list(m.columns) == [f"z_{j}" for j in range(k)] + ["answer"]
    for i in range(k):
        for j in range(i):
            assert m.loc[i, f"z_{j}"] == 0.0
    # the mediated toy's later latents are computed from earlier ones: z_{i+1} moves when z_i does
    assert all(m.loc[i, f"z_{i + 1}"] > 1e-3 for i in range(k - 1))


def test_early_exit_and_count_at_k_reproduce_the_clean_trace(mediated):
    runner, inputs, trace = mediated
    k = trace[0].num_latents
    early = runner.intervene(early_exit_trace(trace, k), None, mode="redecode", progress=False)
    count = with_latent_count(runner, k).intervene(trace, None, mode="propagate", progress=False)
    control = runner.intervene(trace, None, mode="propagate", progress=False)
    for out in (early, count):
        assert out.answers == trace.answers
        for a, b in zip(trace.examples, out.examples):
            assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.segments, b.segments)
            assert torch.equal(a.answer_ids, b.answer_ids)
            torch.testing.assert_close(a.z, b.z, atol=1e-5, rtol=0)
            torch.testing.assert_close(a.first_token_logprobs, b.first_token_logprobs, atol=1e-5, rtol=0)
    for a, b in zip(trace.examples, early.examples):  # early exit at K keeps the recorded latents
        assert torch.equal(a.z, b.z)
    for a, b in zip(control.examples, count.examples):  # K' = K is the engine's own propagate control, bit for bit
        assert torch.equal(a.z, b.z) and torch.equal(a.first_token_logprobs, b.first_token_logprobs)
    res = step_influence(runner, trace, gold=inputs, influence=False, early_exit=[k], counts=[k],
                         format_only=False, no_latents=False, n_boot=100)
    flips = res.table[res.table.metric == "flip"]
    assert set(flips.condition) == {"clean", "early_exit", "count"}
    assert (flips.value == 0.0).all()


def test_early_exit_closes_the_span_after_k_latents(mediated):
    runner, _, trace = mediated
    early = early_exit_trace(trace, 1)
    for a, e in zip(trace.examples, early.examples):
        assert e.num_latents == 1 and torch.equal(e.z, a.z[:1])
        assert e.seq_len == a.seq_len - (a.num_latents - 1)
        assert int(e.segments[int(e.latent_positions[0]) + 1]) == Segment.CLOSE
    out = runner.intervene(early, None, mode="redecode", progress=False)
    assert [e.num_latents for e in out.examples] == [1] * len(trace)


def test_count_k_prime_runs_that_many_latents(mediated):
    runner, _, trace = mediated
    for kk in (2, 6):
        out = with_latent_count(runner, kk).intervene(trace, None, mode="propagate",
                                                     max_new_tokens=int(trace.config["max_new_tokens"]) + 2,
                                                     progress=False)
        assert [e.num_latents for e in out.examples] == [kk] * len(trace)
        assert runner.spec.num_latents == trace[0].num_latents  # the original runner is untouched


def _oracle(variant: str, n: int):
    tm = toy.load(variant)
    runner = tm.runner()
    inputs = toy_inputs(tm.examples("test", n))
    trace = runner.run(**inputs.run_kwargs(), progress=False)
    cf = runner.run(**Counterfactual().apply(inputs).run_kwargs(), progress=False)
    res = step_influence(runner, trace, gold=inputs, oracle=cf, influence=False, early_exit=False,
                         format_only=True, no_latents=False, n_boot=100)
    return res


def test_oracle_injection_acceptance_on_the_planted_toys():
    med = _oracle("mediated", 24)
    moved = med.table[(med.table.condition == "oracle") & (med.table.metric == "moved")].value
    assert len(moved) >= 20 and moved.mean() >= 0.8
    byp = _oracle("bypass", 24)
    moved = byp.table[(byp.table.condition == "oracle") & (byp.table.metric == "moved")].value
    assert len(moved) >= 20 and moved.mean() <= 0.05
    # format only: the bypass answer never reads the latents' content, the mediated one does
    f = byp.table[(byp.table.condition == "format_only") & (byp.table.metric == "flip")].value
    assert f.mean() == 0.0
    f = med.table[(med.table.condition == "format_only") & (med.table.metric == "flip")].value
    assert f.mean() >= 0.5
    s = med.summary[(med.summary.condition == "oracle") & (med.summary.metric == "moved")].iloc[0]
    assert s.ci_low <= s.estimate <= s.ci_high and s.method.startswith("Wilson")


def test_refusals(mediated):
    runner, _, trace = mediated
    kw = dict(influence=False, early_exit=False, format_only=False, no_latents=False, n_boot=100)
    with pytest.raises(InputError, match="oracle"):
        step_influence(runner, trace, oracle="region", **kw)
    with pytest.raises(InputError, match="lacks examples"):
        step_influence(runner, trace, oracle={trace[0].example_id: trace[0].z}, **kw)
    with pytest.raises(InputError, match="early_exit"):
        step_influence(runner, trace, **{**kw, "early_exit": [9]})
    with pytest.raises(InputError, match="early_exit"):
        step_influence(runner, trace, **{**kw, "early_exit": "all"})
    with pytest.raises(InputError, match="counts"):
        step_influence(runner, trace, counts=[2.5], **kw)
    with pytest.raises(InputError, match="intervention"):
        step_influence(runner, trace, intervention="bogus", **kw)
    with pytest.raises(InputError, match="num_latents"):
        with_latent_count(runner, 0)
    prompt_mode = copy.copy(runner)  # a family whose latent slots are written in the prompt (Coconut's)
    prompt_mode.spec = dataclasses.replace(runner.spec, open_mode="prompt")
    with pytest.raises(InputError, match="open_mode='prompt'"):
        step_influence(prompt_mode, trace, counts=[2], **kw)


@pytest.mark.parametrize("variant", ["mediated", "bypass"])
def test_batched_influence_runs_equal_one_intervene_per_step(variant):
    """The K influence conditions run as one sweep (each example's prefix prefilled once, its cache shared by the
    K rows) and equal ``runner.intervene(sub, do, steps=[i], mode="propagate")`` run step by step: the same
    answers, latents j < i bitwise the recorded ones, later latents within float noise."""
    from latentprobe.causal.steps import _do, _influence_runs

    tm = toy.load(variant)
    runner = tm.runner()
    trace = runner.run(**toy_inputs(tm.examples("test", 5)).run_kwargs(), progress=False)
    sub = trace.select(list(trace.latent_selection().indices))
    k = sub.examples[0].num_latents
    do = _do("swap", sub, 0)
    batched = _influence_runs(runner, sub, do, k, batch_size=2)
    assert len(batched) == k
    for i, out in enumerate(batched):
        one = runner.intervene(sub, do, steps=[i], mode="propagate", progress=False)
        assert out.answers == one.answers
        assert out.config["steps"] == one.config["steps"] and out.config["mode"] == "propagate"
        for a, b, c in zip(out.examples, one.examples, sub.examples):
            assert torch.equal(a.z[:i], c.z[:i])  # the recorded prefix, to the bit
            torch.testing.assert_close(a.z, b.z, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(a.answer_logprobs, b.answer_logprobs, atol=1e-5, rtol=1e-5)
        if i < k - 1:
            assert any(not torch.equal(a.z[i + 1:], c.z[i + 1:]) for a, c in zip(out.examples, sub.examples))
