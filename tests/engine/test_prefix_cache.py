"""The shared-prefix KV cache of sweeps: attention over one prefix per group plus per-row suffixes equals
attention over each row's own concatenated keys; sweeps run on it hold one prefix per example."""

import pytest
import torch

from latentprobe import interventions as iv
from latentprobe.engine import many as many_mod
from latentprobe.engine.masks import segment_attention_mask
from latentprobe.engine.prefix_cache import (SharedPrefixCache, attached, cache_nbytes, shared_prefix_attention,
                                             supports_shared)
from latentprobe.errors import InputError, ModelStructureError
from latentprobe.trace import Segment

from .test_many import _same
from .test_runner import base, case  # noqa: F401  (the per-preset fixtures, module-scoped here too)


class _Attn(torch.nn.Module):
    def __init__(self, layer_idx):
        super().__init__()
        self.layer_idx = layer_idx


def _rule(q, k):  # queries in text may not read image keys (any rule that forbids something)
    return ~((q[:, :, None] == Segment.TEXT) & (k[:, None, :] == Segment.IMAGE))


LAYOUTS = {"per-group": ([0, 1, 0, 2, 1], [5, 7, 0]), "batched": ([0, 1, 2, 0, 1, 2], [5, 7, 3])}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("rule", [None, _rule], ids=["causal", "rule"])
@pytest.mark.parametrize("q_len", [1, 3])
def test_attention_equals_attention_over_concatenated_keys(rule, q_len, layout):
    """Three groups (prefixes of 5, 7 and 0 positions, or 5, 7 and 3 with equal groups: the batched product),
    left-padded in the prefill, rows in an order that interleaves the groups, grouped-query heads, a padded
    suffix: every row's output equals softmax attention over its own prefix followed by its suffix, computed
    directly."""
    g = torch.Generator().manual_seed(0)
    G, P, Hk, rep, D = 3, 7, 2, 3, 8
    rows_of, lengths = LAYOUTS[layout]
    pads = [P - n for n in lengths]
    kp = torch.randn(G, Hk, P, D, generator=g)
    vp = torch.randn(G, Hk, P, D, generator=g)
    pseg = torch.randint(1, 4, (G, P), generator=g)
    group = torch.tensor(rows_of)
    B = len(group)
    cache = SharedPrefixCache([(kp, vp)], pads, group, pseg, capacity=2, rule=rule, n_layers=1)
    assert cache.batched == (layout == "batched")
    S0 = 4  # an earlier chunk of 4 suffix columns, the first one padding for rows 1 and 3
    seg = torch.randint(1, 4, (B, S0 + q_len), generator=g)
    valid = torch.ones(B, S0 + q_len, dtype=torch.long)
    valid[[1, 3], 0] = 0
    valid[4, :2] = 0
    k0, v0 = torch.randn(B, Hk, S0, D, generator=g), torch.randn(B, Hk, S0, D, generator=g)
    cache.update(k0, v0, 0)  # written before; grows past the capacity of 2 (counted)
    cache.calls[1] += 1
    k1, v1 = torch.randn(B, Hk, q_len, D, generator=g), torch.randn(B, Hk, q_len, D, generator=g)
    cache.step_mask(seg, valid, q_len)
    ks, vs = cache.update(k1, v1, 0)
    q = torch.randn(B, Hk * rep, q_len, D, generator=g)
    with attached(cache, torch.nn.ModuleList()):
        got, _ = shared_prefix_attention(_Attn(0), q, ks, vs, None, scaling=0.3)
    assert cache.grown == 1 and got.shape == (B, q_len, Hk * rep, D)
    for b in range(B):
        gi = int(group[b])
        keys = torch.cat([kp[gi, :, pads[gi]:], ks[b]], dim=1)
        vals = torch.cat([vp[gi, :, pads[gi]:], vs[b]], dim=1)
        segs = torch.cat([pseg[gi, pads[gi]:], seg[b]])[None]
        ok = torch.cat([torch.ones(lengths[gi], dtype=torch.long), valid[b]])[None]
        mask = segment_attention_mask(segs, ok, q_len, rule)[0, 0]  # [q, keys]
        kk = keys.repeat_interleave(rep, dim=0)
        vv = vals.repeat_interleave(rep, dim=0)
        w = torch.softmax(q[b] @ kk.transpose(-1, -2) * 0.3 + mask, dim=-1)
        want = (w @ vv).transpose(0, 1)  # [q, heads, D]
        torch.testing.assert_close(got[b], want, rtol=0, atol=1e-5)


def test_unattended_updates_are_refused():
    cache = SharedPrefixCache([], [0], torch.tensor([0, 0]), torch.zeros(1, 0, dtype=torch.long), 4, None, 1)
    cache.update(torch.zeros(2, 1, 1, 4), torch.zeros(2, 1, 1, 4), 0)
    with pytest.raises(ModelStructureError, match="prefix_cache='copied'"):
        cache.step_mask(torch.ones(2, 2, dtype=torch.long), torch.ones(2, 2, dtype=torch.long), 1)


def test_attached_switches_the_attention_and_restores_it(qwen):
    layers = qwen.model.language_model.layers
    cfg = layers[0].self_attn.config
    before = cfg._attn_implementation
    cache = SharedPrefixCache([], [0], torch.tensor([0]), torch.zeros(1, 0, dtype=torch.long), 4, None, len(layers))
    with attached(cache, layers):
        assert cfg._attn_implementation == "latentprobe_shared_prefix"
        assert qwen.config.vision_config._attn_implementation == before  # the vision tower is untouched
    assert cfg._attn_implementation == before
    assert supports_shared(layers)


def _capture(monkeypatch):
    kept = []
    real = many_mod.prefill_shared

    def spy(*a, **kw):
        pre = real(*a, **kw)
        kept.append(pre)
        return pre

    monkeypatch.setattr(many_mod, "prefill_shared", spy)
    return kept


@pytest.mark.parametrize("mode", ["propagate", "redecode"])
def test_a_sweep_holds_one_prefix_per_example(case, base, mode, monkeypatch):
    """Every preset family runs on the shared cache: never grown past its preallocated budget, and holding less
    than the copied cache, which holds one prefix per condition."""
    conds = {f"s{i}": iv.Scale(0.5 + i) for i in range(6)}
    kept = _capture(monkeypatch)
    case.runner.intervene_many(base, conds, mode=mode, logits_processor=case.processor())
    shared = kept[:]
    kept.clear()
    case.runner.intervene_many(base, conds, mode=mode, logits_processor=case.processor(), prefix_cache="copied")
    assert len(shared) == len(kept) == 1
    cache = shared[0].cache
    assert isinstance(cache, SharedPrefixCache) and cache.grown == 0 and cache.calls[0] == cache.calls[1] > 0
    assert len(cache.members) == len(base) and all(len(m) == len(conds) for m in cache.members)
    assert 0 < cache_nbytes(cache) < cache_nbytes(kept[0].cache)


def _close(a, b):
    """Answers equal; latents within 1e-5; log-probs within 1e-5 relative: the toy's reach -28, where float32
    spacing is 2e-6 (the copied cache itself differs from ``intervene`` by up to 3.4e-5 there)."""
    for x, y in zip(a, b):
        assert torch.equal(x.input_ids, y.input_ids) and torch.equal(x.answer_ids, y.answer_ids)
        torch.testing.assert_close(x.z, y.z, rtol=0, atol=1e-5)
        for f in ("answer_logprobs", "first_token_logprobs", "forced_logprobs"):
            u, v = getattr(x, f), getattr(y, f)
            assert (u is None) == (v is None)
            if u is not None:
                torch.testing.assert_close(u, v, rtol=1e-5, atol=1e-5)


def test_mask_rule_sweeps_equal_the_copied_cache():
    """The toy's attention rule (segment codes) applies to the shared prefix and the suffixes alike."""
    from latentprobe import toy

    tm = toy.load("mediated")
    runner = tm.runner()
    assert runner.mask_rule is not None
    ex = tm.examples("test", 4)
    tr = runner.run(tm.prompts(ex), tm.images(ex), max_new_tokens=12, progress=False)
    conds = {"zero": iv.Zero(), "scale": iv.Scale(3.0), "none": None}
    for mode in ("replay", "propagate", "redecode"):
        a = runner.intervene_many(tr, conds, mode=mode, steps=[1], progress=False)
        b = runner.intervene_many(tr, conds, mode=mode, steps=[1], progress=False, prefix_cache="copied")
        for name in conds:
            _close(b[name], a[name])
        _close(runner.intervene(tr, iv.Zero(), mode=mode, steps=[1], progress=False), a["zero"])
    with pytest.raises(InputError, match="prefix_cache"):
        runner.intervene_many(tr, conds, prefix_cache="per-row")


def test_decode_traces_only_steps_that_capture_or_patch(case, base, monkeypatch):
    """Every family (Monet, whose latent may sit on the open marker's own slot, included) enters nnsight only
    for forwards that gather or patch; all others run the model directly."""
    fwd = case.runner._decoder.forward
    seen = {"traced": 0, "needed": 0}
    real_trace, real_call = fwd.nn.trace, type(fwd).__call__

    def trace(*a, **kw):
        seen["traced"] += 1
        return real_trace(*a, **kw)

    def call(self, embeds, attn, pos, cache, gather, patches, **kw):
        seen["needed"] += int(gather is not None or bool(patches) or kw.get("logits_at") is not None)
        return real_call(self, embeds, attn, pos, cache, gather, patches, **kw)

    monkeypatch.setattr(fwd.nn, "trace", trace)
    monkeypatch.setattr(type(fwd), "__call__", call)
    case.runner.intervene_many(base, {"zero": iv.Zero()}, mode="propagate", steps=[1],
                               logits_processor=case.processor())
    assert seen["traced"] == seen["needed"] > 0
