"""Every figure carries a caption; axis ranges stay within what each metric can take."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from latentprobe import geometry, viz


def _figures(xz, zy, med, within, across, collapse, norms, sweep, comparison, attention_res, patching):
    return {
        "patching_heatmap": viz.patching_heatmap(patching),
        "xz_lines": viz.xz_lines(xz),
        "zy_bars": viz.zy_bars(zy),
        "decomposition_bars": viz.decomposition_bars(med),
        "effects_forest": viz.effects_forest(med),
        "similarity_heatmap": viz.similarity_heatmap(within),
        "consecutive_similarity": viz.consecutive_similarity(within),
        "across_instance_summary": viz.across_instance_summary(across),
        "collapse_bars": viz.collapse_bars(collapse),
        "norm_profile": viz.norm_profile(norms),
        "probe_heatmap": viz.probe_heatmap(sweep),
        "probe_controls": viz.probe_controls(comparison),
        "attention_regions": viz.attention_regions(attention_res),
        "attention_heatmap": viz.attention_heatmap(attention_res),
        "influence_heatmap": viz.influence_heatmap(pd.DataFrame([[0.5, 0.2, 1.0], [0.0, 0.4, 0.0]],
                                                                columns=["z_0", "z_1", "answer"])),
    }


@pytest.fixture(scope="module")
def attribution_res():
    from latentprobe import toy
    from latentprobe.causal import attribution_patching

    tm = toy.load("mediated")
    return attribution_patching(tm.runner(), toy.toy_inputs(tm.examples("test", 3)), toy.Counterfactual(seed=0))


def test_every_figure_has_its_caption(xz, zy, med, within, across, collapse, norms, sweep, comparison, attention_res,
                                      lens_result, patching, attribution_res, efficiency):
    figs = _figures(xz, zy, med, within, across, collapse, norms, sweep, comparison, attention_res, patching)
    figs["efficiency_bars"] = viz.efficiency_bars(efficiency.summary)
    figs["lens_rank_heatmap"] = viz.lens_rank_heatmap(lens_result)
    figs["attribution_heatmap"] = viz.attribution_heatmap(attribution_res)
    rng = np.random.default_rng(0)
    figs["position_similarity_lines"] = viz.position_similarity_lines(geometry.position_similarity(
        {"latents": rng.normal(size=(8, 2, 3, 6)), "close": rng.normal(size=(8, 2, 6))}))
    assert set(figs) == set(viz.CAPTIONS)
    for kind, fig in figs.items():
        assert fig.layout.meta["kind"] == kind
        caption = viz.caption_for(fig)
        assert caption and caption == viz.caption_for(kind) and len(caption) > 80
        assert re.search(r"\b(not|none|nothing)\b", caption)  # says what the figure does not show


def test_caption_for_unknown():
    import plotly.graph_objects as go

    assert viz.caption_for(go.Figure()) is None and viz.caption_for("nope") is None


def _ranges(fig, axis="yaxis"):
    return {name: fig.layout[name].range for name in fig.layout if name.startswith(axis) and fig.layout[name].range}


def test_xz_axes_follow_the_metric(xz):
    fig = viz.xz_lines(xz, layer=0)
    titles = [a.text for a in fig.layout.annotations][:2]
    ranges = [fig.layout.yaxis.range, fig.layout.yaxis2.range]
    for title, rng in zip(titles, ranges):
        lo, hi = rng
        if title.startswith("cosine"):
            assert -1.0 <= lo < hi <= 1.0
        else:
            assert 0.0 <= lo < hi


def test_xz_constant_latents_get_sensible_axes(xz):
    s = xz.summary.copy()
    lat = s.source == "latent"
    s.loc[lat & (s.metric == "cosine"), ["estimate", "ci_low", "ci_high"]] = 1.0
    s.loc[lat & (s.metric == "rel_l2"), ["estimate", "ci_low", "ci_high"]] = 0.0
    s = s[lat]
    fig = viz.xz_lines(s, layer=0)
    assert list(fig.layout.yaxis.range) == [0.9, 1.0]
    assert list(fig.layout.yaxis2.range) == [0.0, 0.1]


def test_zy_axes_say_direction_and_unit(zy):
    fig = viz.zy_bars(zy)
    titles = {fig.layout[a].title.text: fig.layout[a].range for a in fig.layout if a.startswith("yaxis")}
    kl = titles["KL(control ‖ intervention)<br>first answer token (nats)"]
    assert kl[0] == 0.0
    change = titles["change in accuracy<br>intervention − control (fraction)"]
    assert -1.0 <= change[0] < change[1] <= 1.0
    flip = titles["flip rate<br>(fraction changed vs control)"]
    assert 0.0 == flip[0] < flip[1] <= 1.0
    acc = titles["accuracy"]
    assert 0.0 == acc[0] < acc[1] <= 1.0


def test_probe_controls_accuracy_axis(comparison):
    fig = viz.probe_controls(comparison)
    if (comparison.task == "classification").all():
        assert list(fig.layout.yaxis.range) == [0.0, 1.0]


@pytest.mark.parametrize(("metric", "values", "want"), [
    ("cosine", [0.2, 0.4], (-1.0, 1.0)),
    ("kl", [0.0, 3.0], (0.0, None)),
    ("flip_rate", [0.0, 1.0], (0.0, 1.0)),
    ("accuracy_change", [-0.3, 0.1], (-1.0, 1.0)),
])
def test_metric_range_within_bounds(metric, values, want):
    lo, hi = viz.metric_range(metric, values)
    assert lo <= min(values) and hi >= max(values) and lo < hi
    if want[0] is not None:
        assert lo >= want[0]
    if want[1] is not None:
        assert hi <= want[1]
    assert viz.metric_bounds(metric) == want


def test_metric_range_unknown_and_empty():
    assert viz.metric_range("mystery", [np.nan]) is None
    assert viz.metric_range("accuracy", []) == [0.0, 1.0]
    with pytest.raises(viz.VizInputError):
        viz.metric_range("cosine", ["a"])
