"""Activation patching (latentprobe.causal.patch): exact self-patching, the planted toys, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentprobe.causal import patch
from latentprobe.causal.patch_schema import PATCH_ROWS, PATCH_SUMMARY
from latentprobe.stats import adjust_pvalues
from latentprobe.causal.patching import GROUPS, ROUTES
from latentprobe.engine import LatentRunner
from latentprobe.errors import InputError
from latentprobe.perturbations import InputSet
from latentprobe.toy.perturbations import Counterfactual, toy_inputs

from causal.helpers import _load_trained

pytestmark = pytest.mark.slow

MODES = ("replay", "propagate", "redecode")


def _assert_self_patch_exact(res, n_layers: int, expect_groups: set[str]) -> None:
    t = res.table
    PATCH_ROWS.check(t)
    PATCH_SUMMARY.check(res.summary)
    cells = t[t["position_group"] != "none"]
    assert set(cells["mode"]) == set(MODES)
    assert expect_groups <= set(cells["position_group"])
    # every requested layer appears for a position group that is patchable in that mode
    assert set(cells.loc[cells["position_group"] == "latents", "layer"]) == set(range(n_layers + 1))
    assert not cells["flip"].any()
    # exact, not close: the same first-token distribution, to the bit
    assert (cells["kl"] == 0.0).all()
    np.testing.assert_array_equal(cells["clean_logprob"].to_numpy(), cells["ref_clean_logprob"].to_numpy())
    np.testing.assert_array_equal(cells["source_logprob"].to_numpy(), cells["ref_source_logprob"].to_numpy())
    assert (cells["answer"] == cells["ref_answer"]).all()


def test_self_patching_is_exact_on_the_toy():
    torch.set_num_threads(1)
    m = _load_trained("free")
    r = m.runner()
    assert r.dtype == torch.float32
    inp = toy_inputs(m.examples("test", n=2))
    L = r.n_layers
    res = patch(r, inp, {i: i for i in inp.example_ids}, layers=range(L + 1), n_boot=50, max_batch=7)
    _assert_self_patch_exact(res, L, set(GROUPS) | set(ROUTES))
    # the cells a mode cannot write before it regenerates them are listed, not silently dropped
    skipped = {(s["mode"], s["group"]) for s in res.config["skipped"]}
    assert ("propagate", "answer") in skipped and ("redecode", "answer") in skipped
    assert not any(m_ == "replay" for m_, _ in skipped)


def test_self_patching_is_exact_on_a_tiny_coconut_gpt2():
    from tiny import make_tokenizer, tiny_gpt2

    tok = make_tokenizer()
    lat = " ".join(["<|latent|>"] * 3)
    prompts = (f"what is the circle ? <|start-latent|> {lat} <|end-latent|> answer :",
               f"what colour is a square ? <|start-latent|> {lat} <|end-latent|> answer :")
    r = LatentRunner(tiny_gpt2(tok, layers=2), tok, "coconut")
    inp = InputSet(example_ids=("a", "b"), prompts=prompts)
    res = patch(r, inp, {"a": "a", "b": "b"}, layers=[0, 1, 2], max_new_tokens=4, n_boot=50)
    _assert_self_patch_exact(res, 2, {"question", "markers", "latents", "answer"})


@pytest.fixture(scope="module")
def planted():
    torch.set_num_threads(1)
    out = {}
    for v in ("bypass", "mediated"):
        m = _load_trained(v)
        inp = toy_inputs(m.examples("test", n=40))
        out[v] = patch(m.runner(), inp, Counterfactual(), positions=["image", "latents"], layers=[0, 1],
                       modes=["redecode"], n_boot=200)
    return out


def _flip(res, group: str, layer: int) -> float:
    t = res.table
    return float(t[(t["position_group"] == group) & (t["layer"] == layer)]["flip"].mean())


def test_bypass_latents_do_not_matter_image_does(planted):
    # bypass: the close marker and the answer cannot attend to the latents, so no latent patch can reach the answer
    res = planted["bypass"]
    assert _flip(res, "latents", 0) <= 0.05 and _flip(res, "latents", 1) <= 0.05
    assert _flip(res, "image", 1) >= 0.80


def test_mediated_latents_carry_the_image(planted):
    # mediated: latents, close marker and answer cannot attend to the image or the open marker; only the latents
    # carry it, so patching them moves the answer, and patching the image with the latents frozen cannot
    res = planted["mediated"]
    assert _flip(res, "latents", 0) >= 0.80 and _flip(res, "latents", 1) >= 0.80
    assert _flip(res, "image|latents_frozen", 1) <= 0.05
    s = res.summary
    row = s[(s["position_group"] == "latents") & (s["layer"] == 0) & (s["metric"] == "flip_rate")].iloc[0]
    assert row["ci_low"] > 0.5 and row["p_value"] < 0.01 and row["p_holm"] >= row["p_value"]


def test_refusals():
    m = _load_trained("bypass")
    inp = toy_inputs(m.examples("test", n=2))
    r = m.runner()
    with pytest.raises(InputError, match="position groups"):
        patch(r, inp, Counterfactual(), positions=["nope"])
    with pytest.raises(InputError, match="residual layers"):
        patch(r, inp, Counterfactual(), layers=[99])
    with pytest.raises(InputError, match="not in inputs.example_ids"):
        patch(r, inp, {inp.example_ids[0]: "missing"})
    with pytest.raises(InputError, match="align"):
        patch(r, inp, Counterfactual(), align="start")


def test_unequal_groups_are_refused_unless_aligned():
    from tiny import make_tokenizer, tiny_gpt2

    tok = make_tokenizer()
    lat = " ".join(["<|latent|>"] * 2)
    prompts = (f"what is the circle ? <|start-latent|> {lat} <|end-latent|>", f"a ? <|start-latent|> {lat} <|end-latent|>")
    r = LatentRunner(tiny_gpt2(tok, layers=1), tok, "coconut")
    inp = InputSet(example_ids=("long", "short"), prompts=prompts)
    with pytest.raises(InputError, match="align='end'"):
        patch(r, inp, {"long": "short"}, positions=["question"], modes=["replay"], max_new_tokens=2)
    res = patch(r, inp, {"long": "short"}, positions=["question"], modes=["replay"], max_new_tokens=2, align="end",
                n_boot=50)
    cells = res.table[res.table["position_group"] == "question"]
    assert (cells["n_positions"] == 2).all()


def test_the_patching_family_adjustment_matches_holm_and_bh_by_hand():
    p = np.array([0.04, np.nan, 0.01, 0.03, 0.2])
    h = adjust_pvalues(p, "holm")
    assert np.isnan(h[1])
    # sorted 0.01, 0.03, 0.04, 0.2 with m = 4: 0.04, 0.09, max(0.09, 0.08), 0.2
    np.testing.assert_allclose(h[[2, 3, 0, 4]], [0.04, 0.09, 0.09, 0.2])
    b = adjust_pvalues(p, "fdr_bh")
    # 0.01*4/1, 0.03*4/2, 0.04*4/3, 0.2*4/4 = 0.04, 0.06, 0.0533, 0.2, then the running minimum from the top
    np.testing.assert_allclose(b[[2, 3, 0, 4]], [0.04, 0.16 / 3, 0.16 / 3, 0.2])


def test_pairs_mapping_patches_from_another_example():
    torch.set_num_threads(1)
    m = _load_trained("bypass")
    inp = toy_inputs(m.examples("test", n=6))
    ids = inp.example_ids
    res = patch(m.runner(), inp, {ids[0]: ids[1], ids[2]: ids[3]}, positions=["image", "latents"], layers=[1],
                modes=["replay"], routes=False, n_boot=50)
    t = res.table
    assert set(t["example_id"]) == {ids[0], ids[2]}
    assert dict(zip(t["example_id"], t["source_id"])) == {ids[0]: ids[1], ids[2]: ids[3]}
    assert not t.loc[t["position_group"] == "latents", "flip"].any()  # bypass: exactly no latent effect
    # the source answer is the source example's own clean answer
    clean = m.runner().run(**inp.run_kwargs(), max_new_tokens=32, progress=False)
    by_id = {e.example_id: e.answer_text for e in clean.examples}
    assert (t["source_answer"] == t["source_id"].map(by_id)).all()
    grid = res.grid("flip_rate", "replay")
    assert list(grid.index) == [1] and set(grid.columns) == {"image", "latents"}


def test_shared_prefix_cache_equals_copied():
    """Rows of a batch attend to one copy of their common prefix (the default) or to a copy each: same answers,
    log-probabilities and KL within float noise, in every mode, routes included."""
    torch.set_num_threads(1)
    m = _load_trained("mediated")
    inp = toy_inputs(m.examples("test", n=3))
    kw = dict(positions=["image", "latents", "markers"], layers=[0, 2], n_boot=50, max_batch=6)
    shared = patch(m.runner(), inp, Counterfactual(), **kw)
    copied = patch(m.runner(), inp, Counterfactual(), prefix_cache="copied", **kw)
    a, b = shared.table, copied.table
    assert len(a) == len(b) > 0 and shared.config["prefix_cache"] == "shared"
    key = ["example_id", "mode", "position_group", "layer"]
    assert a[key].equals(b[key]) and (a["answer"] == b["answer"]).all()
    for c in ("clean_logprob", "source_logprob", "kl"):
        np.testing.assert_allclose(a[c].to_numpy(), b[c].to_numpy(), atol=1e-5, rtol=1e-5)
    assert a["flip"].any()  # something moved: the comparison is not between two all-unchanged tables
    with pytest.raises(InputError, match="prefix_cache"):
        patch(m.runner(), inp, Counterfactual(), prefix_cache="paged", **kw)
