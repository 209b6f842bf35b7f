"""The sharded store across real worker processes (gloo on the CPU, no model): shares, merge, resume by another
worker count after a SIGKILL, exactly-once keys, the hang report."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import time
import traceback
from pathlib import Path

import pandas as pd
import pytest

from latentprobe.workers import Launch, Workers
from latentprobe.errors import SweepConfigMismatch
from latentprobe.sweep import ResumableSweep
from latentprobe.sweep.sharded import ShardedSweep, open_store, stored_keys

UNITS = [(c, cond) for c in range(5) for cond in ("a", "b")]


def _rows(unit):
    c, cond = unit
    return pd.DataFrame({"example_id": [f"e{c}-{i}" for i in range(3)], "cond": cond,
                         "value": [c * 10.0 + i + (0.5 if cond == "b" else 0.0) for i in range(3)]})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, folder, report, kill_at, sleep_at, timeout, config):
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    out = {"rank": rank}
    try:
        w = Workers(Launch(rank, world, group_id="test"), folder, timeout_s=timeout, progress=False)
        try:
            store = ShardedSweep(folder / "a", group=w, name="rows", config=config, key_columns=("example_id",))

            def fn(unit):
                if kill_at is not None and rank == kill_at[0] and list(unit) == kill_at[1]:
                    os.kill(os.getpid(), signal.SIGKILL)  # in the middle of the unit: nothing of it is stored
                if sleep_at is not None and rank == sleep_at[0] and list(unit) == sleep_at[1]:
                    time.sleep(600)
                return _rows(unit)

            res = store.run(UNITS, fn)
            out["csv"] = res.to_csv(index=False)
        finally:
            w.close()
    except BaseException as err:  # reported to the test
        out["error"] = f"{type(err).__name__}: {err}"
        out["trace"] = traceback.format_exc()
    Path(report, f"rank-{rank}.json").write_text(json.dumps(out))
    os._exit(0)


def _launch(folder, world, *, kill_at=None, sleep_at=None, timeout=60.0, config=None):
    port = _free_port()
    reports = folder / f"reports-{world}-{port}"
    reports.mkdir(parents=True)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_worker, args=(r, world, port, folder, reports, kill_at, sleep_at, timeout,
                                               config or {"v": 1})) for r in range(world)]
    for p in procs:
        p.start()
    procs[0].join(240)  # rank 0 ends (done, or reporting the others); a hung rank is then killed
    for r, p in enumerate(procs):
        p.join(0 if sleep_at is not None and r == sleep_at[0] else 20)  # the sleeping rank never reports
        if p.is_alive():
            p.kill()
            p.join()
    return {int(f.stem.split("-")[1]): json.loads(f.read_text()) for f in reports.glob("rank-*.json")}


def _plain(tmp_path) -> str:
    store = ResumableSweep(tmp_path / "plain", name="rows", config={"v": 1})
    return store.run(UNITS, _rows, progress=False).to_csv(index=False)


@pytest.mark.slow
def test_three_workers_store_every_unit_once_and_agree_with_one_process(tmp_path):
    got = _launch(tmp_path, 3)
    assert sorted(got) == [0, 1, 2] and not any("error" in r for r in got.values()), got
    assert {r["csv"] for r in got.values()} == {_plain(tmp_path)}  # every rank reads the same rows, in plan order
    keys = stored_keys(tmp_path / "a", "rows")
    assert sorted(keys) == sorted(UNITS) and len(keys) == len(UNITS)
    assert not (tmp_path / "a" / ".ranks").exists() or not any((tmp_path / "a" / ".ranks").iterdir())


@pytest.mark.slow
def test_a_sigkilled_worker_s_units_are_redone_by_another_worker_count(tmp_path):
    got = _launch(tmp_path, 3, kill_at=(2, [2, "a"]), timeout=8.0)
    assert 2 not in got  # killed: no report
    assert "WorkerHangError" in got[0]["error"] and "rank 2" in got[0]["error"], got[0]
    assert '[2, "a"]' in got[0]["error"]  # the unit it was computing
    before = stored_keys(tmp_path / "a", "rows")
    assert [2, "a"] not in [list(k) for k in before] and len(before) == len(set(before))
    again = _launch(tmp_path, 2)
    assert not any("error" in r for r in again.values()), again
    assert {r["csv"] for r in again.values()} == {_plain(tmp_path)}
    keys = stored_keys(tmp_path / "a", "rows")
    assert sorted(keys) == sorted(UNITS) and len(keys) == len(UNITS)


@pytest.mark.slow
def test_a_hung_worker_is_reported_with_its_rank_and_unit(tmp_path):
    got = _launch(tmp_path, 2, sleep_at=(1, [3, "b"]), timeout=4.0)
    assert "WorkerHangError" in got[0]["error"], got[0]
    assert "rank 1" in got[0]["error"] and '[3, "b"]' in got[0]["error"] and "rank-1.log" in got[0]["error"]


@pytest.mark.slow
def test_a_changed_config_is_refused_by_every_rank(tmp_path):
    assert not any("error" in r for r in _launch(tmp_path, 2).values())
    got = _launch(tmp_path, 2, config={"v": 2}, timeout=10.0)
    assert set(got) == {0, 1}
    for r in got.values():
        assert r["error"].startswith("SweepConfigMismatch") and "'v': stored 1, now 2" in r["error"], r


def test_open_store_is_a_plain_store_without_workers(tmp_path):
    assert type(open_store(tmp_path, name="rows")) is ResumableSweep
    assert type(open_store(None, name="rows")) is ResumableSweep


def test_a_group_of_one_merges_into_the_ordinary_store(tmp_path):
    w = Workers(Launch(0, 1), tmp_path, connect=False, progress=False)
    store = ShardedSweep(tmp_path / "a", group=w, name="rows", config={"v": 1})
    assert store.run(UNITS, _rows).to_csv(index=False) == _plain(tmp_path)
    # the merged store is an ordinary one: a plain store opens it and finds every unit, in plan order
    plain = ResumableSweep(tmp_path / "a", name="rows", config={"v": 1})
    assert plain.completed_units == UNITS
    with pytest.raises(SweepConfigMismatch):
        ShardedSweep(tmp_path / "a", group=w, name="rows", config={"v": 2})
    log = (tmp_path / "logs" / "rank-0.log").read_text()
    assert log.count("unit a/rows") == 2 * len(UNITS)  # started and stored, per unit
