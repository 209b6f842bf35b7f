"""Causal figures on real x_to_z, z_to_y and decompose output (the mediated toy model)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from viz_checks import check_band, check_common, check_error_bars, is_band

from latentprobe import schema as S
from latentprobe import viz
from latentprobe.errors import LatentProbeError
from latentprobe.stats import effects_frame
from latentprobe.viz import VizInputError

XS, ZS, MS = S.XZ_SUMMARY, S.ZY_SUMMARY, S.MEDIATION_SUMMARY


# --------------------------------------------------------------------------- X -> Z
def test_xz_lines_plots_the_summary(xz):
    fig = viz.xz_lines(xz)
    check_common(fig)
    s = xz.summary
    layers = sorted(s[XS.LAYER].unique())
    perts = list(dict.fromkeys(s[XS.PERTURBATION]))
    baselines = [b for b in dict.fromkeys(s[XS.SOURCE]) if b != "latent"]
    assert len(layers) == 2 and len(perts) == 2 and len(baselines) == 4
    # per panel (layer x metric) and perturbation: band + line + one flat line per baseline
    assert len(fig.data) == len(layers) * 2 * len(perts) * (2 + len(baselines))
    assert len(fig.layout.annotations) == len(layers) * 2  # panel titles
    assert fig.layout.yaxis.title.text == "cosine(clean, perturbed)"
    assert fig.layout.xaxis3.title.text == "latent step"  # bottom row only
    assert [t.name for t in fig.data if t.showlegend] == perts
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    bands = [t for t in fig.data if is_band(t)]
    assert len(lines) == len(bands) == len(layers) * 2 * len(perts)
    i = 0
    for layer in layers:
        for metric in S.XZ_METRICS:
            for pert in perts:
                sel = s[(s[XS.LAYER] == layer) & (s[XS.METRIC] == metric) & (s[XS.PERTURBATION] == pert)
                        & (s[XS.SOURCE] == "latent")].sort_values(XS.STEP)
                assert lines[i].name == pert
                np.testing.assert_array_equal(lines[i].x, sel[XS.STEP])
                np.testing.assert_allclose(lines[i].y, sel[XS.ESTIMATE])
                check_band(bands[i], sel[XS.STEP], sel[XS.CI_LOW], sel[XS.CI_HIGH])
                i += 1


def test_xz_lines_baselines_are_flat_at_their_estimate(xz):
    fig = viz.xz_lines(xz, layer=0)
    s = xz.summary
    flat = [t for t in fig.data if t.mode == "lines" and not is_band(t)]
    assert len(flat) == 2 * 2 * 4
    for t in flat:
        pert, src = t.name.split(": ")
        metric = "cosine" if t.yaxis == "y" else "rel_l2"
        want = s[(s[XS.LAYER] == 0) & (s[XS.PERTURBATION] == pert) & (s[XS.SOURCE] == src)
                 & (s[XS.METRIC] == metric)][XS.ESTIMATE]
        assert list(t.y) == [want.iloc[0]] * 2
    assert len(fig.layout.annotations) == 2


def test_xz_lines_options_and_table_input(xz):
    assert len(viz.xz_lines(xz, layer=1, baselines=False).data) == 2 * 2 * 2
    assert len(viz.xz_lines(xz, layer=[0], baselines=["image_mean"]).data) == 2 * 2 * 3
    assert viz.xz_lines(xz.summary).to_dict() == viz.xz_lines(xz).to_dict()
    with pytest.raises(VizInputError, match="layer=7"):
        viz.xz_lines(xz, layer=7)


# --------------------------------------------------------------------------- Z -> Y
def test_zy_bars_plots_the_summary(zy):
    fig = viz.zy_bars(zy)
    check_common(fig)
    s = zy.summary
    ivs = list(dict.fromkeys(s[ZS.INTERVENTION]))
    assert ivs[0] == S.CONTROL_INTERVENTION and len(ivs) == 4
    panels = [m for m in S.ZY_METRICS if m in set(s[ZS.METRIC])]
    assert len(fig.layout.annotations) >= len(panels)
    assert [t.name for t in fig.data if t.showlegend] == ["replay", "redecode"]
    # replay has every metric, redecode all but recorded_logprob_change
    assert len(fig.data) == 2 * len(panels) - 1
    for t in fig.data:
        assert t.type == "bar" and list(t.x) == ivs
        metric = panels[int(t.xaxis[1:] or 1) - 1]
        sel = s[(s[ZS.METRIC] == metric) & (s[ZS.MODE] == t.name)].set_index(ZS.INTERVENTION).loc[ivs]
        np.testing.assert_allclose(t.y, sel[ZS.ESTIMATE])
        check_error_bars(t.error_y, sel[ZS.ESTIMATE], sel[ZS.CI_LOW], sel[ZS.CI_HIGH])
    assert fig.layout.yaxis.title.text == "accuracy"
    run = s[(s[ZS.MODE] == S.RUN_MODE)][ZS.ESTIMATE].iloc[0]
    assert any(sh.y0 == sh.y1 == run for sh in fig.layout.shapes)  # original run's accuracy


def test_zy_bars_selects_metrics_and_modes(zy):
    fig = viz.zy_bars(zy, metrics=["kl", "flip_rate"], modes="redecode")
    assert [t.name for t in fig.data] == ["redecode", "redecode"]
    assert fig.layout.yaxis.title.text == "KL(control ‖ intervention)<br>first answer token (nats)"
    kl = zy.summary[(zy.summary[ZS.METRIC] == "kl") & (zy.summary[ZS.MODE] == "redecode")]
    np.testing.assert_allclose(fig.data[0].y, kl[ZS.ESTIMATE])
    with pytest.raises(VizInputError, match="not found"):
        viz.zy_bars(zy, modes="propagate")


# --------------------------------------------------------------------------- mediation
def _effect_rows(med):
    s = med.summary
    return s[s[MS.KIND] == "effect"].set_index(MS.EFFECT).loc[list(S.EFFECT_NAMES)]


def test_decomposition_bars_plots_the_effects(med):
    fig = viz.decomposition_bars(med)
    check_common(fig)
    assert len(fig.data) == 1
    bar = fig.data[0]
    assert list(bar.x) == list(S.EFFECT_NAMES)
    want = _effect_rows(med)
    np.testing.assert_allclose(bar.y, want[MS.ESTIMATE])
    check_error_bars(bar.error_y, want[MS.ESTIMATE], want[MS.CI_LOW], want[MS.CI_HIGH])
    assert fig.layout.xaxis.title.text == "effect" and fig.layout.yaxis.title.text == "effect on the outcome (treated − clean)"
    gap = med.effects["TE"].estimate - med.effects["NDE"].estimate - med.effects["NIE"].estimate
    assert bar.customdata[0][-1] == pytest.approx(gap)


def test_decomposition_bars_groups(med):
    fig = viz.decomposition_bars({"mediated": med, "again": med})
    assert [t.name for t in fig.data] == ["mediated", "again"]
    stacked = pd.concat([med.summary.assign(variant=v) for v in ("a", "b")])
    fig = viz.decomposition_bars(stacked)  # the one added column that varies
    assert [t.name for t in fig.data] == ["a", "b"]
    with pytest.raises(VizInputError, match="by="):
        viz.decomposition_bars(pd.concat([med.summary, med.summary]))


def test_decomposition_bars_from_effects(med):
    from_effects = viz.decomposition_bars(list(med.effects.values()))
    from_frame = viz.decomposition_bars(effects_frame(list(med.effects.values())))
    for fig in (from_effects, from_frame):
        assert list(fig.data[0].x) == list(S.EFFECT_NAMES)
        np.testing.assert_allclose(fig.data[0].y, [med.effects[e].estimate for e in S.EFFECT_NAMES])


@pytest.mark.parametrize("form", ["result", "effects", "frame"])
def test_effects_forest(med, form):
    arg = {"result": med, "effects": med.effects, "frame": effects_frame(list(med.effects.values()))}[form]
    fig = viz.effects_forest(arg)
    check_common(fig)
    assert len(fig.data) == 1
    tr = fig.data[0]
    assert list(tr.y) == list(S.EFFECT_NAMES)
    eff = [med.effects[e] for e in S.EFFECT_NAMES]
    np.testing.assert_allclose(tr.x, [e.estimate for e in eff])
    check_error_bars(tr.error_x, [e.estimate for e in eff], [e.ci_low for e in eff], [e.ci_high for e in eff])
    assert list(fig.layout.yaxis.categoryarray) == list(S.EFFECT_NAMES)[::-1]  # first row on top
    assert any(s.x0 == 0 and s.x1 == 0 for s in fig.layout.shapes)  # zero line
    # n = 12 < 30: every effect carries a small-sample note, drawn as an open marker
    assert set(tr.marker.symbol) == {"circle-open"}


def test_effects_forest_by_group(med):
    df = pd.concat([effects_frame(list(med.effects.values())).assign(model=m) for m in ("a", "b", "c")])
    fig = viz.effects_forest(df, by="model")
    assert len(fig.data) == 3 and fig.layout.scattermode == "group"


# --------------------------------------------------------------------------- wrong input
@pytest.mark.parametrize(
    ("func", "fixture", "attr", "missing", "hint"),
    [
        (viz.xz_lines, "zy", "summary", "perturbation", "XZResult"),
        (viz.zy_bars, "xz", None, "intervention", "ZYResult"),
        (viz.zy_bars, "zy", "rows", "metric", "ZYResult"),
        (viz.decomposition_bars, "zy", None, "effect", "MediationResult"),
        (viz.effects_forest, "xz", "rows", "name", "MediationResult"),
    ],
)
def test_wrong_result_names_function_columns_and_fix(request, func, fixture, attr, missing, hint):
    obj = request.getfixturevalue(fixture)
    arg = obj if attr is None else getattr(obj, attr)
    with pytest.raises(VizInputError) as info:
        func(arg)
    assert isinstance(info.value, LatentProbeError) and isinstance(info.value, ValueError)
    msg = str(info.value)
    assert msg.startswith(func.__name__ + ":")
    assert repr(missing) in msg and "has columns" in msg and hint in msg


def test_empty_and_non_table_inputs(zy):
    with pytest.raises(VizInputError, match="no rows"):
        viz.zy_bars(zy.summary.iloc[:0])
    with pytest.raises(VizInputError, match="ZYResult"):
        viz.zy_bars([1, 2, 3])
    with pytest.raises(VizInputError, match="numeric"):
        viz.zy_bars(zy.summary.assign(estimate="high"))
