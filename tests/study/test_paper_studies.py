"""The paper's battery (examples/studies/paper/): every study file parses, has a toy twin with the same analyses,
the twin runs and writes the tables docs/paper.md names, and the VSP study reports the accuracy of plans."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from latentprobe import cli
from latentprobe.analyses import get_analysis
from latentprobe.study import load_study
from latentprobe.study.datasets import load_data

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data import builders  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "examples" / "studies" / "paper"
DOCS = ROOT / "docs" / "paper.md"
FILES = sorted(p.name for p in PAPER.glob("*.toml"))
#: the text-imagination and steps twins run in test_paper_studies_text.py (with their report and baseline curves)
TEXT_FILES = {"steps.toml", "capimagine-x-to-z.toml", "capimagine-rewrite.toml"}


def test_every_paper_study_has_its_toy_twin():
    assert FILES and FILES == sorted(p.name for p in (PAPER / "toy").glob("*.toml"))
    for name in FILES:
        paper, twin = load_study(PAPER / name, check_paths=False), load_study(PAPER / "toy" / name)
        assert not paper.is_toy_data and twin.is_toy_data
        assert paper.analyses.enabled() == twin.analyses.enabled(), name


@pytest.mark.parametrize("name", FILES)
def test_the_docs_page_names_each_file_its_tables_and_figures(name):
    page = DOCS.read_text()
    assert f"paper/{name}" in page and f"paper/toy/{name}" in page
    for key in load_study(PAPER / name, check_paths=False).analyses.enabled():
        for table in get_analysis(key).tables:
            assert f"{key}/{table}.csv" in page, (name, key, table)


@pytest.mark.parametrize("name", [f for f in FILES if f not in TEXT_FILES])
def test_toy_twin_runs_and_writes_the_tables(name, tmp_path):
    out = tmp_path / name.removesuffix(".toml")
    res = CliRunner().invoke(cli.main, ["run", str(PAPER / "toy" / name), "--out", str(out), "--quiet", "--no-report"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    study = load_study(PAPER / "toy" / name)
    for key in study.analyses.enabled():
        for table in get_analysis(key).tables:
            assert (out / key / f"{table}.csv").is_file(), (key, table)
    answers = pd.read_csv(out / "answers.csv")
    assert len(answers) == 16 and answers.correct.notna().all()
    if "latent_similarity" in study.analyses:
        across = pd.read_csv(out / "latent_similarity" / "across_sources.csv")
        # the toys capture image positions only; their prompts end on one, hence prompt_last too, and no text tokens
        assert list(dict.fromkeys(across.source)) == ["latent", "image_tokens", "prompt_last"]
        with np.load(out / "latent_similarity" / "maps.npz") as maps:
            assert set(maps.files) == {"latent", "image_tokens", "prompt_last"} and maps["latent"].shape[1:] == (16, 16)
    if "efficiency" in study.analyses:
        costs = pd.read_csv(out / "efficiency" / "costs.csv")
        assert (costs.decode_seconds > 0).all() and set(costs.batch_size) == {1} and (costs.latent_steps == 4).all()
    if "behavioural" in study.analyses:
        conditions = pd.read_csv(out / "behavioural" / "summary.csv").condition.tolist()
        assert conditions == ["image", "blank", "latents_only", "second_model: image", "second_model: blank"]
    if "z_to_y" in study.analyses:
        summary = pd.read_csv(out / "z_to_y" / "summary.csv")
        assert set(study.analyses["z_to_y"].interventions) <= set(summary.intervention)


def _vsp_study(tmp_path, monkeypatch, replica: Path | None, scorer: str = "vsp_plan") -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    builders.vsp(tmp_path / "data" / "vsp")
    text = (PAPER / "mirage-vsp.toml").read_text()
    # random weights: a short budget, and the open marker forced (a replica never samples it)
    text = text.replace("published = true", 'max_new_tokens = 12\nopen = "force"')
    text = text.replace('scorer = "vsp_plan"', f'scorer = "{scorer}"')
    text = re.sub(r'interventions = \[.*\]', 'interventions = ["shared_tensor"]', text)
    if replica is not None:
        text = text.replace('source = "Miiche/vsp_spatial_planning_direct_sft"', f'source = "{replica}"')
        text = text.replace('dtype = "bfloat16"', 'dtype = "float32"').replace('device_map = "auto"\n', "")
    path = tmp_path / "mirage-vsp.toml"
    path.write_text(text)
    return path


def test_the_vsp_study_scores_plans_on_their_maps(tmp_path, monkeypatch):
    # the map is each example's gold: the scorer walks the plan on it (here a shortest plan, and a plan into a hole)
    from latentprobe.analyses import Context
    from latentprobe.trace import LatentTrace

    from scoring.test_vsp import extract_boxed_content, mirage_correct, mirage_simulate_vsp, shortest_plan

    data = load_data(load_study(_vsp_study(tmp_path, monkeypatch, None)), None)
    maps = [json.loads(g) for g in data.inputs.gold]
    assert maps == list(builders.VSP_MAPS.values())
    from latentprobe import toy

    tm = toy.load("mediated")
    ex = tm.examples("test", 4)
    trace = tm.runner().run(tm.prompts(ex), tm.images(ex), example_ids=list(data.inputs.example_ids),
                            max_new_tokens=8, progress=False)
    plans = [f"So: \\boxed{{{shortest_plan(m)}}}" if i % 2 == 0 else "\\boxed{L}" for i, m in enumerate(maps)]
    trace = LatentTrace(tuple(e.replace(answer_text=p) for e, p in zip(trace, plans)), trace.spec, trace.config)
    ctx = Context(tm.runner(), data.inputs, scorer="vsp_plan", progress=False)
    ctx._trace = trace
    answers = ctx.answers()
    assert answers.correct.tolist() == [float(mirage_correct(p, m)) for p, m in zip(plans, maps)] == [1.0, 0.0, 1.0, 0.0]
    assert answers.parse_method.tolist() == [mirage_simulate_vsp(m, extract_boxed_content(p))["status"]
                                             for p, m in zip(plans, maps)]


@pytest.mark.slow
def test_the_vsp_study_reports_accuracy_on_a_mirage_replica(tmp_path, monkeypatch, replica_dir):
    out = tmp_path / "out"
    path = _vsp_study(tmp_path, monkeypatch, replica_dir("mirage"))
    res = CliRunner().invoke(cli.main, ["run", str(path), "--out", str(out), "--quiet", "--no-report"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    answers = pd.read_csv(out / "answers.csv")
    # every example has its map as gold, so every answer is scored (random weights: no box, unreadable, wrong)
    assert answers.gold.notna().all() and set(answers.parse_method) <= {"no_box", "Reached goal", "Fell in hole",
                                                                         "Did not reach goal"}
    zy = pd.read_csv(out / "z_to_y" / "summary.csv")
    acc = zy[zy.metric == "accuracy"]
    assert len(acc) and acc.estimate.notna().all()  # an accuracy, not NaN as without gold answers
    # the same study scored "exact" has no gold answers, hence no accuracy
    out2 = tmp_path / "out2"
    res = CliRunner().invoke(cli.main, ["run", str(_vsp_study(tmp_path, monkeypatch, replica_dir("mirage"), "exact")),
                                        "--out", str(out2), "--quiet", "--no-report"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    zy2 = pd.read_csv(out2 / "z_to_y" / "summary.csv")
    assert zy2[zy2.metric == "accuracy"].estimate.isna().all() or (zy2.metric != "accuracy").all()


def _open_rows(prefix: str) -> list[dict]:
    """VLMEvalKit rows of open questions (MME's yes/no, OCRBench-v2's text): no option columns."""
    return [{"index": i, "image": builders.b64(builders.image_bytes(seed=40 + i)), "question": f"{prefix} question {i}?",
             "answer": "Yes" if prefix == "MME" else f"text {i}", "category": f"{prefix.lower()}_cat{i % 2}"}
            for i in range(3)]


def test_the_maps_study_reads_its_five_benchmarks(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    text = re.sub(r"(?m)^n = \d+", "n = 2", (PAPER / "x-to-z-maps.toml").read_text())
    path = tmp_path / "maps.toml"
    path.write_text(text)
    data_dir = tmp_path / "data"
    builders.vstar(data_dir / "vstar_bench")
    builders.write_tsv(data_dir / "vlmeval" / "MME.tsv", _open_rows("MME"))
    builders.write_tsv(data_dir / "vlmeval" / "OCRBench_v2.tsv", _open_rows("OCR"))
    builders.mme_realworld_lite(data_dir / "mme_realworld_lite")
    builders.tablevqa(data_dir / "tablevqa")
    study = load_study(path)
    assert study.model.num_latents == 10
    data = load_data(study, None)
    assert data.sample.groupby("source").size().to_dict() == {"mme": 2, "mme-realworld-lite": 2, "ocrbench-v2": 2,
                                                              "tablevqa": 2, "vstar": 2}
    assert all(isinstance(p, str) and p.strip() for p in data.inputs.prompts)


def test_derived_questions_from_a_file(tmp_path, monkeypatch):
    from latentprobe.errors import StudyError
    from latentprobe.study.derived import derived_from_file, read_derived

    monkeypatch.setenv("HOME", str(tmp_path))
    text = (PAPER / "latent-only-probe.toml").read_text()
    path = tmp_path / "probe.toml"
    path.write_text(text)
    builders.vstar(tmp_path / "data" / "vstar_bench")
    study = load_study(path)
    assert dict(study.analyses["behavioural"].model) == {"source": "Qwen/Qwen2.5-VL-7B-Instruct", "preset": "plain",
                                                          "dtype": "bfloat16", "device_map": "auto"}
    data = load_data(study, None)
    ids = list(data.inputs.example_ids)
    lines = [{"example_id": ids[2], "question": "What colour is the dog?", "answer": "brown"},
             {"example_id": ids[0], "question": "What colour is the cup?", "answer": "red"}]
    (tmp_path / "derived-vstar.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    original, derived = derived_from_file(study, data, "derived-vstar.jsonl")(None)
    assert original.example_ids == derived.example_ids == (ids[0], ids[2])  # the study's order
    assert derived.gold == ("red", "brown") and [m["question"] for m in derived.meta] == [
        "What colour is the cup?", "What colour is the dog?"]
    assert all(np.array_equal(a, b) for a, b in zip(original.images, derived.images))  # the same images
    (tmp_path / "bad.jsonl").write_text(json.dumps({"example_id": "nope", "question": "q", "answer": "a"}) + "\n")
    with pytest.raises(StudyError, match="ids the study does not hold"):
        derived_from_file(study, data, "bad.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"example_id": "x", "question": "q"}\n')
    with pytest.raises(StudyError, match=r"bad\.jsonl, line 1: missing \['answer'\]"):
        read_derived(tmp_path / "bad.jsonl")


def test_prompt_states_are_captured_only_for_the_analyses_that_read_them(tmp_path, monkeypatch):
    from latentprobe.geometry import MatchedPositions
    from latentprobe.study.analyses import _capture

    maps, zy = load_study(PAPER / "x-to-z-maps.toml", check_paths=False), load_study(PAPER / "mirage-vsp.toml",
                                                                                      check_paths=False)
    assert _capture(maps) == MatchedPositions() and _capture(zy) is None
    assert _capture(load_study(PAPER / "toy" / "mirage-vsp.toml")) == "image"
