"""The paper's study files under examples/studies/paper/ (those of the CapImagine and step experiments): each real
file parses, names the paper's models and conditions, and has a toy twin of the same name that runs here and
writes the same tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from latentprobe import cli
from latentprobe.analyses import get_analysis
from latentprobe.study import load_study

PAPER = Path(__file__).resolve().parents[2] / "examples" / "studies" / "paper"
#: file -> {analysis: its tables}, as the docs page names them
TABLES = {
    "steps.toml": {"latent_similarity": ("consecutive", "across", "step_matrix", "consecutive_baseline",
                                         "across_baseline")},
    "capimagine-x-to-z.toml": {"x_to_z": ("summary", "rows", "dropped", "across"),
                               "latent_similarity": ("consecutive", "across", "step_matrix", "consecutive_baseline",
                                                     "across_baseline")},
    "capimagine-rewrite.toml": {"z_to_y": ("summary", "rows", "dropped")},
}


def _run(study: Path, out: Path) -> Path:
    res = CliRunner().invoke(cli.main, ["run", str(study), "--out", str(out), "--quiet"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return out


@pytest.mark.parametrize("name", sorted(TABLES))
def test_the_real_file_parses_and_its_twin_runs_the_same_analyses(name):
    real = load_study(PAPER / name, check_paths=False)
    twin = load_study(PAPER / "toy" / name)
    assert set(real.analyses) == set(twin.analyses) == set(TABLES[name])
    assert not real.is_toy_data and twin.is_toy_data


def test_the_real_files_name_the_papers_models():
    steps = load_study(PAPER / "steps.toml", check_paths=False)
    assert (steps.model.source, steps.model.preset) == ("NOVAglow646/Monet-7B", "monet")
    sim = steps.analyses["latent_similarity"]
    assert (sim.baseline, sim.baseline_preset) == ("Qwen/Qwen2.5-VL-7B-Instruct", "plain")
    assert sorted(d.benchmark for d in steps.data) == sorted(
        ["vstar", "vlmevalkit-tsv", "vlmevalkit-tsv", "mme-realworld-lite", "tablevqa"])
    assert sum(d.n for d in steps.data) == 100
    for name in ("capimagine-x-to-z.toml", "capimagine-rewrite.toml"):
        s = load_study(PAPER / name, check_paths=False)
        assert (s.model.source, s.model.preset) == ("Michael4933/CapImagine-7B", "capimagine")
    rw = load_study(PAPER / "capimagine-rewrite.toml", check_paths=False)
    assert [d.benchmark for d in rw.data] == ["vstar"] and rw.data[0].n is None  # all of V*
    assert rw.analyses["z_to_y"].rewrites == "capimagine-rewrite.jsonl"


@pytest.mark.parametrize("name", sorted(TABLES))
def test_the_toy_twin_writes_the_tables(tmp_path, name):
    out = _run(PAPER / "toy" / name, tmp_path / "out")
    for analysis, tables in TABLES[name].items():
        for table in tables:
            frame = pd.read_csv(out / analysis / f"{table}.csv")
            assert table == "dropped" or len(frame) > 0, f"{analysis}/{table}.csv is empty"  # dropped may be
    assert (out / "report.html").is_file()
    if "latent_similarity" in TABLES[name]:
        folder = out / "latent_similarity"
        tables = {t: pd.read_csv(folder / f"{t}.csv") for t in TABLES[name]["latent_similarity"]}
        # the baseline's curves have the latents' steps: K - 1 consecutive pairs, K steps across instances
        assert len(tables["consecutive_baseline"]) == len(tables["consecutive"])
        assert len(tables["across_baseline"]) == len(tables["across"])
        figs = get_analysis("latent_similarity").figures(tables)
        names = [{t.name for t in f.data if t.name} for f in figs[1:]]
        assert all({"latent", "text chain of thought (baseline)"} <= n for n in names)
    if name == "capimagine-rewrite.toml":
        rows = pd.read_csv(out / "z_to_y" / "rows.csv")
        assert {"rewrite", "rewrite_placebo", "no_latents"} <= set(rows["intervention"])
        placebo = rows[rows["intervention"] == "rewrite_placebo"]
        assert placebo["flip"].mean() <= 0.05  # a paraphrase that keeps the answer-bearing words
        # the text toy's answer reads its caption: a wrong colour flips the colour answers
        from latentprobe import toy

        template = {e.example_id: e.template for e in toy.load("text").examples("test")}
        rewrite = rows[rows["intervention"] == "rewrite"]
        colour = rewrite[rewrite["example_id"].map(template).isin(["colour_left_of", "colour_of_shape"])]
        assert len(colour) >= 8 and colour["flip"].mean() >= 0.8


def test_a_missing_rewrite_file_is_refused_before_the_model_runs(tmp_path):
    text = (PAPER / "toy" / "capimagine-rewrite.toml").read_text()
    study = tmp_path / "rw.toml"
    study.write_text(text)  # no capimagine-rewrite.jsonl beside this copy
    res = CliRunner().invoke(cli.main, ["run", str(study), "--out", str(tmp_path / "out"), "--quiet"])
    assert res.exit_code != 0
    assert "no rewrite file" in res.output and str(tmp_path / "capimagine-rewrite.jsonl") in res.output
    assert not (tmp_path / "out" / "z_to_y" / "rows.csv").exists()
