"""Tests for latentprobe.sweep."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from latentprobe.sweep import (
    ResumableSweep,
    SweepConfigMismatch,
    SweepRowsError,
    SweepStateError,
)

CONFIG = {"model": "toy", "layers": (0, 1, 2), "seed": 0}


def _unit_rows(unit):
    """Deterministic rows of mixed dtypes for one (layer, step) unit."""
    layer, step = unit
    rng = np.random.default_rng(layer * 100 + step)
    return pd.DataFrame(
        {
            "example_id": np.arange(3, dtype=np.int64),
            "layer": layer,
            "step": step,
            "condition": ["clean", "patched", "ablated"],
            "score": rng.normal(size=3),
            "correct": rng.random(3) < 0.5,
        }
    )


UNITS = [(layer, step) for layer in range(5) for step in range(4)]  # 20 units


class Boom(RuntimeError):
    pass


def _expected():
    return pd.concat([_unit_rows(u) for u in UNITS], ignore_index=True)


def test_crash_and_resume_matches_uninterrupted_run(tmp_path):
    calls = []

    def flaky(unit):
        if len(calls) == 7:
            raise Boom("simulated failure")
        calls.append(unit)
        return _unit_rows(unit)

    sweep = ResumableSweep(tmp_path / "a", config=CONFIG)
    with pytest.raises(Boom):
        sweep.run(UNITS, flaky, progress=False)
    assert len(calls) == 7
    assert sweep.completed_units == UNITS[:7]
    assert len(list((tmp_path / "a" / "results.parts").iterdir())) == 7

    resumed = ResumableSweep(tmp_path / "a", config=CONFIG)
    assert resumed.completed_units == UNITS[:7]
    assert resumed.done((0, 0)) and resumed.done([0, 0]) and not resumed.done((1, 3))
    pd.testing.assert_frame_equal(resumed.results(), _expected().iloc[:21], check_exact=True)

    second_calls = []

    def counting(unit):
        second_calls.append(unit)
        return _unit_rows(unit)

    out = resumed.run(UNITS, counting, progress=False)
    assert second_calls == UNITS[7:]
    assert len(second_calls) == 13

    fresh = ResumableSweep(tmp_path / "b", config=CONFIG).run(UNITS, _unit_rows, progress=False)
    pd.testing.assert_frame_equal(out, fresh, check_exact=True)
    pd.testing.assert_frame_equal(out, _expected(), check_exact=True)
    assert out["example_id"].dtype == np.int64
    assert out["correct"].dtype == bool
    assert out["score"].dtype == np.float64

    # Running again computes nothing.
    again = ResumableSweep(tmp_path / "a", config=CONFIG).run(
        UNITS, lambda u: pytest.fail("should not be called"), progress=False
    )
    pd.testing.assert_frame_equal(again, out, check_exact=True)


def test_meta_records_config_and_units(tmp_path):
    sweep = ResumableSweep(tmp_path, name="patching", config=CONFIG)
    sweep.write((2, 1), _unit_rows((2, 1)))
    sweep.write("summary", [{"example_id": 0, "x": 1.5}])
    meta = json.loads((tmp_path / "patching.meta.json").read_text())
    assert meta["config"] == {"model": "toy", "layers": [0, 1, 2], "seed": 0}
    assert [u["key"] for u in meta["units"]] == [[2, 1], "summary"]
    assert sweep.config == meta["config"]
    assert sweep.completed_units == [(2, 1), "summary"]
    # Units of different shapes concatenate in completion order.
    res = sweep.results()
    assert len(res) == 4 and res["x"].isna().sum() == 3 and res["x"].iloc[-1] == 1.5
    # No temp files left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["patching.meta.json", "patching.parts"]


def test_config_mismatch_and_overwrite(tmp_path):
    sweep = ResumableSweep(tmp_path, config=CONFIG)
    sweep.run(UNITS[:3], _unit_rows, progress=False)

    with pytest.raises(SweepConfigMismatch, match="'seed': stored 0, now 1") as info:
        ResumableSweep(tmp_path, config={**CONFIG, "seed": 1})
    assert "overwrite=True" in str(info.value) and "out_dir" in str(info.value)
    assert isinstance(info.value, ValueError)
    with pytest.raises(SweepConfigMismatch, match="'extra': not stored"):
        ResumableSweep(tmp_path, config={**CONFIG, "extra": 3})
    # Tuples and lists are the same config; None adopts the stored one.
    same = ResumableSweep(tmp_path, config={**CONFIG, "layers": [0, 1, 2]})
    assert same.completed_units == UNITS[:3]
    assert ResumableSweep(tmp_path).config["seed"] == 0
    with pytest.raises(SweepConfigMismatch, match="format"):
        ResumableSweep(tmp_path, config=CONFIG, format="csv")

    other = tmp_path / "unrelated.txt"
    other.write_text("keep me")
    cleared = ResumableSweep(tmp_path, config={**CONFIG, "seed": 1}, overwrite=True)
    assert cleared.completed_units == []
    assert cleared.results().empty
    assert other.read_text() == "keep me"
    assert ResumableSweep(tmp_path).config["seed"] == 1


def test_orphan_part_and_temp_file_are_ignored(tmp_path):
    sweep = ResumableSweep(tmp_path, config=CONFIG)
    sweep.run(UNITS[:5], _unit_rows, progress=False)
    parts = tmp_path / "results.parts"
    # Crash after the part of unit 6 was renamed into place but before meta was updated,
    # and a half-written temp file from another crash.
    _unit_rows(UNITS[5]).assign(score=-999.0).to_parquet(parts / "part-00005.parquet")
    (parts / ".part-00006.parquet.abc.tmp").write_bytes(b"\x00garbage")

    resumed = ResumableSweep(tmp_path, config=CONFIG)
    assert resumed.completed_units == UNITS[:5]
    assert sorted(p.name for p in parts.iterdir()) == [f"part-{i:05d}.parquet" for i in range(5)]
    out = resumed.run(UNITS, _unit_rows, progress=False)
    pd.testing.assert_frame_equal(out, _expected(), check_exact=True)
    assert (out["score"] != -999.0).all()
    assert len(out) == 60


def test_csv_round_trip(tmp_path):
    sweep = ResumableSweep(tmp_path, config=CONFIG, format="csv")
    out = sweep.run(UNITS[:4], _unit_rows, progress=False)
    assert (tmp_path / "results.parts" / "part-00000.csv").exists()
    reopened = ResumableSweep(tmp_path, config=CONFIG, format="csv").results()
    expected = pd.concat([_unit_rows(u) for u in UNITS[:4]], ignore_index=True)
    pd.testing.assert_frame_equal(out, expected, check_exact=True)
    pd.testing.assert_frame_equal(reopened, expected, check_exact=True)
    # Strings that look like numbers stay strings.
    sweep.write("ids", [{"example_id": "007", "score": 1.0, "correct": True}])
    assert sweep.results()["example_id"].iloc[-1] == "007"


def test_write_validation(tmp_path):
    sweep = ResumableSweep(tmp_path)
    with pytest.raises(SweepRowsError, match="example_id"):
        sweep.write("u", [{"layer": 0, "score": 1.0}])
    assert not sweep.done("u")
    with pytest.raises(SweepRowsError, match="DataFrame"):
        sweep.write("u", 3.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="JSON"):
        sweep.write(object(), [])
    sweep.write("u", [])  # a unit with no rows
    assert sweep.done("u") and sweep.results().empty
    with pytest.raises(SweepStateError, match="already completed"):
        sweep.write("u", [{"example_id": 1}])
    with pytest.raises(SweepRowsError, match="None"):
        sweep.run(["v"], lambda u: None, progress=False)

    free = ResumableSweep(tmp_path, name="free", key_columns=())
    free.write(np.int64(3), {"layer": 3, "accuracy": 0.5})
    assert free.done(3)
    assert free.results().to_dict("records") == [{"layer": 3, "accuracy": 0.5}]


def test_run_with_generator_and_unit_key(tmp_path):
    sweep = ResumableSweep(tmp_path, config={"seed": 0})
    units = ({"layer": i, "step": 0} for i in range(4))
    out = sweep.run(
        units,
        lambda u: [{"example_id": 0, "layer": u["layer"]}],
        unit_key=lambda u: (u["layer"], u["step"]),
        progress=False,
    )
    assert list(out["layer"]) == [0, 1, 2, 3]
    assert sweep.completed_units == [(0, 0), (1, 0), (2, 0), (3, 0)]
    assert sweep.done((2, 0))


def test_missing_part_is_reported_and_recomputed_on_reopening(tmp_path):
    from latentprobe.errors import LatentProbeWarning

    sweep = ResumableSweep(tmp_path, config=CONFIG)
    sweep.run(UNITS[:2], _unit_rows, progress=False)
    (tmp_path / "results.parts" / "part-00001.parquet").unlink()
    with pytest.raises(SweepStateError, match="part-00001.parquet of completed unit .* is missing"):
        sweep.results()  # the open store recorded it
    with pytest.warns(LatentProbeWarning, match="part-00001.parquet.*computed again"):
        reopened = ResumableSweep(tmp_path, config=CONFIG)
    assert reopened.completed_units == UNITS[:1]
    calls = []
    out = reopened.run(UNITS[:2], lambda u: calls.append(u) or _unit_rows(u), progress=False)
    assert calls == UNITS[1:2]
    pd.testing.assert_frame_equal(out, pd.concat([_unit_rows(u) for u in UNITS[:2]], ignore_index=True))
    (tmp_path / "results.meta.json").write_text("{not json")
    with pytest.raises(SweepStateError, match="overwrite=True"):
        ResumableSweep(tmp_path, config=CONFIG)


def test_crash_between_part_and_meta_redoes_unit_once(tmp_path, monkeypatch):
    sweep = ResumableSweep(tmp_path, config=CONFIG)
    sweep.run(UNITS[:3], _unit_rows, progress=False)

    def failing_meta(self):
        raise Boom("crash while recording the unit")

    monkeypatch.setattr(ResumableSweep, "_write_meta", failing_meta)
    with pytest.raises(Boom):
        sweep.write(UNITS[3], _unit_rows(UNITS[3]))
    assert not sweep.done(UNITS[3])
    monkeypatch.undo()
    # The part is on disk but not recorded.
    assert (tmp_path / "results.parts" / "part-00003.parquet").exists()

    calls = []
    resumed = ResumableSweep(tmp_path, config=CONFIG)
    out = resumed.run(UNITS[:5], lambda u: calls.append(u) or _unit_rows(u), progress=False)
    assert calls == UNITS[3:5]
    expected = pd.concat([_unit_rows(u) for u in UNITS[:5]], ignore_index=True)
    pd.testing.assert_frame_equal(out, expected, check_exact=True)


# ---------------------------------------------------------------------------
# In memory (out_dir=None)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("format", ["parquet", "csv"])
def test_in_memory_sweep_gives_the_on_disk_table(tmp_path, format):
    disk = ResumableSweep(tmp_path, config=CONFIG, format=format).run(UNITS, _unit_rows, progress=False)
    mem_sweep = ResumableSweep(None, config=CONFIG, format=format)
    mem = mem_sweep.run(UNITS, _unit_rows, progress=False)
    pd.testing.assert_frame_equal(mem, disk)
    pd.testing.assert_frame_equal(mem, _expected())
    assert mem_sweep.out_dir is None and len(mem_sweep) == len(UNITS)
    assert mem_sweep.completed_units == UNITS and mem_sweep.config == json.loads(json.dumps(CONFIG))
    assert list(tmp_path.iterdir()) != [] and "out_dir=None" in repr(mem_sweep)


def test_in_memory_sweep_skips_done_units_and_refuses_rewrites():
    calls = []

    def fn(unit):
        calls.append(unit)
        return _unit_rows(unit)

    sweep = ResumableSweep(None, config=CONFIG)
    sweep.run(UNITS[:5], fn, progress=False)
    sweep.run(UNITS, fn, progress=False)
    assert calls == UNITS  # each unit computed once
    assert sweep.done(list(UNITS[3])) and not sweep.done((99, 0))
    with pytest.raises(SweepStateError, match="memory"):
        sweep.write(UNITS[0], _unit_rows(UNITS[0]))
    with pytest.raises(SweepRowsError, match="key column"):
        sweep.write("bad", [{"score": 1.0}])
    empty = ResumableSweep(None)
    assert empty.results().empty and empty.config == {}
    empty.write("nothing", [])
    assert empty.done("nothing") and empty.results().empty


# ---------------------------------------------------------------------------
# Typed errors, config diffs, part names, temporary files
# ---------------------------------------------------------------------------


def test_argument_and_key_errors_are_typed(tmp_path):
    from latentprobe.errors import LatentProbeError, SweepArgumentError, SweepKeyError

    for kwargs in ({"name": "../x"}, {"name": ""}, {"name": ".hidden"}, {"format": "xlsx"},
                   {"key_columns": (1,)}, {"key_columns": 3}, {"config": [1, 2]}):
        with pytest.raises(SweepArgumentError) as info:
            ResumableSweep(tmp_path, **kwargs)
        assert isinstance(info.value, LatentProbeError)
    with pytest.raises(SweepKeyError, match="JSON") as info:
        ResumableSweep(tmp_path, config={"fn": object()})
    assert isinstance(info.value, TypeError) and isinstance(info.value, LatentProbeError)
    with pytest.raises(SweepKeyError, match="mapping key"):
        ResumableSweep(None).write({1: "a"}, [])


def test_mismatch_lists_dotted_paths_and_how_to_proceed(tmp_path):
    cfg = {"runner": {"weights": "sha256:aaaa", "spec": {"num_latents": 4, "name": "toy"}}, "seed": 0}
    ResumableSweep(tmp_path, config=cfg).write("u", [])
    new = {"runner": {"weights": "sha256:bbbb", "spec": {"num_latents": 6, "name": "toy"}}, "seed": 0,
           "note": "x" * 500}
    with pytest.raises(SweepConfigMismatch) as info:
        ResumableSweep(tmp_path, config=new)
    msg = str(info.value)
    assert "'runner.weights': stored 'sha256:aaaa', now 'sha256:bbbb'" in msg
    assert "'runner.spec.num_latents': stored 4, now 6" in msg
    assert "'note': not stored, now 'xxx" in msg and "x" * 200 not in msg  # shortened
    assert "seed" not in msg and "name" not in msg.split("changed")[1].split(". ")[0]
    assert "out_dir" in msg and "delete the folder" in msg


def _edit_meta(folder, edit, name="results"):
    path = folder / f"{name}.meta.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize("bad", ["../../secret.csv", "/etc/passwd", "part-00001.parquet.bak", "part-00001.csv",
                                 "part-1.parquet", "notes.parquet"])
def test_part_names_not_written_by_the_store_are_refused(tmp_path, bad):
    (tmp_path / "secret.csv").write_text("example_id,score\nleak,1.0\n")
    folder = tmp_path / "a" / "b"
    ResumableSweep(folder, config=CONFIG).run(UNITS[:3], _unit_rows, progress=False)
    _edit_meta(folder, lambda m: m["units"][1].update(part=bad))
    with pytest.raises(SweepStateError, match=r"units\[1\]") as info:
        ResumableSweep(folder, config=CONFIG)
    assert repr(bad) in str(info.value) and "results.meta.json" in str(info.value)
    assert repr([0, 1]) in str(info.value)  # the entry's unit key


def test_malformed_unit_entries_are_refused(tmp_path):
    ResumableSweep(tmp_path, config=CONFIG).run(UNITS[:3], _unit_rows, progress=False)
    _edit_meta(tmp_path, lambda m: m["units"][2].update(part=m["units"][0]["part"]))
    with pytest.raises(SweepStateError, match="reuses part"):
        ResumableSweep(tmp_path, config=CONFIG)
    _edit_meta(tmp_path, lambda m: m["units"].__setitem__(2, "not an entry"))
    with pytest.raises(SweepStateError, match=r"units\[2\]"):
        ResumableSweep(tmp_path, config=CONFIG)


def test_temp_files_anywhere_in_the_folder_are_cleaned_on_resume(tmp_path):
    ResumableSweep(tmp_path, config=CONFIG).run(UNITS[:3], _unit_rows, progress=False)
    (tmp_path / "deep" / "er").mkdir(parents=True)
    strays = [tmp_path / ".results.meta.json.k2j4h5g6.tmp", tmp_path / "deep" / "er" / ".chunk.safetensors.x.tmp",
              tmp_path / "results.parts" / ".part-00003.parquet.a1b2c3d4.tmp"]
    for p in strays:
        p.write_bytes(b"half")
    keep = [tmp_path / "notes.tmp", tmp_path / "deep" / "data.csv"]
    for p in keep:
        p.write_text("user file")
    out = ResumableSweep(tmp_path, config=CONFIG).run(UNITS, _unit_rows, progress=False)
    pd.testing.assert_frame_equal(out, _expected(), check_exact=True)
    assert not any(p.exists() for p in strays) and all(p.exists() for p in keep)


def test_damaged_part_is_a_state_error(tmp_path):
    ResumableSweep(tmp_path, config=CONFIG).run(UNITS[:2], _unit_rows, progress=False)
    (tmp_path / "results.parts" / "part-00001.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(SweepStateError, match="part-00001.parquet"):
        ResumableSweep(tmp_path, config=CONFIG).results()


@pytest.mark.parametrize("format", ["parquet", "csv"])
def test_a_flipped_byte_in_a_part_is_refused_and_deleting_the_part_recomputes_it(tmp_path, format):
    import hashlib

    from latentprobe.errors import LatentProbeWarning, SweepChecksumError

    ResumableSweep(tmp_path, config=CONFIG, format=format).run(UNITS[:3], _unit_rows, progress=False)
    part = tmp_path / "results.parts" / f"part-00001.{format}"
    entry = json.loads((tmp_path / "results.meta.json").read_text())["units"][1]
    assert entry["sha256"] == "sha256:" + hashlib.sha256(part.read_bytes()).hexdigest()
    data = bytearray(part.read_bytes())
    i = len(data) // 2
    data[i] ^= 0x01  # one bit of one byte; the file may still parse
    part.write_bytes(bytes(data))
    with pytest.raises(SweepChecksumError, match=f"part {re.escape(str(part))} of completed unit .* is damaged") as err:
        ResumableSweep(tmp_path, config=CONFIG, format=format).results()
    assert f"delete {part}" in str(err.value)
    part.unlink()  # the way out the message gives
    calls = []
    with pytest.warns(LatentProbeWarning, match="computed again"):
        sweep = ResumableSweep(tmp_path, config=CONFIG, format=format)
    out = sweep.run(UNITS[:3], lambda u: calls.append(u) or _unit_rows(u), progress=False)
    assert calls == [UNITS[1]]
    expected = ResumableSweep(None, config=CONFIG, format=format).run(UNITS[:3], _unit_rows, progress=False)
    order = ["layer", "step"]
    pd.testing.assert_frame_equal(out.sort_values(order, kind="stable").reset_index(drop=True),
                                  expected.sort_values(order, kind="stable").reset_index(drop=True), check_exact=True)


def test_disk_full_is_a_typed_os_error_and_the_sweep_resumes(tmp_path, monkeypatch):
    import errno
    import os

    import latentprobe.atomic
    from latentprobe.errors import LatentProbeError, SweepIOError

    sweep = ResumableSweep(tmp_path, config=CONFIG)
    sweep.run(UNITS[:3], _unit_rows, progress=False)

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(latentprobe.atomic.os, "replace", full)
    with pytest.raises(SweepIOError, match="part-00003.parquet") as info:
        sweep.run(UNITS, _unit_rows, progress=False)
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, (OSError, LatentProbeError))
    monkeypatch.undo()
    out = ResumableSweep(tmp_path, config=CONFIG).run(UNITS, _unit_rows, progress=False)
    pd.testing.assert_frame_equal(out, _expected(), check_exact=True)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp") or p.name == ".sweep.lock"]
    assert sorted(os.listdir(tmp_path)) == ["results.meta.json", "results.parts"]


def test_every_exception_the_sweep_package_raises_is_a_latentprobe_error():
    import ast
    from pathlib import Path

    import latentprobe.errors as errors
    import latentprobe.sweep as sweep_pkg

    raised = set()
    for path in Path(sweep_pkg.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and isinstance(node.exc.func, ast.Name):
                raised.add(node.exc.func.id)
    helpers = {"_refused", "io_error"}  # functions that build a SweepLockedError / SweepIOError
    classes = raised - helpers
    assert classes and all(issubclass(getattr(errors, c), errors.LatentProbeError) for c in classes), classes
    assert helpers <= raised
