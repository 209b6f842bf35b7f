"""Geometry figures on real similarity output (seeded random latents)."""

from __future__ import annotations

import numpy as np
import pytest
from viz_checks import check_band, check_common, is_band

from latentprobe import schema as S
from latentprobe import viz
from latentprobe.viz import VizInputError


def test_similarity_heatmap_within_result(within):
    fig = viz.similarity_heatmap(within, title="Step cosine")
    check_common(fig)
    assert fig.layout.title.text == "Step cosine"
    assert len(fig.data) == 1 and fig.data[0].type == "heatmap"
    np.testing.assert_allclose(np.asarray(fig.data[0].z, dtype=float), within.step_matrix)
    assert fig.data[0].zmin == -1 and fig.data[0].zmax == 1 and fig.data[0].zmid == 0
    assert fig.layout.xaxis.title.text == fig.layout.yaxis.title.text == "latent step"


def test_similarity_heatmap_across_result_and_cka(across, cka):
    fig = viz.similarity_heatmap(across, step=2)
    np.testing.assert_allclose(np.asarray(fig.data[0].z, dtype=float), across.matrices[2])
    assert fig.layout.xaxis.title.text == "instance" and "step 2" in fig.layout.title.subtitle.text
    with pytest.raises(VizInputError, match="step=9"):
        viz.similarity_heatmap(across, step=9)
    fig = viz.similarity_heatmap(cka, zmin=0, zmax=1, colorbar_title="CKA")
    np.testing.assert_allclose(np.asarray(fig.data[0].z, dtype=float), cka)
    assert fig.data[0].zmid is None


def test_similarity_heatmap_rejects_bad_shapes(across):
    with pytest.raises(VizInputError, match="square"):
        viz.similarity_heatmap(np.zeros((2, 3)))
    with pytest.raises(VizInputError, match=r"matrices\[k\]"):
        viz.similarity_heatmap(across.matrices)
    with pytest.raises(VizInputError, match="labels"):
        viz.similarity_heatmap(np.zeros((3, 3)), labels=["a"])


def test_consecutive_similarity_band_and_line(within):
    c = within.consecutive
    fig = viz.consecutive_similarity(within)
    check_common(fig)
    band, line = fig.data
    assert is_band(band) and line.mode == "lines+markers"
    np.testing.assert_allclose(line.y, c[S.CONSECUTIVE.MEAN])
    np.testing.assert_array_equal(line.x, c[S.CONSECUTIVE.STEP])
    check_band(band, c[S.CONSECUTIVE.STEP], c[S.CONSECUTIVE.CI_LOW], c[S.CONSECUTIVE.CI_HIGH])
    assert fig.layout.xaxis.title.text == "latent step k"
    assert viz.consecutive_similarity(c).to_dict() == fig.to_dict()


def test_consecutive_similarity_several_results(within, within_centered):
    fig = viz.consecutive_similarity({"latent": within, "latent centred": within_centered})
    assert [t.name for t in fig.data if not is_band(t)] == ["latent", "latent centred"]
    assert fig.data[1].line.color == viz.PALETTE[0]  # the latent series keeps its fixed colour
    np.testing.assert_allclose(fig.data[3].y, within_centered.consecutive[S.CONSECUTIVE.MEAN])


def test_across_instance_summary_with_groups(across):
    s = across.summary
    fig = viz.across_instance_summary(across)
    check_common(fig)
    assert [t.name for t in fig.data] == ["all pairs (95% CI)", "all pairs", "same-group cosine",
                                          "different-group cosine"]
    np.testing.assert_allclose(fig.data[1].y, s[S.ACROSS_SUMMARY.MEAN_OFFDIAG])
    check_band(fig.data[0], s[S.ACROSS_SUMMARY.STEP], s[S.ACROSS_SUMMARY.CI_LOW], s[S.ACROSS_SUMMARY.CI_HIGH])
    np.testing.assert_allclose(fig.data[2].y, across.by_group[S.ACROSS_BY_GROUP.WITHIN_GROUP_MEAN])
    np.testing.assert_allclose(fig.data[3].y, across.by_group[S.ACROSS_BY_GROUP.BETWEEN_GROUP_MEAN])


def test_across_instance_summary_from_x_to_z(xz):
    fig = viz.across_instance_summary(xz)
    a = xz.across
    assert [t.name for t in fig.data if not is_band(t)] == list(S.CENTERINGS)
    for centred, line in zip((False, True), [t for t in fig.data if not is_band(t)]):
        np.testing.assert_allclose(line.y, a[a[S.XZ_ACROSS.CENTER] == centred][S.XZ_ACROSS.MEAN_OFFDIAG])


def test_collapse_bars(collapse):
    fig = viz.collapse_bars(collapse)
    check_common(fig)
    assert len(fig.data) == 3 * 2 and all(t.type == "bar" for t in fig.data)  # metrics x centerings
    assert list(fig.data[0].x) == ["latent", "text_tokens", "random_matched_norm"]
    raw = collapse[collapse[S.COLLAPSE_TABLE.CENTERING] == "raw"]
    np.testing.assert_allclose(fig.data[0].y, raw[S.COLLAPSE_TABLE.WITHIN_INSTANCE_MEAN])
    assert [a.text for a in fig.layout.annotations] == ["within-instance cosine", "across-instance cosine",
                                                        "effective rank"]
    fig = viz.collapse_bars(collapse, metrics=S.COLLAPSE_TABLE.PARTICIPATION_RATIO)
    assert len(fig.data) == 2
    with pytest.raises(VizInputError, match="not_a_metric"):
        viz.collapse_bars(collapse, metrics=["not_a_metric"])


def test_norm_profile(norms):
    fig = viz.norm_profile(norms)
    check_common(fig)
    band, line = fig.data
    lat = norms[norms[S.NORM_TABLE.SOURCE] == "latent"]
    mean, sd = lat[S.NORM_TABLE.MEAN_NORM].to_numpy(), lat[S.NORM_TABLE.STD_NORM].to_numpy()
    np.testing.assert_allclose(line.y, mean)
    check_band(band, lat[S.NORM_TABLE.STEP].to_numpy(float), mean - sd, mean + sd)
    emb = norms[norms[S.NORM_TABLE.SOURCE] == "token_embedding"][S.NORM_TABLE.MEAN_NORM].iloc[0]
    assert len(fig.layout.shapes) == 1 and fig.layout.shapes[0].y0 == pytest.approx(emb)


@pytest.mark.parametrize(
    ("func", "fixture", "missing", "hint"),
    [
        (viz.consecutive_similarity, "norms", "mean", "WithinInstanceResult"),
        (viz.across_instance_summary, "collapse", "step", "AcrossInstancesResult"),
        (viz.collapse_bars, "norms", "centering", "collapse_table"),
        (viz.norm_profile, "collapse", "step", "norm_table"),
    ],
)
def test_wrong_table_names_function_columns_and_fix(request, func, fixture, missing, hint):
    with pytest.raises(VizInputError) as info:
        func(request.getfixturevalue(fixture))
    msg = str(info.value)
    assert msg.startswith(func.__name__ + ":") and repr(missing) in msg and "has columns" in msg and hint in msg
