"""``latentprobe run`` / ``latentprobe report`` end to end on the toy study: resume after SIGKILL, same tables,
same report, and refusals of a changed study, another model and a foreign folder."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from latentprobe import cli
from latentprobe.errors import SweepLockWarning
from latentprobe.analyses import get_analysis

ROOT = Path(__file__).resolve().parents[2]
TOY = ROOT / "examples" / "studies" / "toy.toml"
pytestmark = pytest.mark.slow


def _cli(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli.main, list(args), standalone_mode=True, catch_exceptions=False)
    return res.exit_code, res.output


def _html(path: Path) -> str:
    """The report without its creation time (two runs of one study started at different times)."""
    return re.sub(r"Created \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "Created <time>", path.read_text())


STUDIED = ("x_to_z", "z_to_y", "decompose", "probes", "collapse")  # the toy study's analyses, in its order


def _tables(out: Path) -> dict[str, str]:
    names = ["sample.csv", "answers.csv"] + [f"{a}/{t}.csv" for a in STUDIED for t in get_analysis(a).tables]
    return {n: (out / n).read_text() for n in names}


def _stored_units(meta: Path) -> list[dict]:
    """The units a sweep has recorded as complete (rows on disk and in its metadata)."""
    import json

    try:
        return json.loads(meta.read_text()).get("units", [])
    except (OSError, ValueError):  # not written yet
        return []


def test_run_writes_the_folder(toy_run):
    out = toy_run
    for name in ("study.toml", "study.json", "sample.csv", "report.html"):
        assert (out / name).is_file(), name
    for analysis in STUDIED:
        assert (out / analysis / "done.json").is_file(), analysis
        for t in get_analysis(analysis).tables:
            assert (out / analysis / f"{t}.csv").is_file(), (analysis, t)
    import json

    meta = json.loads((out / "study.json").read_text())
    assert meta["name"] == "toy-mediation" and meta["fingerprint"].startswith("sha256:")
    assert meta["model"]["weights"] and meta["versions"]["torch"]
    assert (out / "study.toml").read_text() == TOY.read_text()
    # the mediated toy's planted truth: the counterfactual image acts on the answer through the latents
    import pandas as pd

    med = pd.read_csv(out / "decompose" / "summary.csv").set_index("effect")
    assert med.loc["NIE", "estimate"] < -0.5 and abs(med.loc["NDE", "estimate"]) < 0.1


def test_rerun_skips_finished_analyses_and_report_rebuilds_the_same_html(toy_run):
    before = (toy_run / "report.html").read_bytes()
    tables = _tables(toy_run)
    code, text = _cli("run", str(TOY), "--out", str(toy_run), "--quiet")
    assert code == 0 and "ran nothing; already finished: x_to_z, z_to_y, decompose, probes, collapse" in text, text
    (toy_run / "report.html").unlink()
    code, text = _cli("report", str(toy_run))
    assert code == 0, text
    assert (toy_run / "report.html").read_bytes() == before  # the creation time is the stored one: byte for byte
    assert _tables(toy_run) == tables


def test_killed_run_resumes_to_the_same_tables(toy_run, tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "latentprobe.cli", "run", str(TOY), "--out", str(out), "--quiet"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = out / "x_to_z" / "x_to_z.parts"
    deadline = time.monotonic() + 120
    try:
        while not _stored_units(out / "x_to_z" / "x_to_z.meta.json"):
            assert proc.poll() is None, "the study finished or failed before it could be killed"
            assert time.monotonic() < deadline, "no rows were written within 120 s"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (out / "x_to_z" / "done.json").exists()
    first = parts / _stored_units(out / "x_to_z" / "x_to_z.meta.json")[0]["part"]
    stamp = first.stat().st_mtime_ns
    locked = (out / "x_to_z" / ".sweep.lock").exists()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, text = _cli("run", str(TOY), "--out", str(out), "--quiet")
    assert code == 0, text
    if locked:  # the dead process's writer lock is taken over, with a warning
        assert any(issubclass(w.category, SweepLockWarning) for w in caught)
    assert first.stat().st_mtime_ns == stamp  # resumed: the stored unit was not recomputed
    assert _tables(out) == _tables(toy_run)
    assert _html(out / "report.html") == _html(toy_run / "report.html")


def test_changed_study_other_model_and_foreign_folder_are_refused(toy_run, tmp_path):
    changed = tmp_path / "changed.toml"
    changed.write_text(TOY.read_text().replace("n_boot = 200", "n_boot = 100"))
    code, text = _cli("run", str(changed), "--out", str(toy_run))
    assert code == 2 and "another study configuration" in text and "n_boot" in text and "--overwrite" in text, text
    other = tmp_path / "other.toml"
    other.write_text(TOY.read_text().replace("toy:mediated", "toy:bypass"))
    code, text = _cli("run", str(other), "--out", str(toy_run))
    assert code == 2 and "source" in text, text
    # same config fingerprint but another model's weights in the folder's record
    copy = tmp_path / "copy"
    shutil.copytree(toy_run, copy)
    meta = (copy / "study.json").read_text()
    (copy / "study.json").write_text(meta.replace('"model_fingerprint": "sha256:', '"model_fingerprint": "sha256:0'))
    code, text = _cli("run", str(TOY), "--out", str(copy), "--no-report")
    assert code == 2 and "another model" in text, text
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    code, text = _cli("run", str(TOY), "--out", str(foreign))
    assert code == 2 and "not a study folder" in text, text
    assert len(text.strip().splitlines()) == 1


SMALL = """
[study]
name = "small"
[model]
source = "toy:mediated"
[data]
benchmark = "toy"
n = 8
[generation]
max_new_tokens = 8
n_boot = 50
[analyses.collapse]
[output]
traces = true
"""


def test_traces_no_report_and_overwrite(tmp_path):
    study = tmp_path / "small.toml"
    study.write_text(SMALL)
    out = tmp_path / "out"
    code, text = _cli("run", str(study), "--out", str(out), "--no-report", "--quiet")
    assert code == 0 and "report:" not in text, text
    assert (out / "collapse" / "trace").is_dir() and not (out / "report.html").exists()
    (out / "collapse" / "mine.txt").write_text("kept? no: the analysis folder belongs to the study")
    study.write_text(SMALL.replace("n = 8", "n = 10"))
    code, text = _cli("run", str(study), "--out", str(out), "--quiet")
    assert code == 2 and "'data[0].n': stored 8, now 10" in text, text
    code, text = _cli("run", str(study), "--out", str(out), "--overwrite", "--quiet")
    assert code == 0 and (out / "report.html").is_file(), text
    import pandas as pd

    assert len(pd.read_csv(out / "sample.csv")) == 10 and not (out / "collapse" / "mine.txt").exists()


def test_results_read_back_from_the_folder(toy_run):
    import numpy as np
    import pandas as pd

    from latentprobe import viz
    from latentprobe.causal import MediationResult, XZResult, ZYResult
    from latentprobe.probing import ProbeSweepResult
    from latentprobe.study import load_result

    xz = load_result(toy_run / "x_to_z")
    assert isinstance(xz, XZResult) and xz.across_matrices and xz.config["analysis"] == "x_to_z"
    assert xz.rows.example_id.map(type).eq(str).all() and len(xz.status)
    zy = load_result(toy_run / "z_to_y")
    assert isinstance(zy, ZYResult) and set(zy.rows.intervention) >= {"zero", "swap", "none"}
    med = load_result(toy_run / "decompose")
    assert isinstance(med, MediationResult) and med.effects["NIE"].estimate < -0.5
    assert np.isclose(med.proportion_mediated, med.summary.set_index("effect").estimate["proportion_mediated"])
    viz.decomposition_bars(med)
    probes = load_result(toy_run / "probes")
    assert set(probes) == {"scores", "skipped", "positions", "gap"} and probes["gap"].empty and (probes["scores"]["target"] == "target_colour").all()
    assert probes["scores"]["layer"].dtype == np.int64 and isinstance(ProbeSweepResult(probes["scores"]).best(),
                                                                        pd.Series)
    # the default control types (the questions) recur across the folds, so the control task can be learned
    sc = probes["scores"]
    assert (sc["control_recur"] == 1.0).all()
    assert ((sc["selectivity_ci_low"] <= sc["selectivity"]) & (sc["selectivity"] <= sc["selectivity_ci_high"])).all()
    collapse = load_result(toy_run / "collapse")
    assert list(collapse) == ["collapse", "step_matrix"] and len(collapse["step_matrix"]) == 16  # K = 4 steps
