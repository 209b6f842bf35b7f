"""One owner per study folder: two different studies started at once on one fresh folder, as separate processes,
ten times; each time exactly one runs and the other is refused before writing, and the folder's metadata, tables
and report are those of the one that ran. Plus the lock's life: released at the end and on failure, taken over
from a dead process, re-entered by the report and the sweeps inside."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import warnings
from pathlib import Path

import pytest

from latentprobe.errors import StudyError, StudyLockedError, SweepLockWarning
from latentprobe.study import config_fingerprint, load_study, run_study
from latentprobe.study.owner import STUDY_LOCK, study_lock
from latentprobe.sweep import lock

STUDY = """[study]
name = "{name}"
[model]
source = "toy:{variant}"
[data]
benchmark = "toy"
n = 6
[generation]
max_new_tokens = 8
n_boot = 20
[analyses.collapse]
"""
VARIANTS = {"owner-mediated": "mediated", "owner-free": "free"}


def _worker(study_file: str, barrier, jobs, results) -> None:
    """One process: imports once, then for each folder sent, waits for the other process and runs its study."""
    import torch

    from latentprobe.errors import LatentProbeError
    from latentprobe.study import run_study

    torch.set_num_threads(1)
    results.put(os.getpid())
    while (out := jobs.get()) is not None:
        barrier.wait()
        try:
            run_study(study_file, out, progress=False)
            results.put(("ran", ""))
        except LatentProbeError as err:
            results.put((type(err).__name__, str(err)))


def _listing(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path -> text, the report without its creation stamp)."""
    import re

    found = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            text = p.read_bytes().decode("utf-8", "replace")
            if p.name == "study.json":
                text = json.dumps({k: v for k, v in json.loads(text).items() if k != "created"}, sort_keys=True)
            found[str(p.relative_to(folder))] = re.sub(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d( UTC)?", "<time>", text)
    return found


@pytest.mark.slow
def test_two_studies_started_together_on_one_folder_one_runs_and_the_folder_is_its(tmp_path):
    files = {}
    for name, variant in VARIANTS.items():
        files[name] = tmp_path / f"{name}.toml"
        files[name].write_text(STUDY.format(name=name, variant=variant))
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2, timeout=300)
    jobs = {n: ctx.Queue() for n in files}
    results = {n: ctx.Queue() for n in files}
    procs = {n: ctx.Process(target=_worker, args=(str(files[n]), barrier, jobs[n], results[n]), daemon=True)
             for n in files}
    for p in procs.values():
        p.start()
    try:
        pids = {n: results[n].get(timeout=300) for n in files}
        # each study alone (both at once, on their own folders): what its folder holds when it has run
        for n in files:
            jobs[n].put(str(tmp_path / f"alone-{n}"))
        assert all(results[n].get(timeout=300) == ("ran", "") for n in files)
        alone = {n: _listing(tmp_path / f"alone-{n}") for n in files}
        assert alone["owner-mediated"]["sample.csv"] != alone["owner-free"]["sample.csv"]
        winners = []
        for trial in range(10):
            out = tmp_path / f"shared-{trial}"  # fresh: not even created yet
            for n in files:
                jobs[n].put(str(out))
            outcome = {n: results[n].get(timeout=300) for n in files}
            ran = [n for n in files if outcome[n] == ("ran", "")]
            assert len(ran) == 1, (trial, outcome)
            winner, = ran
            loser, = (n for n in files if n != winner)
            kind, message = outcome[loser]
            assert kind == StudyLockedError.__name__, (trial, outcome)
            assert (f"pid {pids[winner]} on host {socket.gethostname()!r}, started 20" in message
                    and str(out) in message), message
            # the folder is the winner's, file for file: metadata, sample, tables, answers and report
            assert _listing(out) == alone[winner], trial
            meta = json.loads((out / "study.json").read_text())
            assert meta["name"] == winner and meta["fingerprint"] == config_fingerprint(load_study(files[winner]))
            assert (out / "study.toml").read_text() == files[winner].read_text()
            assert loser not in (out / "report.html").read_text()
            assert not (out / STUDY_LOCK).exists()
            winners.append(winner)
    finally:
        for n in files:
            jobs[n].put(None)
        for p in procs.values():
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    assert len(winners) == 10


SMALL = STUDY.format(name="small", variant="mediated")


def test_the_lock_is_held_through_the_run_and_released_after_it_and_after_a_failure(tmp_path, monkeypatch):
    study = tmp_path / "small.toml"
    study.write_text(SMALL)
    out = tmp_path / "out"
    seen = []
    from latentprobe.study import report

    build = report._build

    def spying(folder):
        seen.append((lock.held(folder, name=STUDY_LOCK), (folder / STUDY_LOCK).is_file()))
        return build(folder)

    monkeypatch.setattr(report, "_build", spying)
    run_study(study, out, progress=False)
    assert seen == [(True, True)]  # the report is written under the run's lock
    assert not (out / STUDY_LOCK).exists() and not lock.held(out, name=STUDY_LOCK)
    # a failure (another study's folder) releases it too, and a refused fresh folder is not left behind
    other = tmp_path / "other.toml"
    other.write_text(STUDY.format(name="other", variant="free"))
    with pytest.raises(StudyError, match="another study configuration"):
        run_study(other, out, progress=False)
    assert not (out / STUDY_LOCK).exists() and not lock.held(out, name=STUDY_LOCK)
    monkeypatch.undo()
    from latentprobe.study import datasets

    def failing(study, model):
        assert lock.held(tmp_path / "never", name=STUDY_LOCK)  # the folder was made and locked first
        raise StudyError("no data")

    monkeypatch.setattr(datasets, "load_data", failing)
    with pytest.raises(StudyError, match="no data"):
        run_study(study, tmp_path / "never", progress=False)
    assert not (tmp_path / "never").exists() and not lock.held(tmp_path / "never", name=STUDY_LOCK)


def test_a_live_owner_refuses_and_a_dead_ones_lock_is_taken_over(tmp_path):
    study = tmp_path / "small.toml"
    study.write_text(SMALL)
    out = tmp_path / "out"
    out.mkdir()
    record = {"pid": os.getppid(), "host": socket.gethostname(), "started": "2026-01-02T03:04:05+00:00",
              "token": "x", "argv": "latentprobe run other.toml"}
    (out / STUDY_LOCK).write_text(json.dumps(record))
    with pytest.raises(StudyLockedError, match=rf"pid {os.getppid()} on host .*started 2026-01-02T03:04:05") as err:
        run_study(study, out, progress=False)
    assert "another --out" in str(err.value)
    assert sorted(p.name for p in out.iterdir()) == [STUDY_LOCK]  # refused before writing anything
    dead = multiprocessing.get_context("spawn").Process(target=os.getpid)
    dead.start()
    dead.join()
    (out / STUDY_LOCK).write_text(json.dumps({**record, "pid": dead.pid}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = run_study(study, out, progress=False)
    assert res.ran == ("collapse",)
    assert any(issubclass(w.category, SweepLockWarning) and "study folder" in str(w.message) for w in caught)
    assert not (out / STUDY_LOCK).exists()


def test_the_lock_is_reentrant_in_one_process_and_apart_from_the_sweep_lock(tmp_path):
    with study_lock(tmp_path):
        with study_lock(tmp_path):
            assert lock.held(tmp_path, name=STUDY_LOCK)
        assert lock.held(tmp_path, name=STUDY_LOCK) and not lock.held(tmp_path)
        lock.acquire(tmp_path)  # a sweep writing into the study folder itself
        lock.release(tmp_path)
        assert (tmp_path / STUDY_LOCK).is_file()
    assert not (tmp_path / STUDY_LOCK).exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(StudyError, match="is a file, not a folder"):
        with study_lock(tmp_path / "file"):
            pass
