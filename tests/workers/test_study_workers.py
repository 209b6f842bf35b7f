"""``latentprobe run STUDY --out DIR --workers N`` on a toy study (fp32, CPU, gloo): the tables do not depend on the
worker count, a SIGKILLed worker's units are redone by another count, a changed study or model is refused by
every rank with the diff."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from latentprobe.sweep.sharded import RANKS_DIR, stored_keys

ROOT = Path(__file__).resolve().parents[2]
ANALYSES = ("x_to_z", "z_to_y", "collapse", "patching", "steps")

STUDY = """
[study]
name = "workers"
seed = 0

[model]
source = "toy:mediated"
{weights}

[data]
benchmark = "toy"
split = "test"
n = {n}
by = "category"

[generation]
max_new_tokens = 8
scorer = "killscore:score"
batch_size = 4
chunk_size = 4
n_boot = {n_boot}

{analyses}
"""

FULL = """
[analyses.x_to_z]
perturbations = ["counterfactual", "image_swap"]
layers = [0, 4]

[analyses.z_to_y]
interventions = ["zero", "swap", "mean_ablate"]
modes = ["propagate", "redecode"]

[analyses.collapse]

[analyses.patching]
perturbation = "counterfactual"
positions = ["latents"]
layers = [1]
modes = ["redecode"]
routes = false

[analyses.steps]
early_exit = false
format_only = false
no_latents = false
"""

#: A scorer that, when told to, kills its own worker with SIGKILL in the middle of a unit (after N calls).
KILLSCORE = '''
import os, signal
from pathlib import Path

_calls = [0]


def score(answer, gold, example):
    marker = os.environ.get("LP_TEST_KILL")
    if marker and os.environ.get("RANK") == os.environ.get("LP_TEST_KILL_RANK") and Path(marker).exists():
        _calls[0] += 1
        if _calls[0] >= int(os.environ["LP_TEST_KILL_AFTER"]):
            Path(marker).unlink()
            os.kill(os.getpid(), signal.SIGKILL)
    return None if gold is None else (answer or "").strip() == gold
'''


def _write_study(folder: Path, *, n: int = 12, n_boot: int = 50, analyses: str = FULL, weights: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "killscore.py").write_text(KILLSCORE)
    path = folder / "study.toml"
    path.write_text(STUDY.format(n=n, n_boot=n_boot, analyses=analyses, weights=weights))
    return path


def _run(study: Path, out: Path, workers: int | None, *extra: str, env: dict | None = None):
    cmd = [sys.executable, "-m", "latentprobe.cli", "run", str(study), "--out", str(out), "--quiet", "--no-report",
           *extra] + ([] if workers is None else ["--workers", str(workers)])
    full = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")}
    full.update({"PYTHONPATH": os.pathsep.join([str(ROOT), str(study.parent)]), "HF_HUB_OFFLINE": "1",
                 **(env or {})})
    return subprocess.run(cmd, capture_output=True, text=True, env=full, timeout=900)


def _tables(out: Path) -> dict[str, bytes]:
    found = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.csv")) if RANKS_DIR not in p.parts}
    assert any(k.startswith("z_to_y/") for k in found) and "answers.csv" in found
    return found


def _sorted_lines(data: bytes) -> list[bytes]:
    head, *rows = data.splitlines()
    return [head, *sorted(rows)]


def _figure_data(out: Path) -> dict[str, str]:
    import plotly.io as pio

    from latentprobe.analyses import get_analysis
    from latentprobe.study import load_result

    found = {}
    for key in ANALYSES:
        record = get_analysis(key)
        figs = record.figures(load_result(out / key))
        found[key] = json.dumps([json.loads(pio.to_json(f))["data"] for f in figs], sort_keys=True)
    return found


def _assert_same(ref: Path, out: Path) -> None:
    a, b = _tables(ref), _tables(out)
    assert sorted(a) == sorted(b)
    for name in a:
        assert _sorted_lines(a[name]) == _sorted_lines(b[name]), name  # byte-identical after sorting by key
        assert a[name] == b[name], name  # and in the same order: rows come back in plan order
    assert _figure_data(ref) == _figure_data(out)


def _each_key_once(out: Path) -> None:
    for key in ANALYSES:
        folder = out / key
        names = {p.name[: -len(".meta.json")] for p in folder.rglob("*.meta.json")}
        for name in names:
            keys = stored_keys(folder, name)
            assert len(keys) == len(set(keys)), (key, name)
        if (folder / f"{key}.meta.json").exists():  # the analysis's rows store: merged, nothing left in rank stores
            merged = json.loads((folder / f"{key}.meta.json").read_text())["units"]
            assert len(stored_keys(folder, key)) == len(merged) > 0


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    return _write_study(tmp_path_factory.mktemp("workers"))


@pytest.fixture(scope="module")
def reference(study) -> Path:
    out = study.parent / "one"
    res = _run(study, out, 1)
    assert res.returncode == 0, res.stderr[-3000:]
    return out


@pytest.mark.slow
def test_one_and_three_workers_give_identical_tables_and_figures(study, reference):
    out = study.parent / "three"
    res = _run(study, out, 3)
    assert res.returncode == 0, res.stderr[-3000:]
    _assert_same(reference, out)
    _each_key_once(out)
    meta = json.loads((out / "study.json").read_text())
    assert meta["clean_run"] == "sharded"
    logs = {p.name for p in (out / "logs").iterdir()}
    assert {f"rank-{r}.log" for r in range(3)} <= logs
    assert "barrier study end" in (out / "logs" / "rank-2.log").read_text()


def _killed_then_resumed(study: Path, reference: Path, name: str, first: int, kill_rank: int, then: int) -> None:
    out = study.parent / name
    marker = study.parent / f"{name}.kill"
    marker.write_text("")
    res = _run(study, out, first, env={"LP_TEST_KILL": str(marker), "LP_TEST_KILL_RANK": str(kill_rank),
                                      "LP_TEST_KILL_AFTER": "20"})
    assert res.returncode != 0 and not marker.exists(), res.stderr[-3000:]  # the worker killed itself mid-unit
    log = (out / "logs" / f"rank-{kill_rank}.log").read_text().splitlines()
    assert log[-1].endswith("started") and " unit " in log[-1], log[-3:]  # it died inside a unit
    assert not (out / "z_to_y" / "done.json").exists()
    res = _run(study, out, then)
    assert res.returncode == 0, res.stderr[-3000:]
    _assert_same(reference, out)
    _each_key_once(out)


@pytest.mark.slow
def test_a_sigkilled_worker_s_units_are_redone_by_two_workers(study, reference):
    _killed_then_resumed(study, reference, "killed3", first=3, kill_rank=1, then=2)


@pytest.mark.slow
def test_four_workers_then_two_complete_with_identical_tables(study, reference):
    _killed_then_resumed(study, reference, "four", first=4, kill_rank=2, then=2)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, Path]:
    """A cheap study run by one plain process, with its own copy of the toy's weights."""
    from latentprobe.study import run_study

    folder = tmp_path_factory.mktemp("refuse")
    weights = folder / "weights"
    weights.mkdir()
    for suffix in (".json", ".safetensors"):
        shutil.copy(ROOT / "latentprobe" / "toy" / "weights" / f"mediated{suffix}", weights)
    study = _write_study(folder, n=8, analyses="[analyses.collapse]", weights=f'weights = "{weights}"')
    sys.path.insert(0, str(folder))
    try:
        run_study(study, folder / "out", report=False, progress=False)
    finally:
        sys.path.remove(str(folder))
    return study, folder / "out"


def _refusals(out: Path, n: int) -> list[str]:
    lines = []
    for r in range(n):
        text = (out / "logs" / f"rank-{r}.log").read_text()
        lines.append([line for line in text.splitlines() if " stopped: " in line][-1])  # this run's (logs append)
    return lines


@pytest.mark.slow
def test_a_changed_study_is_refused_by_every_rank_with_the_diff(small):
    study, out = small
    changed = _write_study(study.parent / "changed", n=8, n_boot=60, analyses="[analyses.collapse]",
                           weights=f'weights = "{study.parent / "weights"}"')
    before = sorted(p.name for p in out.iterdir())
    res = _run(changed, out, 2)
    assert res.returncode == 2, res.stderr[-3000:]
    for line in _refusals(out, 2):
        assert "StudyError" in line and "'generation.n_boot': stored 50, now 60" in line, line
    assert sorted(p.name for p in out.iterdir() if p.name != "logs") == before  # nothing written but the logs


@pytest.mark.slow
def test_a_changed_model_is_refused_by_every_rank_with_the_diff(small):
    from safetensors.torch import load_file, save_file

    study, out = small
    weights = study.parent / "weights"
    tensors = load_file(str(weights / "mediated.safetensors"))
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] * 1.5
    save_file(tensors, str(weights / "mediated.safetensors"))
    meta = json.loads((weights / "mediated.json").read_text())
    meta["sha256"] = hashlib.sha256((weights / "mediated.safetensors").read_bytes()).hexdigest()
    (weights / "mediated.json").write_text(json.dumps(meta))
    res = _run(study, out, 2)
    assert res.returncode == 2, res.stderr[-3000:]
    for line in _refusals(out, 2):
        assert "StudyError" in line and "another model" in line and "'weights'" in line, line


@pytest.mark.slow
def test_one_process_resumes_a_folder_written_by_workers(study, reference, tmp_path):
    out = tmp_path / "resumed"
    shutil.copytree(reference, out)
    shutil.rmtree(out / "z_to_y")  # as if the workers had stopped before it
    res = _run(study, out, None)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "ran z_to_y; already finished: x_to_z, collapse" in res.stdout
    _assert_same(reference, out)
    _each_key_once(out)
