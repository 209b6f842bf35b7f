"""Probing figures on real probe_sweep and compare_representations output (seeded random features)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from viz_checks import check_common, check_error_bars

from latentprobe import schema as S
from latentprobe import viz
from latentprobe.viz import VizInputError

P = S.PROBE_SCORES


def test_probe_heatmap_layer_by_step(sweep):
    fig = viz.probe_heatmap(sweep)
    check_common(fig)
    assert len(fig.data) == 1
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z.shape == (2, 3)  # layers x steps
    np.testing.assert_allclose(z, sweep.pivot(P.SCORE).to_numpy())
    ci = np.asarray(fig.data[0].customdata, dtype=float)
    np.testing.assert_allclose(ci[..., 0], sweep.pivot(P.CI_LOW).to_numpy())
    np.testing.assert_allclose(ci[..., 1], sweep.pivot(P.CI_HIGH).to_numpy())
    assert "colour" in fig.layout.title.text
    assert fig.layout.xaxis.title.text == "latent step" and fig.layout.yaxis.title.text == "layer"
    assert "chance = 0.5" in fig.layout.title.subtitle.text
    assert viz.probe_heatmap(sweep.scores).to_dict() == fig.to_dict()


def test_probe_heatmap_selectivity_is_diverging(sweep):
    fig = viz.probe_heatmap(sweep, value=P.SELECTIVITY)
    assert fig.data[0].zmid == 0 and fig.data[0].zmin == -fig.data[0].zmax
    np.testing.assert_allclose(np.asarray(fig.data[0].z, dtype=float), sweep.pivot(P.SELECTIVITY).to_numpy())


def test_probe_heatmap_several_targets(sweep):
    both = pd.concat([sweep.scores, sweep.scores.assign(target="shape")])
    with pytest.raises(VizInputError, match="target"):
        viz.probe_heatmap(both)
    assert "shape" in viz.probe_heatmap(both, target="shape").layout.title.text
    with pytest.raises(VizInputError, match="not found"):
        viz.probe_heatmap(both, target="size")


def test_probe_controls_comparison(comparison):
    fig = viz.probe_controls(comparison)
    check_common(fig)
    assert [t.name for t in fig.data] == ["probe", "majority baseline", "shuffled labels", "control task"]
    probe = fig.data[0]
    assert list(probe.x) == list(comparison[S.PROBE_COMPARISON.REPRESENTATION])
    np.testing.assert_allclose(probe.y, comparison[P.SCORE])
    check_error_bars(probe.error_y, comparison[P.SCORE], comparison[P.CI_LOW], comparison[P.CI_HIGH])
    np.testing.assert_allclose(fig.data[3].y, comparison[P.CONTROL])
    assert len(fig.layout.shapes) == 1 and fig.layout.shapes[0].y0 == 0.5  # constant chance line
    assert fig.layout.xaxis.title.text == "representation"


def test_probe_controls_sweep(sweep):
    fig = viz.probe_controls(sweep)
    assert len(fig.data[0].x) == 6 and fig.data[0].x[0] == "layer 0, step 0"
    np.testing.assert_allclose(fig.data[0].y, sweep.scores[P.SCORE])


def test_probe_controls_varying_chance_is_a_trace(comparison):
    fig = viz.probe_controls(comparison.assign(chance=[0.25, 0.5, 0.25]))
    assert fig.data[-1].name == "chance" and len(fig.layout.shapes) == 0


@pytest.mark.parametrize(("func", "missing"), [(viz.probe_heatmap, "layer"), (viz.probe_controls, "score")])
def test_wrong_table_names_function_columns_and_fix(func, missing, within):
    with pytest.raises(VizInputError) as info:
        func(within.consecutive)
    msg = str(info.value)
    assert msg.startswith(func.__name__ + ":") and repr(missing) in msg and "ProbeSweepResult" in msg


def test_probe_heatmap_colours_on_the_scores_own_range_with_clean_titles(sweep):
    # every cell at 1.0 (the case): the scale is still [0, 1], not plotly's 0.6-1.4
    perfect = sweep.scores.assign(score=1.0, selectivity=0.0)
    fig = viz.probe_heatmap(perfect)
    assert (fig.data[0].zmin, fig.data[0].zmax) == (0.0, 1.0) and fig.data[0].zmid is None
    title = fig.layout.title.text
    assert "probe probe" not in title and title.startswith("Linear probe held-out accuracy by layer")
    assert fig.data[0].colorbar.title.text == "held-out accuracy"
    sel = viz.probe_heatmap(perfect, value=P.SELECTIVITY)
    assert (sel.data[0].zmin, sel.data[0].zmax, sel.data[0].zmid) == (-1.0, 1.0, 0.0)
    assert sel.layout.title.text.startswith("Selectivity (accuracy − control task) of the linear probe")
    # a regression probe: R² up to 1, below 0 where it is worse than the mean
    reg = sweep.scores.assign(task="regression", score=np.linspace(-0.3, 0.8, len(sweep.scores)))
    fig = viz.probe_heatmap(reg)
    assert (fig.data[0].zmin, fig.data[0].zmax) == (pytest.approx(-0.3), 1.0) and "R²" in fig.layout.title.text
