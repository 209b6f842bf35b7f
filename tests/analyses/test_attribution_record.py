"""The ``attribution`` analysis record: a study with ``[analyses.attribution]`` writes its tables, reads them back
as an AttributionResult, draws the heatmap and a report section."""

from __future__ import annotations

from click.testing import CliRunner

from latentprobe import cli, viz
from latentprobe.analyses import get_analysis
from latentprobe.causal import AttributionResult
from latentprobe.schema import ATTRIBUTION

STUDY = """
[study]
name = "attr"
[model]
source = "toy:bypass"
[data]
benchmark = "toy"
n = 4
[generation]
batch_size = 4
[analyses.attribution]
perturbation = "counterfactual"
layers = [0, 2, 4]
positions = ["image", "latent", "close"]
verify_top = 12
"""


def test_study_writes_and_reads_back_the_map(tmp_path):
    from latentprobe.study import load_result

    study = tmp_path / "attr.toml"
    study.write_text(STUDY)
    out = tmp_path / "out"
    res = CliRunner().invoke(cli.main, ["run", str(study), "--out", str(out), "--quiet"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    back = load_result(out / "attribution")
    assert isinstance(back, AttributionResult)
    t = back.table
    assert set(t[ATTRIBUTION.LAYER]) == {0, 2, 4} and set(t[ATTRIBUTION.POSITION_GROUP]) <= {"image", "latent", "close"}
    assert int(t[ATTRIBUTION.VERIFIED].sum()) == 12 == len(back.verify)
    assert back.verify[ATTRIBUTION.EFFECT].notna().all() and -1 <= back.spearman <= 1
    assert viz.attribution_heatmap(back).layout.meta["kind"] == "attribution_heatmap"
    assert viz.caption_for("attribution_heatmap").startswith("Attribution patching")
    html = (out / "report.html").read_text()
    assert "Attribution patching" in html and "Spearman" in html
    assert get_analysis("attribution").headline(back)
