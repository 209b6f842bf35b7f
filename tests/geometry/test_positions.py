"""``geometry.position_similarity``: exact statistics on synthetic arrays, and on the shipped toys the ordering
their attention masks force when one question is asked of many images."""

from __future__ import annotations

import numpy as np
import pytest

from latentprobe import geometry, readouts
from latentprobe.errors import LatentProbeError, ShapeError, SimilarityError, TooFewSamplesError
from latentprobe.schema_similarity import POSITION_SIMILARITY, POSITION_SIMILARITY_GAP
from latentprobe.stats import jackknife_u_interval


def _row_means(x: np.ndarray) -> np.ndarray:
    """Each instance's mean cosine to the others, ``x`` ``[n, K, d]``, mean over steps (brute force)."""
    u = x / np.linalg.norm(x, axis=-1, keepdims=True)
    s = np.einsum("ikd,jkd->kij", u, u).mean(axis=0)
    n = len(x)
    return (s.sum(axis=1) - np.diag(s)) / (n - 1)


@pytest.fixture
def feats():
    rng = np.random.default_rng(3)
    n, L, K, d = 15, 3, 4, 10
    shared = rng.normal(size=d) * 2.0
    return {"latents": rng.normal(size=(n, L, K, d)) + shared, "close": rng.normal(size=(n, L, d)) * 0.3 + shared,
            "image": rng.normal(size=(n, L, d))}


def test_table_and_gap_are_the_brute_force_statistics(feats):
    res = geometry.position_similarity(feats, layers=[0, 2, 5], ci=0.9)
    POSITION_SIMILARITY.check(res.table)
    POSITION_SIMILARITY_GAP.check(res.gap)
    assert res.table[["position_group", "layer"]].values.tolist() == [
        [g, l] for g in ("latents", "close", "image") for l in (0, 2, 5)]
    assert res.table.steps.tolist() == [4] * 3 + [1] * 6 and set(res.table.n) == {15}
    t = res.table.set_index(["position_group", "layer"])
    for g, arr in feats.items():
        arr4 = arr if arr.ndim == 4 else arr[:, :, None]
        for j, layer in enumerate((0, 2, 5)):
            r = _row_means(arr4[:, j])
            np.testing.assert_allclose(res.per_instance[g][:, j], r, atol=1e-12)
            est, low, high, _ = jackknife_u_interval(r, level=0.9)
            np.testing.assert_allclose(t.loc[(g, layer), ["mean_offdiag", "ci_low", "ci_high"]].to_numpy(float),
                                       [est, low, high], atol=1e-12)
            x = arr4[:, j]
            c = x - x.mean(axis=0)
            share = np.mean([(c[:, k] ** 2).sum() / (x[:, k] ** 2).sum() for k in range(x.shape[1])])
            assert t.loc[(g, layer), "spread"] == pytest.approx(share, abs=1e-12)
            ranks = [geometry.effective_rank(x[:, k]) for k in range(x.shape[1])]
            assert t.loc[(g, layer), "effective_rank"] == pytest.approx(np.mean(ranks), rel=1e-9)
    gap = res.gap.set_index(["position_group", "layer"])
    assert set(res.gap.reference) == {"latents"} and set(gap.index.get_level_values(0)) == {"close", "image"}
    for g in ("close", "image"):
        for j, layer in enumerate((0, 2, 5)):
            diff = res.per_instance["latents"][:, j] - res.per_instance[g][:, j]
            est, low, high, _ = jackknife_u_interval(diff, level=0.9)
            row = gap.loc[(g, layer)]
            assert row.difference == pytest.approx(row.reference_mean - row.mean_offdiag, abs=1e-12)
            np.testing.assert_allclose([row.difference, row.ci_low, row.ci_high], [est, low, high], atol=1e-12)
    # the planted order: close shares the offset with little noise, the image positions have none
    assert (gap.xs("close").difference < 0).all() and (gap.xs("image").difference > 0).all()


def test_paired_interval_is_narrower_than_unpaired_when_groups_move_together():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, 1, 8)) + 1.0
    feats = {"latents": base[:, :, None] * 1.0, "close": base + 0.05 * rng.normal(size=base.shape)}
    res = geometry.position_similarity(feats)
    g = res.gap.iloc[0]
    t = res.table.set_index("position_group")
    unpaired = np.hypot(*(t.loc[k, "ci_high"] - t.loc[k, "mean_offdiag"] for k in ("latents", "close")))
    assert 0 < g.ci_high - g.difference < unpaired / 3


def test_identical_instances_have_no_spread_and_steps_select():
    x = np.tile(np.arange(1.0, 7.0), (5, 2, 3, 1))  # 5 instances, 2 layers, 3 steps, one vector
    x[:, :, 2] += np.random.default_rng(1).normal(size=(5, 2, 6))  # only step 2 differs between instances
    res = geometry.position_similarity({"latents": x}, steps=[0, 1])
    assert res.table.mean_offdiag.tolist() == pytest.approx([1.0, 1.0], abs=1e-12)
    assert res.table.spread.tolist() == [0.0, 0.0] and res.table.effective_rank.tolist() == [0.0, 0.0]
    assert res.gap.empty and res.layers == (0, 1)
    assert (geometry.position_similarity({"latents": x}, steps=[2]).table.spread > 0.01).all()


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"reference": "close"}, SimilarityError, "reference group 'close'"),
    ({"layers": [0]}, SimilarityError, "name 1 layers"),
    ({"steps": [7]}, SimilarityError, "steps \\[7\\] out of range"),
])
def test_wrong_arguments_say_what_to_pass(kwargs, error, match):
    feats = {"latents": np.ones((4, 2, 3, 5)), "image": np.ones((4, 2, 5))}
    with pytest.raises(error, match=match) as err:
        geometry.position_similarity(feats, **kwargs)
    assert isinstance(err.value, LatentProbeError)


def test_wrong_shapes():
    with pytest.raises(ShapeError, match="disagree"):
        geometry.position_similarity({"latents": np.ones((4, 2, 3, 5)), "image": np.ones((5, 2, 5))})
    with pytest.raises(ShapeError, match="expected \\[n, L, d\\]"):
        geometry.position_similarity({"latents": np.ones((4, 5))})
    with pytest.raises(TooFewSamplesError):
        geometry.position_similarity({"latents": np.ones((1, 2, 3, 5))})
    with pytest.raises(SimilarityError, match="non-empty mapping"):
        geometry.position_similarity({})


# --------------------------------------------------------------------------- planted truth on the toys
GROUPS = ("latents", "close", "first_answer", "image")
LAYERS = [0, 2, 4]


def _one_question(variant: str):
    """One question asked of 20 different images: what differs between instances is the image alone."""
    from latentprobe import toy

    tm = toy.load(variant)
    ex = tm.examples("test", 20)
    runner = tm.runner()
    trace = runner.run([tm.prompts(ex)[0]] * len(ex), tm.images(ex), progress=False)
    pf = readouts.position_features(runner, trace, GROUPS, layers=LAYERS)
    assert len(pf.kept) == len(ex)
    return trace, geometry.position_similarity(pf)


def test_blind_latents_cannot_depend_on_the_image():
    # blind: the open marker and the latents cannot attend to the image, so with one question every instance has
    # the same latents at every layer: cosine 1, no spread; the image positions differ with the image
    _, res = _one_question("blind")
    t = res.table.set_index(["position_group", "layer"])
    for layer in LAYERS:
        assert t.loc[("latents", layer), "mean_offdiag"] == pytest.approx(1.0, abs=1e-5)
        assert t.loc[("latents", layer), "spread"] == 0.0 and t.loc[("latents", layer), "effective_rank"] == 0.0
        assert t.loc[("image", layer), "spread"] > 1e-3
    # the close marker reads the image from layer 1 on (blind does not mask it); at layer 0 it is its embedding
    assert t.loc[("close", 0), "spread"] == 0.0 and t.loc[("close", 4), "spread"] > 1e-3
    gap = res.gap.set_index(["position_group", "layer"])
    for layer in LAYERS:  # the latents are less instance-specific than the image positions, at every layer
        assert gap.loc[("image", layer), "difference"] > 0 and gap.loc[("image", layer), "ci_low"] > 0
    assert gap.loc[("close", 4), "difference"] > 0 and gap.loc[("close", 4), "ci_low"] > 0


def test_mediated_latents_carry_the_image():
    # mediated: the answer cannot attend to the image, only to the latents; the answers differ between images,
    # so the latents must differ too (they carry the image, through the open marker fed as the first latent)
    trace, res = _one_question("mediated")
    assert len(set(trace.answers)) > 1
    t = res.table.set_index(["position_group", "layer"])
    for layer in LAYERS:
        assert t.loc[("latents", layer), "spread"] > 1e-2
        assert t.loc[("latents", layer), "mean_offdiag"] < 0.99
    # ... unlike blind, whose latents have none: the same call ranks the variants
    _, blind = _one_question("blind")
    b = blind.table.set_index(["position_group", "layer"])
    assert all(t.loc[("latents", l), "mean_offdiag"] < b.loc[("latents", l), "mean_offdiag"] for l in LAYERS)
