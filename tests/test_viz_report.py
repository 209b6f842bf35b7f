"""Tests for latentprobe.viz and latentprobe.report."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from plotly.offline import get_plotlyjs

from latentprobe import viz
from latentprobe.report import Report
from latentprobe.geometry import across_instances, collapse_table, norm_table, within_instance
from latentprobe.stats import Effect, effects_frame
from latentprobe.viz import VizInputError

# --------------------------------------------------------------------------- #
# Synthetic inputs
# --------------------------------------------------------------------------- #
K = 4


def _consecutive(mean=0.8, ci=True, **extra):
    steps = np.arange(1, K)
    df = pd.DataFrame(
        {
            "step": steps,
            "mean": mean - 0.05 * steps,
            "ci_low": mean - 0.05 * steps - 0.1 if ci else np.nan,
            "ci_high": mean - 0.05 * steps + 0.1 if ci else np.nan,
            "n": 20,
        }
    )
    for key, value in extra.items():
        df[key] = value
    return df


def _scores(targets=("shape",), layers=(0, 1, 2), steps=(0, 1, 2, 3), controls=True):
    rows = []
    for t in targets:
        for layer in layers:
            for step in steps:
                s = 0.5 + 0.1 * layer - 0.02 * step
                rows.append(
                    {
                        "target": t, "layer": layer, "step": step, "task": "classification",
                        "score": s, "ci_low": s - 0.05, "ci_high": s + 0.05, "n": 40, "n_groups": 10,
                        "majority": 0.3, "shuffle": 0.28 if controls else np.nan,
                        "control": 0.35 if controls else np.nan,
                        "selectivity": s - 0.35 if controls else np.nan, "chance": 0.25,
                    }
                )
    return pd.DataFrame(rows)


def _compare():
    df = _scores(layers=(0,), steps=(0,)).iloc[[0, 0, 0]].reset_index(drop=True)
    df = df.drop(columns=["layer", "step"])
    df.insert(0, "representation", ["latent", "image_tokens", "random_model"])
    df["score"] = [0.8, 0.6, 0.3]
    return df


def _effects(variants=None):
    rows = []
    for v in variants or [None]:
        for name, est in (("TE", 0.5), ("NDE", 0.2), ("NIE", 0.25)):
            row = {"effect": name, "estimate": est, "ci_low": est - 0.1, "ci_high": est + 0.1,
                   "n": 50, "p_value": 0.01}
            if v is not None:
                row["variant"] = v
            rows.append(row)
    return pd.DataFrame(rows)


def _xz(sources=("latent", "text_tokens"), metrics=("cosine", "rel_l2"),
        perturbations=("swap_object", "blank_image"), layers=(None,)):
    rows = []
    for layer in layers:
        for s in sources:
            for m in metrics:
                for p in perturbations:
                    for step in range(K):
                        v = 0.9 - 0.1 * step if m == "cosine" else 0.1 * step
                        row = {"perturbation": p, "step": step, "metric": m, "value": v,
                               "ci_low": v - 0.05, "ci_high": v + 0.05, "source": s, "n": 30}
                        if layer is not None:
                            row["layer"] = layer
                        rows.append(row)
    return pd.DataFrame(rows)


def _zy(metrics=("accuracy", "flip_rate"), modes=("replace", "add")):
    rows = []
    for m in metrics:
        for mode in modes:
            for iv in ("zero", "mean", "shuffle"):
                rows.append({"intervention": iv, "mode": mode, "metric": m, "estimate": 0.5,
                             "ci_low": 0.4, "ci_high": 0.6, "n": 40, "p_value": 0.2})
    return pd.DataFrame(rows)


def _is_band(trace) -> bool:
    return trace.type == "scatter" and trace.fill == "toself"


def _check_common(fig):
    assert isinstance(fig, go.Figure)
    assert fig.layout.title.text
    assert tuple(fig.layout.colorway) == viz.PALETTE
    assert fig.layout.template.layout.plot_bgcolor == "white"  # plotly_white


# --------------------------------------------------------------------------- #
# Similarity figures
# --------------------------------------------------------------------------- #
def test_similarity_heatmap_matrix_and_dataframe():
    m = np.eye(K) * 0.5 + 0.5
    fig = viz.similarity_heatmap(m, title="Step cosine")
    _check_common(fig)
    assert fig.layout.title.text == "Step cosine"
    assert len(fig.data) == 1 and fig.data[0].type == "heatmap"
    assert np.asarray(fig.data[0].z).shape == (K, K)
    assert fig.data[0].zmin == -1 and fig.data[0].zmax == 1 and fig.data[0].zmid == 0
    df = pd.DataFrame(m, columns=list("abcd"), index=list("abcd"))
    fig = viz.similarity_heatmap(df, zmin=0, zmax=1)
    assert list(fig.data[0].x) == list("abcd")
    assert fig.data[0].zmid is None


def test_similarity_heatmap_rejects_bad_shapes():
    with pytest.raises(VizInputError, match="square"):
        viz.similarity_heatmap(np.zeros((2, 3)))
    with pytest.raises(VizInputError, match=r"matrices\[k\]"):
        viz.similarity_heatmap(np.zeros((2, 3, 3)))
    with pytest.raises(VizInputError, match="labels"):
        viz.similarity_heatmap(np.zeros((3, 3)), labels=["a"])


def test_consecutive_similarity_band_and_line():
    fig = viz.consecutive_similarity(_consecutive())
    _check_common(fig)
    assert len(fig.data) == 2
    band, line = fig.data
    assert _is_band(band) and len(band.x) == 2 * (K - 1)
    assert line.mode == "lines+markers" and len(line.y) == K - 1


def test_consecutive_similarity_several_series():
    df = pd.concat(
        [
            _consecutive(source=s, centering=c)
            for s in ("latent", "text_tokens") for c in ("raw", "centered")
        ]
    )
    fig = viz.consecutive_similarity(df)
    assert len(fig.data) == 8  # band + line for each of 4 series
    names = [t.name for t in fig.data if not _is_band(t)]
    assert names == ["latent, raw", "latent, centered", "text_tokens, raw", "text_tokens, centered"]
    # the latent series keeps its fixed colour
    assert fig.data[1].line.color == viz.PALETTE[0]


def test_consecutive_similarity_without_ci_has_no_band():
    fig = viz.consecutive_similarity(_consecutive(ci=False))
    assert len(fig.data) == 1 and not _is_band(fig.data[0])


def test_similarity_figures_from_result_objects():
    rng = np.random.default_rng(0)
    lat = rng.normal(size=(12, K, 6))
    w = within_instance(lat, n_boot=50)
    a = across_instances(lat, groups=[i % 3 for i in range(12)], n_boot=50)
    assert len(viz.similarity_heatmap(w).data) == 1
    assert len(viz.consecutive_similarity({"latent": w, "random": w}).data) == 4
    fig = viz.across_instance_summary(a)
    _check_common(fig)
    assert len(fig.data) == 4  # band, line, same-group line, different-group line
    assert _is_band(fig.data[0])
    table = collapse_table(lat, baselines={"text_tokens": rng.normal(size=(12, K, 6))})
    fig = viz.collapse_bars(table)
    _check_common(fig)
    assert len(fig.data) == 3 * 2  # metrics x centerings
    assert list(fig.data[0].x)[0] == "latent"
    assert all(t.type == "bar" for t in fig.data)
    fig = viz.norm_profile(norm_table(lat, rng.normal(size=(30, 6))))
    assert len(fig.data) == 2 and _is_band(fig.data[0])
    assert len(fig.layout.shapes) == 1  # token-embedding reference line


def test_collapse_bars_metrics_argument():
    rng = np.random.default_rng(1)
    table = collapse_table(rng.normal(size=(8, 3, 5)))
    fig = viz.collapse_bars(table, metrics="participation_ratio")
    assert len(fig.data) == 2
    with pytest.raises(VizInputError, match="not_a_metric"):
        viz.collapse_bars(table, metrics=["not_a_metric"])


# --------------------------------------------------------------------------- #
# Probing figures
# --------------------------------------------------------------------------- #
def test_probe_heatmap_layer_by_step():
    fig = viz.probe_heatmap(_scores())
    _check_common(fig)
    assert len(fig.data) == 1
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z.shape == (3, 4)  # layers x steps
    assert z[2, 0] == pytest.approx(0.7)
    assert fig.data[0].customdata is not None  # CI in the hover
    assert "shape" in fig.layout.title.text


def test_probe_heatmap_selectivity_is_diverging():
    fig = viz.probe_heatmap(_scores(), value="selectivity")
    assert fig.data[0].zmid == 0
    assert fig.data[0].zmin == -fig.data[0].zmax


def test_probe_heatmap_several_targets():
    df = _scores(targets=("shape", "color"))
    with pytest.raises(VizInputError, match="target"):
        viz.probe_heatmap(df)
    fig = viz.probe_heatmap(df, target="color")
    assert "color" in fig.layout.title.text
    with pytest.raises(VizInputError, match="not found"):
        viz.probe_heatmap(df, target="size")


def test_probe_controls_compare_frame():
    fig = viz.probe_controls(_compare())
    _check_common(fig)
    assert [t.name for t in fig.data] == ["probe", "majority baseline", "shuffled labels", "control task"]
    score = fig.data[0]
    assert list(score.x) == ["latent", "image_tokens", "random_model"]
    assert score.error_y.array is not None and len(score.error_y.array) == 3
    assert score.error_y.arrayminus is not None
    assert len(fig.layout.shapes) == 1  # constant chance line


def test_probe_controls_sweep_without_controls():
    df = _scores(layers=(0, 1), steps=(0,), controls=False)
    fig = viz.probe_controls(df)
    assert [t.name for t in fig.data] == ["probe", "majority baseline"]
    assert list(fig.data[0].x) == ["layer 0, step 0", "layer 1, step 0"]


def test_probe_controls_varying_chance_is_a_trace():
    df = _compare()
    df["chance"] = [0.25, 0.5, 0.25]
    fig = viz.probe_controls(df)
    assert fig.data[-1].name == "chance" and len(fig.layout.shapes) == 0


# --------------------------------------------------------------------------- #
# Effects and mediation figures
# --------------------------------------------------------------------------- #
def test_effects_forest_from_effects_and_groups():
    effects = [
        Effect("TE", 0.5, 0.3, 0.7, 40, None, "paired bootstrap"),
        Effect("NIE", 0.1, -0.1, 0.3, 12, None, "paired bootstrap", note="small sample"),
    ]
    fig = viz.effects_forest(effects)
    _check_common(fig)
    assert len(fig.data) == 1
    tr = fig.data[0]
    assert list(tr.x) == [0.5, 0.1]
    assert np.allclose(tr.error_x.array, [0.2, 0.2]) and np.allclose(tr.error_x.arrayminus, [0.2, 0.2])
    assert list(tr.marker.symbol) == ["circle", "circle-open"]
    assert any(s.x0 == 0 and s.x1 == 0 for s in fig.layout.shapes)  # zero line
    assert list(fig.layout.yaxis.categoryarray) == ["NIE", "TE"]  # first row on top

    df = pd.concat([effects_frame(effects).assign(model=m) for m in ("a", "b", "c")])
    fig = viz.effects_forest(df, by="model")
    assert len(fig.data) == 3 and fig.layout.scattermode == "group"


def test_decomposition_bars_grouped():
    fig = viz.decomposition_bars(_effects(["latent", "text"]), by="variant")
    _check_common(fig)
    assert len(fig.data) == 2
    assert [t.name for t in fig.data] == ["latent", "text"]
    assert list(fig.data[0].x) == ["TE", "NDE", "NIE"]
    assert np.allclose(fig.data[0].error_y.array, 0.1)
    # grouping column found automatically when effects repeat
    assert len(viz.decomposition_bars(_effects(["latent", "text"])).data) == 2
    assert len(viz.decomposition_bars(_effects()).data) == 1


def test_decomposition_bars_orders_effects_and_needs_grouping():
    df = _effects().iloc[::-1]
    assert list(viz.decomposition_bars(df).data[0].x) == ["TE", "NDE", "NIE"]
    dup = pd.concat([_effects(), _effects()])
    with pytest.raises(VizInputError, match="by="):
        viz.decomposition_bars(dup)


def test_xz_lines_facets_and_bands():
    fig = viz.xz_lines(_xz())
    _check_common(fig)
    # 2 sources x 2 metrics x 2 perturbations, each band + line
    assert len(fig.data) == 16
    assert sum(_is_band(t) for t in fig.data) == 8
    legend = [t.name for t in fig.data if t.showlegend]
    assert legend == ["swap_object", "blank_image"]
    assert len(fig.layout.annotations) == 4  # panel titles


def test_xz_lines_mean_column_and_layer_choice():
    df = _xz(sources=("latent",), metrics=("cosine",), layers=(3, 7)).rename(columns={"value": "mean"})
    with pytest.raises(VizInputError, match="layer"):
        viz.xz_lines(df)
    fig = viz.xz_lines(df, layer=7)
    assert len(fig.data) == 4
    no_ci = df.drop(columns=["ci_low", "ci_high"])
    assert len(viz.xz_lines(no_ci, layer=3).data) == 2


def test_zy_bars_panels_and_error_bars():
    fig = viz.zy_bars(_zy())
    _check_common(fig)
    assert len(fig.data) == 4  # 2 metrics x 2 modes
    assert all(t.type == "bar" and t.error_y.array is not None for t in fig.data)
    assert [t.name for t in fig.data if t.showlegend] == ["replace", "add"]
    assert list(fig.data[0].x) == ["zero", "mean", "shuffle"]
    assert len(viz.zy_bars(_zy(), metric="flip_rate").data) == 2


@pytest.mark.parametrize(
    ("func", "frame", "drop"),
    [
        (viz.consecutive_similarity, _consecutive, "ci_low"),
        (viz.across_instance_summary, lambda: _consecutive().rename(columns={"mean": "mean_offdiag"}), "step"),
        (viz.probe_heatmap, _scores, "layer"),
        (viz.probe_controls, _compare, "score"),
        (viz.effects_forest, _effects, "estimate"),
        (viz.decomposition_bars, _effects, "ci_high"),
        (viz.xz_lines, _xz, "perturbation"),
        (viz.zy_bars, _zy, "mode"),
    ],
)
def test_missing_column_error_lists_missing_and_present(func, frame, drop):
    df = frame().drop(columns=[drop])
    with pytest.raises(ValueError) as info:
        func(df)
    assert isinstance(info.value, VizInputError)
    msg = str(info.value)
    assert repr(drop) in msg and "has columns" in msg
    assert repr(str(df.columns[0])) in msg


def test_empty_and_non_frame_inputs():
    with pytest.raises(VizInputError, match="no rows"):
        viz.zy_bars(_zy().iloc[:0])
    with pytest.raises(VizInputError, match="DataFrame"):
        viz.zy_bars([1, 2, 3])
    with pytest.raises(VizInputError, match="numeric"):
        viz.zy_bars(_zy().assign(estimate="high"))


# --------------------------------------------------------------------------- #
# Report
# --------------------------------------------------------------------------- #
EVIL = "<script>alert('x')</script>"


def _report() -> tuple[Report, list[go.Figure]]:
    figs = [viz.consecutive_similarity(_consecutive()), viz.zy_bars(_zy())]
    rep = Report("Latent probe " + EVIL, subtitle="toy run")
    rep.add_heading("Similarity")
    rep.add_text("The **latent** steps are similar; see `within_instance`.\n\nSecond " + EVIL)
    rep.add_figure(figs[0], caption="Consecutive cosine")
    rep.add_heading("Interventions", level=3)
    rep.add_figure(figs[1])
    table = pd.DataFrame({"name " + EVIL: ["a", EVIL], "value": [0.123456, np.nan]})
    rep.add_table(table, caption="Table " + EVIL)
    rep.add_note("n = 12: the intervals are unreliable " + EVIL, kind="warning")
    rep.add_key_values({"model " + EVIL: EVIL, "n": 12, "p": 0.0123456})
    rep.add_heading("Similarity")  # duplicate heading text gets its own anchor
    return rep, figs


def test_report_writes_self_contained_file(tmp_path):
    rep, _ = _report()
    out = rep.write(tmp_path / "sub" / "report.html")
    assert out.exists()
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temp file left
    doc = out.read_text(encoding="utf-8")
    js = get_plotlyjs()
    marker = js[len(js) // 2 : len(js) // 2 + 200]
    assert doc.count(marker) == 1
    assert doc.count(js) == 1
    # one <script> for plotly.js plus one per figure, nothing else
    assert doc.count("<script") == 1 + 2
    assert not re.search(r"<script[^>]*\ssrc\s*=", doc)
    assert "<link" not in doc
    outside = doc.replace(js, "")
    assert 'src="http' not in outside and 'href="http' not in outside
    assert "src='http" not in outside and "href='http" not in outside
    assert 'id="lp-figure-1"' in doc and 'id="lp-figure-2"' in doc
    assert "latentprobe 0.1.0" in doc and "Created " in doc


def test_report_escapes_user_content(tmp_path):
    rep, _ = _report()
    doc = rep.write(tmp_path / "r.html").read_text(encoding="utf-8")
    assert "alert(" in doc  # the text is there ...
    assert "<script>alert" not in doc  # ... but never as markup
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in doc
    assert "<strong>latent</strong>" in doc and "<code>within_instance</code>" in doc
    assert "0.123" in doc and "0.123456" not in doc and "—" in doc


def test_report_toc_entry_per_heading():
    rep, _ = _report()
    doc = rep.to_html()
    toc = re.search(r'<nav class="toc".*?</nav>', doc, re.S).group(0)
    entries = re.findall(r'<a href="#([^"]+)">', toc)
    assert entries == ["similarity", "interventions", "similarity-2"]
    for anchor in entries:
        assert f'id="{anchor}"' in doc
    assert 'class="toc-3"' in toc


def test_report_without_figures_has_no_plotly():
    rep = Report("Tables only")
    rep.add_table(pd.DataFrame({"x": range(300)}), max_rows=10)
    doc = rep.to_html()
    assert "<script" not in doc
    assert "Showing the first 10 of 300 rows" in doc
    assert "<nav" not in doc


def test_report_input_checks():
    rep = Report("checks")
    with pytest.raises(ValueError, match="kind"):
        rep.add_note("x", kind="danger")
    with pytest.raises(ValueError, match="level"):
        rep.add_heading("x", level=1)
    with pytest.raises(TypeError):
        rep.add_figure({"data": []})
    with pytest.raises(ValueError, match="float_format"):
        rep.add_table(pd.DataFrame({"a": [1.0]}), float_format="{:d}")
    with pytest.raises(TypeError):
        rep.add_table([1, 2])
