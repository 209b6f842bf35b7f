"""The probe heatmap stars only the cells that survive the multiple-comparison adjustment."""

from __future__ import annotations

import numpy as np
import pytest

from latentprobe import viz
from latentprobe.errors import VizInputError
from latentprobe.probing import LinearProbe, probe_sweep


@pytest.fixture(scope="module")
def sweep():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(60), 2)
    y = groups % 3
    feats = rng.normal(size=(120, 2, 3, 4))
    feats[:, 1, 0, :3] += 2.0 * np.eye(3)[y]
    return probe_sweep(feats, y, groups, n_splits=4, controls=False, progress=False, probe=LinearProbe(Cs=(1.0,)))


def test_heatmap_stars_the_surviving_cells(sweep):
    fig = viz.probe_heatmap(sweep)
    assert len(fig.data) == 2
    s = sweep.scores
    keep = s[s["p_holm"] <= 0.05]
    assert list(zip(fig.data[1].y, fig.data[1].x)) == [(str(a), str(b)) for a, b in zip(keep["layer"], keep["step"])]
    assert [(int(a), int(b)) for a, b in zip(keep["layer"], keep["step"])] == [(1, 0)]
    assert "survives Holm" in fig.layout.title.subtitle.text and "over 6 tests" in fig.layout.title.subtitle.text
    assert "Holm" in fig.layout.meta["caption"]
    assert "simultaneous CI" in fig.data[0].hovertemplate


def test_heatmap_marks_nothing_when_asked_or_when_nothing_survives(sweep):
    assert len(viz.probe_heatmap(sweep, mark=None).data) == 1
    scores = sweep.scores.assign(p_holm=1.0, p_bh=1.0)
    fig = viz.probe_heatmap(scores, mark="bh")
    assert len(fig.data) == 1 and "none survives Benjamini-Hochberg" in fig.layout.title.subtitle.text
    old = sweep.scores.drop(columns=["p_holm", "p_bh"])  # a table written before the columns existed
    assert len(viz.probe_heatmap(old).data) == 1
    with pytest.raises(VizInputError, match="mark"):
        viz.probe_heatmap(sweep, mark="sidak")
