"""The study's thread count: recorded in study.json, part of the configuration, and without effect on the
shipped toy's results (two processes, 1 and 2 threads: every table identical)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from latentprobe.study import config_fingerprint, load_study

ROOT = Path(__file__).resolve().parents[2]
STUDY = """
[study]
name = "threads"
threads = {threads}
[model]
source = "toy:mediated"
[data]
benchmark = "toy"
n = 12
[generation]
max_new_tokens = 8
n_boot = 20
[analyses.z_to_y]
interventions = ["zero", "replace_noise"]
modes = ["redecode"]
[analyses.probes]
targets = ["target_colour"]
layers = [0, 4]
n_splits = 3
[analyses.collapse]
"""


def _study(tmp_path, threads):
    path = tmp_path / f"threads{threads}.toml"
    path.write_text(STUDY.format(threads=threads))
    return path


def test_threads_is_part_of_the_configuration(tmp_path):
    one, two = load_study(_study(tmp_path, 1)), load_study(_study(tmp_path, 2))
    assert (one.study.threads, two.study.threads) == (1, 2)
    assert config_fingerprint(one) != config_fingerprint(two)  # a folder is not resumed with another count
    (tmp_path / "bad.toml").write_text(STUDY.format(threads=0))
    from latentprobe.errors import StudyError

    with pytest.raises(StudyError, match=r"\[study\] key 'threads'"):
        load_study(tmp_path / "bad.toml")


@pytest.mark.slow
def test_one_and_two_threads_give_the_same_tables_and_record_the_count(tmp_path):
    outs = {}
    for threads in (1, 2):
        out = tmp_path / f"out{threads}"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}  # the study's setting wins
        res = subprocess.run([sys.executable, "-m", "latentprobe.cli", "run", str(_study(tmp_path, threads)), "--out",
                              str(out), "--quiet", "--no-report"], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=600)
        assert res.returncode == 0, res.stderr[-2000:]
        recorded = json.loads((out / "study.json").read_text())["threads"]
        assert recorded["torch"] == threads and {p["threads"] for p in recorded["pools"]} == {threads}
        assert recorded["env"]["OMP_NUM_THREADS"] == "2"
        outs[threads] = out
    tables = sorted(p.relative_to(outs[1]) for p in outs[1].rglob("*.csv"))
    assert {"probes/scores.csv", "z_to_y/rows.csv", "answers.csv", "collapse/collapse.csv"} <= {str(t) for t in tables}
    for rel in tables:  # discrete outcomes and floats alike (the toy's products are too small to be split)
        pd.testing.assert_frame_equal(pd.read_csv(outs[1] / rel), pd.read_csv(outs[2] / rel), check_exact=True)
