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


def test_a_stopped_map_or_check_resumes_at_the_next_unit(tmp_path, monkeypatch):
    """The map runs in units of batch_size examples and the check in units of examples, each stored as it
    finishes: stopped in its second map unit, or in its first check unit, a study resumes there and writes the
    same tables as an uninterrupted run (the check regenerates its examples' runs with their map unit's batch)."""
    import pandas as pd

    import latentprobe.causal.attribution as A
    import latentprobe.causal.attribution_units as U

    study = tmp_path / "attr.toml"
    study.write_text(STUDY.replace("n = 4", "n = 6").replace("batch_size = 4", "batch_size = 2"))
    whole = tmp_path / "whole"
    assert CliRunner().invoke(cli.main, ["run", str(study), "--out", str(whole), "--quiet"],
                              catch_exceptions=False).exit_code == 0
    real_map, real_exact = A._map, A._exact
    calls = {"map": 0, "exact": 0, "stop": None}

    def counted(name, real):
        def fn(*a, **kw):
            calls[name] += 1
            if calls["stop"] == (name, calls[name]):
                raise RuntimeError(f"stopped in {name} unit {calls[name]}")
            return real(*a, **kw)
        return fn

    checked = pd.read_csv(whole / "attribution" / "table.csv").query("verified")
    n_check = -(-checked["example_id"].nunique() // 2)  # check units: the checked cells' examples, 2 a unit
    monkeypatch.setattr(A, "_map", counted("map", real_map))
    monkeypatch.setattr(A, "_exact", counted("exact", real_exact))
    for stop, then in ((("map", 2), {"map": 2, "exact": n_check}), (("exact", 1), {"map": 0, "exact": n_check})):
        out = tmp_path / f"stopped-{stop[0]}"
        calls.update(map=0, exact=0, stop=stop)
        res = CliRunner().invoke(cli.main, ["run", str(study), "--out", str(out), "--quiet"])
        assert res.exit_code == 1 and f"stopped in {stop[0]} unit" in res.output
        calls.update(map=0, exact=0, stop=None)
        res = CliRunner().invoke(cli.main, ["run", str(study), "--out", str(out), "--quiet"], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        # resumed: the map units not yet stored (6 examples in units of 2: the first was), then every check unit
        assert calls["map"] == then["map"] and calls["exact"] == then["exact"], (stop, calls)
        for t in ("table", "dropped"):
            a, b = pd.read_csv(whole / "attribution" / f"{t}.csv"), pd.read_csv(out / "attribution" / f"{t}.csv")
            pd.testing.assert_frame_equal(a, b)
        s_a = pd.read_csv(whole / "attribution" / "summary.csv").drop(columns=["map_seconds", "verify_seconds"])
        s_b = pd.read_csv(out / "attribution" / "summary.csv").drop(columns=["map_seconds", "verify_seconds"])
        pd.testing.assert_frame_equal(s_a, s_b)
    assert n_check >= 1 and U.run_units
