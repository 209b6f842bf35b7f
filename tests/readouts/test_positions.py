"""position_features: the same residuals whether the trace recorded them or a teacher-forced forward reads them;
the probes analysis's ``positions`` key gives the decodability gap with the blind toy's planted sign."""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from latentprobe import readouts, toy
from latentprobe.errors import InputError


@pytest.fixture(scope="module")
def blind():
    tm = toy.load("blind")
    ex = tm.examples("test", 6)
    runner = tm.runner()
    kw = dict(max_new_tokens=8, progress=False, batch_size=6)
    return (runner, ex, runner.run(tm.prompts(ex), tm.images(ex), capture_positions="image", **kw),
            runner.run(tm.prompts(ex), tm.images(ex), **kw))


def test_recorded_and_teacher_forced_residuals_agree(blind):
    runner, _, captured, plain = blind
    groups = ("latents", "close", "first_answer", "last_prompt", "image", "question")
    a = readouts.position_features(runner, captured, groups, layers=[0, 2, 4])
    b = readouts.position_features(runner, plain, groups, layers=[0, 2, 4])
    assert a.features["image"].shape == (6, 3, 128) and a.features["latents"].shape == (6, 3, 4, 128)
    for g in groups:
        np.testing.assert_allclose(a.features[g], b.features[g], atol=2e-5, err_msg=g)
    np.testing.assert_array_equal(a.features["latents"][:, 2], captured.features(layers=4))  # index 2 is layer 4, from the trace
    e = captured[0]
    img = e.captured_hidden[:, [0, 2, 4]].mean(0).numpy()
    np.testing.assert_allclose(a.features["image"][0], img, rtol=1e-6)


def test_pooled_groups_read_a_subset(blind):
    runner, _, captured, _ = blind
    two = readouts.position_features(runner, captured, ("image",), layers=[0], max_pooled=2)
    e = captured[0]
    first_last = e.captured_hidden[[0, -1], 0].mean(0).numpy()
    np.testing.assert_allclose(two.features["image"][0, 0], first_last, rtol=1e-6)


def test_unknown_group_is_refused(blind):
    runner, _, captured, _ = blind
    with pytest.raises(InputError, match="groups \\['answers'\\]"):
        readouts.position_features(runner, captured, ("answers",))


@pytest.mark.slow
def test_probes_study_key_positions_gives_the_gap():
    from latentprobe.analyses import Context, get_analysis
    from latentprobe.analyses.options import options_from_mapping

    tm = toy.load("blind")
    ex = [e for e in tm.examples("test") if e.template in ("colour_of_shape", "colour_left_of")
          and e.attributes["target_colour"] != "none"][:60]
    ctx = Context(tm.runner(), toy.toy_inputs(ex), max_new_tokens=8, progress=False, capture_positions="image")
    probes = get_analysis("probes")
    opts = options_from_mapping(probes.Options, {"targets": ["target_colour"], "positions": ["image"], "layers": [4],
                                                 "n_splits": 3, "controls": False}, analysis="probes")
    probes.check(opts, ctx)
    with threadpool_limits(limits=1, user_api="blas"):
        out = probes.run(ctx, opts, None)
    gap = out["gap"].set_index("position_group")
    assert list(gap.index) == ["image"] and gap.loc["image", "gap"] < -0.2 and gap.loc["image", "gap_ci_high"] < 0
    pos = out["positions"]
    assert set(pos["position_group"]) == {"latents", "image"} and len(out["scores"]) == 4
    latents = pos[pos.position_group == "latents"]
    assert latents["score"].max() <= latents["majority"].iloc[0] + 0.15  # blind latents: no better than majority
