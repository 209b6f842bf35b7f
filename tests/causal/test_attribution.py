"""Attribution patching: agreement with exact patching over the full grid of every shipped toy, the gradient
of the first-order estimate (central differences in float64), exact zeros where the runs agree, typed errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from latentprobe import toy
from latentprobe.causal import AttributionResult, attribution_patching
from latentprobe.causal.attribution import _forward, _pairs, _rows, logprob_difference
from latentprobe.engine import LatentRunner
from latentprobe.errors import InputError, LayoutMismatchError
from latentprobe.perturbations import Custom
from latentprobe.schema import ATTRIBUTION


@pytest.fixture(scope="module")
def full_grids():
    out = {}
    for v in toy.VARIANTS:
        tm = toy.load(v)
        inputs = toy.toy_inputs(tm.examples("test", 8))
        out[v] = attribution_patching(tm.runner(), inputs, toy.Counterfactual(seed=0), verify_top="all")
    return out


@pytest.mark.slow
@pytest.mark.parametrize("variant", toy.VARIANTS)
def test_full_grid_agreement(full_grids, variant):
    res = full_grids[variant]
    assert isinstance(res, AttributionResult)
    ATTRIBUTION.check(res.table)
    assert len(res.table) > 0 and bool(res.table[ATTRIBUTION.VERIFIED].all())
    assert res.spearman_abs >= 0.9, res.spearman_abs          # which cells matter: the acceptance figure
    assert res.spearman >= 0.6, res.spearman                  # signed ranks (see AttributionResult)
    # one row per example x layer x position before the answer
    n_layers = len(res.config["layers"])
    per = res.table.groupby("example_id")[ATTRIBUTION.POSITION].agg(["size", "max"])
    assert (per["size"] == n_layers * (per["max"] + 1)).all()


@pytest.mark.slow
def test_unchanged_cells_are_exact_zeros(full_grids):
    for res in full_grids.values():
        t = res.table
        same = t[~t[ATTRIBUTION.CHANGED]]
        assert len(same) > 0
        assert (same[ATTRIBUTION.ATTRIBUTION] == 0).all() and (same[ATTRIBUTION.EFFECT] == 0).all()
        # the last layer at a position before the last one reaches the answer through nothing
        t = t[t[ATTRIBUTION.LAYER] == max(res.config["layers"])]
        last = t.groupby("example_id")[ATTRIBUTION.POSITION].transform("max")
        early = t[t[ATTRIBUTION.POSITION] < last]
        assert (early[ATTRIBUTION.ATTRIBUTION] == 0).all() and (early[ATTRIBUTION.EFFECT] == 0).all()


def test_first_order_estimate_is_the_gradient():
    """Central differences (m(h + e d) - m(h - e d)) / 2e at a cell match the map's entry d . dm/dh (d = h_cf - h).

    The model runs in float64, but Qwen2's RMSNorm computes in float32, so the metric carries float32 rounding
    (~1e-6): steps of 1e-2 and 5e-3 with Richardson extrapolation keep that noise and the truncation near 1e-4."""
    tm = toy.load("mediated")
    model = copy.deepcopy(tm.model).double()
    runner = LatentRunner(model, tm.tokenizer, tm.spec, mask_rule=tm.mask_rule)
    inputs = toy.toy_inputs(tm.examples("test", 2))
    res = attribution_patching(runner, inputs, toy.Counterfactual(seed=0), layers=[0, 2], positions=["latent", "close"])
    clean = runner.run(**inputs.run_kwargs(), max_new_tokens=8, progress=False)
    cf = runner.run(**toy.Counterfactual(seed=0).bind(inputs).apply(inputs).run_kwargs(), max_new_tokens=8,
                    progress=False)
    pairs, _ = _pairs(clean, cf, True)
    e, o = pairs[0]
    t = res.table[res.table.example_id == e.example_id]
    checked = 0
    for layer in (0, 2):
        _, hc, _ = _forward(runner, _rows([e]), [layer])
        _, ho, _ = _forward(runner, _rows([o]), [layer])
        for p in t[t.layer == layer].position.tolist()[:3]:
            d = ho[0][0, p] - hc[0][0, p]
            def central(eps):
                vals = []
                for s in (eps, -eps):
                    patch = {layer: (torch.tensor([0]), torch.tensor([p]), (hc[0][0, p] + s * d)[None])}
                    logits, _, _ = _forward(runner, _rows([e]), [], patch=patch)
                    vals.append(float(logprob_difference(logits, e.answer_ids[:1], o.answer_ids[:1])))
                return (vals[0] - vals[1]) / (2 * eps)

            fd = (4 * central(5e-3) - central(1e-2)) / 3  # Richardson: the O(e^2) term cancels
            est = float(t[(t.layer == layer) & (t.position == p)].attribution.iloc[0])
            assert est == pytest.approx(fd, rel=1e-3, abs=5e-4)
            checked += 1
    assert checked == 6


def test_verify_top_checks_the_largest_cells():
    tm = toy.load("bypass")
    inputs = toy.toy_inputs(tm.examples("test", 2))
    res = attribution_patching(tm.runner(), inputs, toy.Counterfactual(seed=0), verify_top=5)
    assert len(res.verify) == 5 and int(res.table.verified.sum()) == 5
    rest = res.table[~res.table.verified]
    assert rest.effect.isna().all()
    assert res.verify.attribution.abs().min() >= rest.attribution.abs().max()
    assert np.isfinite(res.verify.effect).all()


def test_metric_callable_and_its_shape():
    tm = toy.load("mediated")
    inputs = toy.toy_inputs(tm.examples("test", 2))
    scaled = attribution_patching(tm.runner(), inputs, toy.Counterfactual(seed=0), layers=[1],
                                  metric=lambda lg, a, b: 2 * logprob_difference(lg, a, b))
    base = attribution_patching(tm.runner(), inputs, toy.Counterfactual(seed=0), layers=[1])
    assert np.allclose(scaled.table.attribution, 2 * base.table.attribution, rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="one value per row"):
        attribution_patching(tm.runner(), inputs, toy.Counterfactual(seed=0), metric=lambda lg, a, b: lg)


def test_typed_errors():
    tm = toy.load("mediated")
    inputs = toy.toy_inputs(tm.examples("test", 2))
    r = tm.runner()
    cf = toy.Counterfactual(seed=0)
    with pytest.raises(InputError, match="out of range"):
        attribution_patching(r, inputs, cf, layers=[99])
    with pytest.raises(InputError, match="position groups"):
        attribution_patching(r, inputs, cf, positions=["answer"])
    with pytest.raises(InputError, match="verify_top"):
        attribution_patching(r, inputs, cf, verify_top=-1)
    with pytest.raises(InputError, match="Perturbation"):
        attribution_patching(r, inputs, lambda x: x)
    longer = Custom(lambda prompt, image, meta: (prompt.split()[0] + " " + prompt, image), name="longer")
    with pytest.raises(LayoutMismatchError, match="do not line up"):
        attribution_patching(r, inputs, longer)


def test_answers_override_the_compared_tokens():
    tm = toy.load("mediated")
    inputs = toy.toy_inputs(tm.examples("test", 2))
    base = attribution_patching(tm.runner(), inputs, toy.Counterfactual(seed=0), layers=[1])
    eid = base.table.example_id.iloc[0]
    vocab = tm.tokenizer.get_vocab()
    a, b = sorted(vocab.values())[:2]
    res = attribution_patching(tm.runner(), inputs, toy.Counterfactual(seed=0), layers=[1], answers={eid: (a, b)})
    mine, other = res.table[res.table.example_id == eid], res.table[res.table.example_id != eid]
    assert not np.allclose(mine.attribution, base.table[base.table.example_id == eid].attribution)
    assert np.array_equal(other.attribution, base.table[base.table.example_id != eid].attribution)
    same = attribution_patching(tm.runner(), inputs, toy.Counterfactual(seed=0), layers=[1], answers={eid: (a, a)})
    assert list(same.dropped.reason) == ["same_answer"] and eid not in set(same.table.example_id)


@pytest.mark.parametrize("variant", ["mediated", "text"])
def test_shared_columns_run_once_and_change_nothing(monkeypatch, variant):
    """Columns before the first differing input run once without gradients (a KV cache both runs read): the map
    equals the one from two full forwards (within float noise; cells there exactly 0 and unchanged)."""
    import latentprobe.causal.attribution as A

    tm = toy.load(variant)
    inputs = toy.toy_inputs(tm.examples("test", 4))
    starts = []
    monkeypatch.setattr(A, "SHARED_MIN_FRACTION", 0.0)  # run them apart however few they are
    real = A._shared_columns
    monkeypatch.setattr(A, "_shared_columns", lambda *a: starts.append(real(*a)) or starts[-1])
    shared = attribution_patching(tm.runner(), inputs, toy.Counterfactual(seed=0), batch_size=2)
    assert starts and all(s > 0 for s in starts)  # the toys' prompts start with text the image does not change
    monkeypatch.setattr(A, "_shared_columns", lambda *a: 0)
    full = attribution_patching(tm.runner(), inputs, toy.Counterfactual(seed=0), batch_size=2)
    a, b = shared.table, full.table
    assert a[[ATTRIBUTION.EXAMPLE_ID, ATTRIBUTION.LAYER, ATTRIBUTION.POSITION]].equals(
        b[[ATTRIBUTION.EXAMPLE_ID, ATTRIBUTION.LAYER, ATTRIBUTION.POSITION]])
    np.testing.assert_allclose(a[ATTRIBUTION.ATTRIBUTION], b[ATTRIBUTION.ATTRIBUTION], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a[ATTRIBUTION.CLEAN_METRIC], b[ATTRIBUTION.CLEAN_METRIC], rtol=1e-5, atol=1e-5)
    assert (a[ATTRIBUTION.CHANGED] == b[ATTRIBUTION.CHANGED]).all()
    # every cell of a shared column is exactly 0 (and so is its counterpart without sharing)
    assert (a.loc[~a[ATTRIBUTION.CHANGED], ATTRIBUTION.ATTRIBUTION] == 0).all()


def test_identical_inputs_give_an_all_zero_map():
    tm = toy.load("mediated")
    runner = tm.runner()
    inputs = toy.toy_inputs(tm.examples("test", 3))
    clean = runner.run(**inputs.run_kwargs(), max_new_tokens=8, progress=False)
    answers = {e.example_id: (int(e.answer_ids[0]), int(e.answer_ids[0]) + 1) for e in clean}
    res = attribution_patching(runner, inputs, Custom(lambda p, im, m: (p, im), name="same"), answers=answers,
                               verify_top="all")
    t = res.table
    assert len(t) and (t[ATTRIBUTION.ATTRIBUTION] == 0).all() and (~t[ATTRIBUTION.CHANGED]).all()
    assert (t[ATTRIBUTION.EFFECT] == 0).all()
    assert (t[ATTRIBUTION.CLEAN_METRIC] > 0).all()  # log p(own answer) - log p(another token)


def test_few_shared_columns_are_not_run_apart():
    """Shared columns are run apart only from a quarter of the sequence on; positions count as inputs."""
    import latentprobe.causal.attribution as A

    runner = toy.load("mediated").runner()
    T = 20

    def prep(first_embed, first_pos=T):
        e, p = torch.zeros(2, T, 4), torch.arange(T).expand(3, 2, T).clone()
        e2, p2 = e.clone(), p.clone()
        e2[1, first_embed:] = 1.0
        p2[:, 0, first_pos:] += 1
        return (e, None, p, [0, 0]), (e2, None, p2, [0, 0])

    assert A._shared_columns(runner, *prep(4)) == 0          # 4 < 0.25 * 20
    assert A._shared_columns(runner, *prep(5)) == 5
    assert A._shared_columns(runner, *prep(12, first_pos=7)) == 7
    assert A._shared_columns(runner, *prep(T)) == T           # nothing differs
