"""A third-party analysis registered from outside the package (``norms_plugin``) is reachable from a study
file: its table, figure and report section are written, and a killed run resumes to identical tables."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from latentprobe import cli
from latentprobe.analyses import get_analysis, registered_analyses
from latentprobe.errors import SweepLockWarning

sys.path.insert(0, str(Path(__file__).parent))
import norms_plugin  # noqa: E402  (registers latent_norms)

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

STUDY = """
[study]
name = "norms"
seed = 3
[model]
source = "toy:mediated"
[data]
benchmark = "toy"
n = 24
[generation]
max_new_tokens = 8
n_boot = 100
[analyses.latent_norms]
layer = 2
"""


def _cli(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli.main, list(args), standalone_mode=True, catch_exceptions=False)
    return res.exit_code, res.output


@pytest.fixture(scope="module")
def study_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("norms") / "norms.toml"
    path.write_text(STUDY)
    return path


@pytest.fixture(scope="module")
def norms_run(study_file) -> Path:
    out = study_file.parent / "out"
    code, text = _cli("run", str(study_file), "--out", str(out))
    assert code == 0, text
    return out


def test_registered_from_outside():
    assert "latent_norms" in registered_analyses() and get_analysis("latent_norms").__module__ == "norms_plugin"
    assert type(get_analysis("latent_norms")).__module__ == "norms_plugin"


def test_study_writes_its_table_figure_and_section(norms_run):
    summary = pd.read_csv(norms_run / "latent_norms" / "summary.csv")
    rows = pd.read_csv(norms_run / "latent_norms" / "rows.csv", dtype={"example_id": str})
    assert list(summary.columns) == ["step", "estimate", "ci_low", "ci_high", "n"]
    # the summary is the mean of the rows per step, from the layer the study file named
    assert np.allclose(summary["estimate"], rows.groupby("step")["norm"].mean().to_numpy())
    assert (summary["ci_low"] <= summary["estimate"]).all() and (summary["estimate"] <= summary["ci_high"]).all()
    from latentprobe import toy

    tm = toy.load("mediated")
    trace = tm.runner().run(tm.prompts(tm.examples("test")), tm.images(tm.examples("test")), max_new_tokens=8,
                            example_ids=[e.example_id for e in tm.examples("test")], progress=False)
    first = rows.iloc[0]
    e = trace[trace.example_ids.index(first["example_id"])]
    assert np.isclose(float(e.hidden[int(first["step"]), 2].float().norm()), first["norm"], rtol=1e-5)
    html = (norms_run / "report.html").read_text()
    assert "Latent norms per step" in html and "Latent norm per step" in html  # section heading and figure title
    assert "mean latent norm" in _cli("run", str(norms_run / "study.toml"), "--out", str(norms_run))[1]


def _units(meta: Path) -> list:
    try:
        return json.loads(meta.read_text()).get("units", [])
    except (OSError, ValueError):
        return []


def _kill_after_a_unit(study: Path, out: Path, cwd: Path) -> Path:
    """Run ``study`` in a subprocess (the plugin imported, each unit slowed by 1 s) and SIGKILL it once
    latent_norms has stored a unit; returns the unit store's metadata file."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(Path(__file__).parent)]), "NORMS_SLOW": "1"}
    code = "import norms_plugin; from latentprobe.cli import main; main()"
    proc = subprocess.Popen([sys.executable, "-c", code, "run", str(study), "--out", str(out), "--quiet"],
                            cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    meta = out / "latent_norms" / "units.meta.json"
    deadline = time.monotonic() + 120
    try:
        while not _units(meta):
            assert proc.poll() is None, "the study finished or failed before it could be killed"
            assert time.monotonic() < deadline, "no unit was stored within 120 s"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (out / "latent_norms" / "done.json").exists()
    return meta


def test_killed_run_resumes_to_identical_tables(norms_run, study_file, tmp_path):
    out = tmp_path / "killed"
    meta = _kill_after_a_unit(study_file, out, ROOT)
    stored = len(_units(meta))
    assert 1 <= stored < 6  # 24 examples, 4 a unit: killed mid-way
    locked = (out / "latent_norms" / ".sweep.lock").exists()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, text = _cli("run", str(study_file), "--out", str(out), "--quiet")
    assert code == 0, text
    if locked:  # the dead process's writer lock is taken over, with a warning
        assert any(issubclass(w.category, SweepLockWarning) for w in caught)
    for name in ("summary.csv", "rows.csv"):
        assert (out / "latent_norms" / name).read_text() == (norms_run / "latent_norms" / name).read_text()


def _codi_study(tmp_path: Path) -> Path:
    """A study on a tiny CODI checkpoint whose data come from the plugin's registered loader ``sums``."""
    sys.path.insert(0, str(ROOT / "tests" / "engine"))
    from checkpoints import save_codi_checkpoint, save_gpt2_base

    base = save_gpt2_base(tmp_path / "gpt2")
    save_codi_checkpoint(tmp_path / "codi", base, r=128)
    (tmp_path / "data").mkdir()
    path = tmp_path / "sums.toml"
    path.write_text(f'[study]\nname = "sums"\n[model]\nsource = "codi"\npreset = "codi"\nbase = "gpt2"\n'
                    '[data]\nbenchmark = "sums"\nroot = "data"\noptions = {n = 12}\n[prompt]\ntemplate = "{question}"\n'
                    '[generation]\nmax_new_tokens = 12\nn_boot = 20\nscorer = "numeric"\n'
                    '[analyses.latent_norms]\nlayer = 1\nper_unit = 2\n')
    return path


def test_killed_study_on_a_registered_loader_resumes_to_identical_tables(tmp_path):
    pytest.importorskip("peft")
    study = _codi_study(tmp_path)
    whole = tmp_path / "whole"
    code, text = _cli("run", str(study), "--out", str(whole), "--quiet")
    assert code == 0, text
    sample = pd.read_csv(whole / "sample.csv")
    assert list(sample.example_id) == [f"sums/{i}" for i in range(12)] and set(sample.benchmark) == {"sums"}
    out = tmp_path / "killed"
    meta = _kill_after_a_unit(study, out, tmp_path)
    assert 1 <= len(_units(meta)) < 6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SweepLockWarning)  # the dead writer's lock is taken over
        code, text = _cli("run", str(study), "--out", str(out), "--quiet")
    assert code == 0, text
    for name in ("sample.csv", "answers.csv", "latent_norms/summary.csv", "latent_norms/rows.csv"):
        assert (out / name).read_text() == (whole / name).read_text(), name


def test_entry_point_group_registers_installed_analyses(monkeypatch):
    import importlib.metadata as md

    from latentprobe.analyses import registry

    class Other(norms_plugin.LatentNorms):
        key = "latent_norms_ep"

    class EP:
        name, value = "norms", "somepkg:Other"

        def load(self):
            return Other

    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(md, "entry_points", lambda group=None: [EP()] if group == registry.ENTRY_POINT_GROUP else [])
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    assert isinstance(get_analysis("latent_norms_ep"), Other)
