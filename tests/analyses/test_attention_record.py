"""The ``attention`` record: study key, options, tables written and read back, figures, report section."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from latentprobe import cli, viz
from latentprobe.analyses import get_analysis
from latentprobe.analyses.options import OptionError
from latentprobe.errors import VizInputError
from latentprobe.readout_schema import ATTENTION_ENTROPY, ATTENTION_MASS, ATTENTION_TOP
from latentprobe.readouts.attention import AttentionResult

STUDY = """
[study]
name = "attention"
[model]
source = "toy:bypass"
[data]
benchmark = "toy"
n = 4
[generation]
max_new_tokens = 8
[analyses.attention]
queries = ["latents", "close", "answer"]
layers = [0, 3]
top_k = 3
"""


def test_options():
    rec = get_analysis("attention")
    assert rec.key == "attention"
    opts = rec.Options(queries=("latents", "answer"), layers=(0, 1), heads=None)
    assert opts.top_k == 5 and opts.queries == ("latents", "answer")
    with pytest.raises(OptionError, match="queries"):
        rec.Options(queries=("latent",))
    with pytest.raises(OptionError, match="top_k"):
        rec.Options(top_k=-1)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("attention")
    path = folder / "study.toml"
    path.write_text(STUDY)
    out = folder / "out"
    res = CliRunner().invoke(cli.main, ["run", str(path), "--out", str(out), "--quiet"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return out


def test_study_writes_and_reads_back(study):
    from latentprobe.study import load_result

    res = load_result(study / "attention")
    assert isinstance(res, AttentionResult)
    ATTENTION_MASS.check(res.table)
    ATTENTION_ENTROPY.check(res.entropy)
    ATTENTION_TOP.check(res.top)
    assert set(res.table["layer"]) == {0, 3} and set(res.top["rank"]) == {0, 1, 2}
    assert res.table["example_id"].nunique() == 4
    # bypass: close and answer never attend to the latents
    cut = res.table[res.table["query_group"].isin(["close", "answer"]) & (res.table["region"] == "latents")]
    assert len(cut) and float(cut["mass"].max()) == 0.0
    html = (study / "report.html").read_text()
    assert "Attention flow from the latent positions" in html and "does not prove use" in html


def test_figures_and_section():
    from latentprobe import toy
    from latentprobe.readouts import attention
    from latentprobe.report import Report

    tm = toy.load("free")
    ex = tm.examples("test", 3)
    runner = tm.runner()
    res = attention(runner, runner.run(tm.prompts(ex), tm.images(ex), max_new_tokens=16, progress=False))
    rec = get_analysis("attention")
    figs = rec.figures(res)
    assert [f.layout.meta["kind"] for f in figs] == ["attention_regions"] + ["attention_heatmap"] * 3
    bars = figs[0]
    # each query's stacked bar sums to 1 (the mean of rows that each sum to 1)
    total = pd.DataFrame([pd.Series(t.y, index=t.x) for t in bars.data]).sum()
    assert float((total - 1).abs().max()) <= 1e-5
    heat = viz.attention_heatmap(res, region="image")
    means = res.table.query("query_group == 'latents' and region == 'image'").groupby(["layer", "step"])["mass"].mean()
    assert float(heat.data[0].z[1][2]) == pytest.approx(float(means.loc[(1, 2)]), abs=1e-12)
    with pytest.raises(VizInputError, match="region"):
        viz.attention_heatmap(res, region="nowhere")
    with pytest.raises(VizInputError, match="AttentionResult"):
        viz.attention_regions(pd.DataFrame({"a": [1]}))
    rep = Report("t")
    rec.section(rep, res)
    assert rec.accepts(res) and rec.accepts(res.table)
    head = rec.headline(res)
    assert set(head) == {"attention mass latents -> image (mean)", "attention mass answer -> latents (mean)"}
