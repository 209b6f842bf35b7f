"""Tests for latentprobe.sweep: one writer per folder (lock file, stale-lock takeover) and processes
killed at the part rename, the metadata rename and the metadata write, then resumed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from latentprobe.errors import SweepLockedError, SweepLockWarning
from latentprobe.sweep import ResumableSweep
from test_sweep import CONFIG, UNITS, _expected, _unit_rows

_ROOT = Path(__file__).resolve().parents[1]
_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(_ROOT), str(Path(__file__).parent)])}
# Child processes import latentprobe.sweep without the package's __init__ (and so without torch): ~1 s, not ~5.
_PRELUDE = f"""
import sys, types
_pkg = types.ModuleType("latentprobe")
_pkg.__path__ = [{str(_ROOT / "latentprobe")!r}]
sys.modules["latentprobe"] = _pkg
"""
_WRITER = _PRELUDE + """
import sys
from test_sweep import CONFIG, UNITS, _unit_rows
from latentprobe.sweep import ResumableSweep

def slow(unit):
    if unit == UNITS[1]:
        print("running", flush=True)
        sys.stdin.readline()  # the parent says when to go on
    return _unit_rows(unit)

ResumableSweep(sys.argv[1], config=CONFIG).run(UNITS[:4], slow, progress=False)
print("done", flush=True)
"""


def _lock_file(folder):
    return Path(folder) / ".sweep.lock"


def test_second_writer_is_refused_while_the_first_runs(tmp_path):
    mine = ResumableSweep(tmp_path, config=CONFIG)  # opened before the other process starts
    child = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)], env=_ENV, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline().strip() == "running"
        owner = json.loads(_lock_file(tmp_path).read_text())
        assert owner["pid"] == child.pid and owner["host"] == socket.gethostname()
        for attempt in (lambda: ResumableSweep(tmp_path, config=CONFIG),
                        lambda: mine.run(UNITS, _unit_rows, progress=False),
                        lambda: mine.write(UNITS[9], _unit_rows(UNITS[9])),
                        lambda: ResumableSweep(tmp_path, config=CONFIG, overwrite=True)):
            with pytest.raises(SweepLockedError, match=f"pid {child.pid} on host") as info:
                attempt()
            assert str(_lock_file(tmp_path)) in str(info.value)
        assert sorted(p.name for p in (tmp_path / "results.parts").iterdir()) == ["part-00000.parquet"]
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "done"
    finally:
        child.kill() if child.poll() is None else None
        child.wait()
    assert not _lock_file(tmp_path).exists()
    # The first store reads what the other process wrote before it goes on: no unit twice, no clash.
    calls = []
    out = mine.run(UNITS, lambda u: calls.append(u) or _unit_rows(u), progress=False)
    assert calls == UNITS[4:]
    pd.testing.assert_frame_equal(out, _expected(), check_exact=True)


def test_with_block_holds_the_lock_and_stores_of_one_process_share_it(tmp_path):
    holder = _PRELUDE + """
import sys
from latentprobe.sweep import ResumableSweep
ResumableSweep(sys.argv[1], config={"seed": 0}).run(["u"], lambda u: [], progress=False)
"""
    with ResumableSweep(tmp_path, config=CONFIG) as sweep:
        assert _lock_file(tmp_path).exists()
        other = ResumableSweep(tmp_path, name="other", key_columns=())  # same process: shared
        other.write("x", {"a": 1})
        sweep.write(UNITS[0], _unit_rows(UNITS[0]))
        res = subprocess.run([sys.executable, "-c", holder, str(tmp_path)], env=_ENV, capture_output=True, text=True)
        assert res.returncode != 0 and "SweepLockedError" in res.stderr and f"pid {os.getpid()}" in res.stderr
        assert _lock_file(tmp_path).exists()
    assert not _lock_file(tmp_path).exists()


def _dead_pid():
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path):
    ResumableSweep(tmp_path, config=CONFIG).run(UNITS[:2], _unit_rows, progress=False)
    pid = _dead_pid()
    _lock_file(tmp_path).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": "earlier"}))
    with pytest.warns(SweepLockWarning, match=f"pid {pid}.*not running"):
        out = ResumableSweep(tmp_path, config=CONFIG).run(UNITS, _unit_rows, progress=False)
    pd.testing.assert_frame_equal(out, _expected(), check_exact=True)
    assert not _lock_file(tmp_path).exists()
    # an unreadable lock: refused while young (its owner may be writing it), taken over when old
    _lock_file(tmp_path).write_text("")
    with pytest.raises(SweepLockedError, match="unknown process"):
        ResumableSweep(tmp_path, config=CONFIG)
    os.utime(_lock_file(tmp_path), (0, 0))
    with pytest.warns(SweepLockWarning, match="unreadable"):
        ResumableSweep(tmp_path, config=CONFIG)
    # a live pid that started at another time than the recorded owner: the pid was reused
    _lock_file(tmp_path).write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(),
                                                "proc_start": "1"}))
    with pytest.warns(SweepLockWarning, match="another process"):
        ResumableSweep(tmp_path, config=CONFIG)


def test_lock_of_a_live_process_or_another_host_is_not_taken_over(tmp_path):
    ResumableSweep(tmp_path, config=CONFIG)
    _lock_file(tmp_path).write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "t"}))
    with pytest.raises(SweepLockedError, match="host 'elsewhere'"):
        ResumableSweep(tmp_path, config=CONFIG)
    _lock_file(tmp_path).write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    with pytest.raises(SweepLockedError, match=f"pid {os.getppid()}"):
        ResumableSweep(tmp_path, config=CONFIG).write("u", [])


_KILLER = _PRELUDE + """
import os, signal, sys
import latentprobe.atomic as atomic
from latentprobe.sweep import ResumableSweep
from test_sweep import CONFIG, UNITS, _unit_rows

point, n = sys.argv[2], int(sys.argv[3])
meta = point.startswith("meta")
seen = [0]
real_replace, real_write = os.replace, atomic.atomic_write

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def replace(src, dst):
    if point.endswith("rename") and str(dst).endswith(".meta.json") == meta:
        seen[0] += 1
        if seen[0] == n and point.endswith("before_rename"):
            die()
        real_replace(src, dst)
        if seen[0] == n and point.endswith("after_rename"):
            die()
    else:
        real_replace(src, dst)

def write(path, fn, **kw):
    if point == "meta_write" and str(path).endswith(".meta.json"):
        seen[0] += 1
        if seen[0] == n:
            def half(f):
                fn(f)
                f.flush()
                f.truncate(f.tell() // 2)
                die()
            return real_write(path, half, **kw)
    return real_write(path, fn, **kw)

os.replace = replace
import latentprobe.sweep.resumable as resumable
resumable.atomic_write = write
ResumableSweep(sys.argv[1], config=CONFIG).run(UNITS, _unit_rows, progress=False)
print("finished without being killed")
"""
_POINTS = ["part_before_rename", "part_after_rename", "meta_before_rename", "meta_after_rename", "meta_write"]


@pytest.mark.parametrize("point", _POINTS)
def test_kill_at_rename_and_metadata_points_resumes_identically(tmp_path, point):
    n = int(np.random.default_rng(_POINTS.index(point)).integers(2, len(UNITS)))  # a random unit, not the first
    res = subprocess.run([sys.executable, "-c", _KILLER, str(tmp_path), point, str(n)], env=_ENV,
                         capture_output=True, text=True)
    assert res.returncode == -signal.SIGKILL, res.stdout + res.stderr
    assert _lock_file(tmp_path).exists()  # the killed writer never released it
    with pytest.warns(SweepLockWarning, match="not running"):
        resumed = ResumableSweep(tmp_path, config=CONFIG)
    done = len(resumed.completed_units)
    # the n-th part holds unit n; the n-th metadata write records unit n - 1 (the first creates the sweep);
    # a unit is completed exactly when the metadata that records it has been renamed into place
    assert done == {"part_before_rename": n - 1, "part_after_rename": n - 1, "meta_before_rename": n - 2,
                    "meta_after_rename": n - 1, "meta_write": n - 2}[point]
    calls = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = resumed.run(UNITS, lambda u: calls.append(u) or _unit_rows(u), progress=False)
    assert calls == UNITS[done:]
    pd.testing.assert_frame_equal(out, _expected(), check_exact=True)
    left = [p.name for p in tmp_path.rglob("*") if p.is_file()]
    assert sorted(left) == sorted(["results.meta.json"] + [f"part-{i:05d}.parquet" for i in range(len(UNITS))])
