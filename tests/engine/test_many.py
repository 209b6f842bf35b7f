"""intervene_many: shared-prefix sweeps equal every condition run on its own with intervene."""

import pytest
import torch

from latentprobe import interventions as iv
from latentprobe.engine.fork import fork_cache, shared_length
from latentprobe.errors import InputError

from .test_runner import Case, base, case  # noqa: F401  (the per-preset fixtures, module-scoped here too)


def _conditions(base):
    zs = torch.stack([e.z for e in base])
    return {"zero": iv.Zero(), "scale": iv.Scale(2.0), "swap": iv.Swap(base), "replace": iv.Replace(zs.roll(1, 0)),
            "own": lambda z, step, ex: ex.z[step].clone(), "none": None}


def _same(a, b, mode):
    for x, y in zip(a, b):
        assert x.example_id == y.example_id
        assert torch.equal(x.input_ids, y.input_ids) and torch.equal(x.segments, y.segments)
        assert torch.equal(x.answer_ids, y.answer_ids) and x.answer_text == y.answer_text
        torch.testing.assert_close(x.z, y.z, rtol=0, atol=1e-5)
        torch.testing.assert_close(x.hidden, y.hidden, rtol=0, atol=1e-4)
        torch.testing.assert_close(x.answer_logprobs, y.answer_logprobs, rtol=0, atol=1e-5)
        if mode == "replay":
            torch.testing.assert_close(x.forced_logprobs, y.forced_logprobs, rtol=0, atol=1e-5)
        if x.first_token_logprobs is not None:
            torch.testing.assert_close(x.first_token_logprobs, y.first_token_logprobs, rtol=0, atol=1e-5)


@pytest.mark.parametrize("mode", ["replay", "propagate", "redecode"])
@pytest.mark.parametrize("where", [dict(), dict(steps=[1, 2], layers=[0, 2])], ids=["all", "subset"])
def test_many_equals_each_condition_alone(case, base, mode, where):
    """The shared prefix cache (the default) and the copied one (the reference) both equal each condition
    run alone, so they equal each other."""
    conds = _conditions(base)
    many = case.runner.intervene_many(base, conds, mode=mode, logits_processor=case.processor(), **where)
    copied = case.runner.intervene_many(base, conds, mode=mode, logits_processor=case.processor(),
                                        prefix_cache="copied", **where)
    assert list(many) == list(conds) == list(copied)
    for name, fn in conds.items():
        one = case.intervene(base, fn, mode=mode, **where)
        _same(one, many[name], mode)
        _same(copied[name], many[name], mode)
        assert many[name].config == one.config


def test_chunks_of_any_size_give_the_same_results(case, base):
    conds = {"zero": iv.Zero(), "scale": iv.Scale(0.5), "none": None}
    full = case.runner.intervene_many(base, conds, mode="propagate", steps=[2], logits_processor=case.processor())
    for max_batch in (1, 2, 4):
        part = case.runner.intervene_many(base, conds, mode="propagate", steps=[2], max_batch=max_batch,
                                          logits_processor=case.processor())
        for name in conds:
            _same(full[name], part[name], "propagate")


@pytest.mark.parametrize("mode", ["propagate", "redecode"])
def test_greedy_control_equals_the_clean_trace(case, base, mode):
    """The no-op control of greedy propagate/redecode chooses exactly the recorded tokens, so the clean
    trace stands in for it when nothing else differs (no logits processor, same budget)."""
    ctl = case.intervene(base, None, mode=mode)
    for a, b in zip(base, ctl):
        assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.answer_ids, b.answer_ids)
        torch.testing.assert_close(a.answer_logprobs, b.answer_logprobs, rtol=0, atol=1e-5)
    out = case.runner.intervene_many(base, {"zero": iv.Zero()}, mode=mode, control="none",
                                     logits_processor=case.processor())
    if case.emitted:  # a logits processor is given: the control is run
        assert out["none"].config["control"] == "run"
        _same(ctl, out["none"], mode)
    else:
        assert out["none"].config["control"] == "clean_trace"
        assert out["none"].examples == base.examples


def test_control_runs_when_it_may_differ(qwen, tok, images):
    c = Case("toy", type("R", (), {"getfixturevalue": staticmethod(
        {"tok": tok, "qwen": qwen, "images": images}.__getitem__)})())
    tr = c.run()
    for kw in (dict(mode="replay"), dict(mode="propagate", max_new_tokens=12), dict(mode="redecode", seed=3),
               dict(mode="redecode", drop_latents=True)):
        assert c.runner.intervene_many(tr, {}, control="none", **kw)["none"].config["control"] == "run"
    with pytest.raises(InputError, match="control"):
        c.runner.intervene_many(tr, {"none": iv.Zero()}, control="none")
    with pytest.raises(InputError, match="max_batch"):
        c.runner.intervene_many(tr, {"z": iv.Zero()}, max_batch=0)


def test_control_runs_in_half_precision():
    # bfloat16 rounds differently in other batch shapes: the control is run, never assumed equal to the run
    from latentprobe import toy

    tm = toy.load("mediated")  # a fresh model per load: casting it touches no other test
    runner = tm.runner()
    ex = tm.examples("test", n=4)
    tr = runner.run(tm.prompts(ex), tm.images(ex), max_new_tokens=8, progress=False)
    assert runner.intervene_many(tr, {}, control="none", mode="propagate")["none"].config["control"] == "clean_trace"
    runner.model.to(torch.bfloat16)
    trb = runner.run(tm.prompts(ex), tm.images(ex), max_new_tokens=8, progress=False)
    for mode in ("propagate", "redecode"):
        out = runner.intervene_many(trb, {}, control="none", mode=mode)
        assert out["none"].config["control"] == "run"


def test_sampled_sweep_draws_what_each_condition_draws_alone(qwen, tok, images):
    c = Case("toy", type("R", (), {"getfixturevalue": staticmethod(
        {"tok": tok, "qwen": qwen, "images": images}.__getitem__)})())
    tr = c.run(do_sample=True, temperature=1.5, seed=5)
    conds = {"zero": iv.Zero(), "noise": iv.AddNoise(1.0, seed=2), "none": None}
    for mode in ("propagate", "redecode"):
        many = c.runner.intervene_many(tr, conds, mode=mode, steps=[1], logits_processor=c.processor())
        for name, fn in conds.items():
            _same(c.intervene(tr, fn, mode=mode, steps=[1]), many[name], mode)
        assert [e.answer_text for e in many["none"]] == [e.answer_text for e in tr]


def test_fork_copies_rows_and_leaves_the_source(qwen):
    from latentprobe.engine.forward import new_cache

    cache = new_cache(qwen)
    k = torch.randn(2, 2, 5, 16)
    for layer in range(len(qwen.model.language_model.layers)):
        cache.update(k + layer, k - layer, layer)
    forked = fork_cache(cache, torch.tensor([1, 1, 0]))
    assert forked.layers[0].keys.shape[0] == 3 and cache.layers[0].keys.shape[0] == 2
    assert torch.equal(forked.layers[1].keys[2], cache.layers[1].keys[0])
    assert torch.equal(forked.layers[1].values[0], cache.layers[1].values[1])


def test_shared_length_stops_at_the_first_difference(case, base):
    from latentprobe.engine import modes
    from latentprobe.engine.patching import InterventionMode

    dec, e = case.runner._decoder, base.examples[:1]
    pos = e[0].latent_positions.tolist()
    rows = [modes.resume_rows(dec, e, [[s]], (0,), fn, InterventionMode.REDECODE, False)[0]
            for s, fn in ((2, iv.Zero()), (2, None), (3, iv.Zero()))]
    assert shared_length(rows) == pos[2]
    assert shared_length(rows[1:]) == pos[3]
    patched = modes.resume_rows(dec, e, [[1]], (2,), iv.Zero(), InterventionMode.REDECODE, False)[0]
    assert shared_length([rows[1], patched]) == pos[1]


def test_shared_length_compares_ids_and_segments_at_once(case, base):
    import copy

    from latentprobe.engine import modes
    from latentprobe.engine.patching import InterventionMode

    dec, e = case.runner._decoder, base.examples[:1]
    rows = [modes.resume_rows(dec, e, [[2]], (0,), None, InterventionMode.REDECODE, False)[0] for _ in range(2)]
    full = shared_length(rows)
    assert full == len(rows[0].ids)
    for p, what in ((3, "ids"), (5, "segs")):
        other = copy.copy(rows[1])
        setattr(other, what, list(getattr(rows[1], what)))
        getattr(other, what)[p] += 1
        assert shared_length([rows[0], other]) == p
        assert shared_length([rows[0], rows[0], other]) == p


def test_positions_computed_once_per_distinct_row_equal_each_row_alone(case, base):
    """Rows of one example under several conditions share their 3-D rotary positions; each equals what the
    row gets on its own (and rows of different examples keep their own)."""
    from latentprobe.engine import modes
    from latentprobe.engine.fork import _positions
    from latentprobe.engine.patching import InterventionMode

    dec = case.runner._decoder
    rows = [r for s in (1, 2) for r in modes.resume_rows(dec, list(base.examples), [[s]] * len(base), (0,),
                                                          iv.Zero(), InterventionMode.REDECODE, False)]
    pos, deltas = _positions(dec, rows)
    for b, r in enumerate(rows):
        one, d1 = _positions(dec, [r])
        assert torch.equal(pos[b], one[0])
        assert (deltas is None and d1 is None) or int(deltas[b]) == int(d1[0])
