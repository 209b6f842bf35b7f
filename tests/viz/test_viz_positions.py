"""``viz.position_similarity_lines``: the figure draws the table's numbers, with bands and bounded axes."""

from __future__ import annotations

import numpy as np
import pytest

from latentprobe import geometry, viz
from latentprobe.errors import VizInputError


@pytest.fixture(scope="module")
def res():
    rng = np.random.default_rng(0)
    shared = rng.normal(size=8) * 3
    return geometry.position_similarity({"latents": rng.normal(size=(12, 3, 2, 8)) + shared,
                                         "close": rng.normal(size=(12, 3, 8)),
                                         "image": rng.normal(size=(12, 3, 8)) * 0.1 + shared}, layers=[0, 3, 6])


def test_lines_are_the_table(res):
    fig = viz.position_similarity_lines(res)
    assert fig.layout.meta["kind"] == "position_similarity_lines"
    assert viz.caption_for(fig) == viz.CAPTIONS["position_similarity_lines"]
    lines = [t for t in fig.data if t.fill is None]
    assert [t.name for t in lines] == ["latents", "latents", "close", "close", "image", "image"]
    t = res.table
    for i, g in enumerate(("latents", "close", "image")):
        sub = t[t.position_group == g]
        cos, spread = lines[2 * i], lines[2 * i + 1]
        assert list(cos.x) == [0, 3, 6] and np.allclose(cos.y, sub.mean_offdiag) and np.allclose(spread.y, sub.spread)
        assert cos.xaxis == "x" and spread.xaxis == "x2"
    bands = [t for t in fig.data if t.fill == "toself"]
    assert len(bands) == 3  # one interval band per group, on the cosine panel only
    lo, hi = fig.layout.yaxis.range
    assert -1.0 <= lo < hi <= 1.0 and list(fig.layout.yaxis2.range) == [0.0, 1.0]


def test_wrong_input_says_what_to_pass(res):
    with pytest.raises(VizInputError, match="PositionSimilarityResult"):
        viz.position_similarity_lines(res.per_instance)
    with pytest.raises(VizInputError, match="spread"):
        viz.position_similarity_lines(res.gap)
