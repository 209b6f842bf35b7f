"""The command line on a full disk, an unwritable or special output path: one line naming the path, exit 1, no
traceback; a study stopped by a full disk resumes, once space is freed, to the tables of an uninterrupted run."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from latentprobe import cli

STUDY = """
[study]
name = "disk"
seed = 0
[model]
source = "toy:mediated"
[data]
benchmark = "toy"
split = "test"
n = 8
[generation]
max_new_tokens = 8
batch_size = 8
chunk_size = 4
n_boot = 20
[analyses.z_to_y]
interventions = ["zero"]
modes = ["propagate"]
[analyses.probes]
targets = ["target_colour"]
layers = [4]
n_splits = 2
"""


def _cli(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli.main, list(args), standalone_mode=True, catch_exceptions=False)
    return res.exit_code, res.output


def _folder(out: Path) -> dict[str, str]:
    """Every file a finished study leaves (tables, metadata, report without its creation time), by relative path;
    the study.json's timing and the sweeps' timestamps aside."""
    files = {}
    for p in sorted(out.rglob("*")):
        if p.is_file() and p.suffix in (".csv", ".html") and ".parts" not in p.parts[-2]:
            files[str(p.relative_to(out))] = re.sub(r"Created \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "", p.read_text())
    return files


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    d = tmp_path_factory.mktemp("disk")
    (d / "s.toml").write_text(STUDY)
    code, text = _cli("run", str(d / "s.toml"), "--out", str(d / "whole"), "--quiet")
    assert code == 0, text
    return d


@pytest.mark.parametrize("full_after", [1, 12, 30])
def test_a_full_disk_is_one_line_and_the_study_resumes_to_the_same_tables(study, tmp_path, monkeypatch, full_after):
    out = tmp_path / "out"
    real, calls = os.fsync, []

    def fsync(fd):  # the disk fills after `full_after` files: every later write fails as a full disk's does
        calls.append(fd)
        if len(calls) > full_after:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    code, text = _cli("run", str(study / "s.toml"), "--out", str(out), "--quiet")
    lines = [ln for ln in text.splitlines() if ln.startswith("latentprobe:")]
    assert code == 1, text
    assert "Traceback" not in text and len(lines) == 1, text
    assert "No space left on device" in lines[0] and "free space" in lines[0] and str(out) in lines[0], lines[0]
    assert not (out / "probes" / "done.json").exists()  # stopped before the end
    monkeypatch.setattr(os, "fsync", real)  # space freed
    code, text = _cli("run", str(study / "s.toml"), "--out", str(out), "--quiet")
    assert code == 0, text
    whole = _folder(study / "whole")
    assert set(whole) >= {"sample.csv", "answers.csv", "z_to_y/rows.csv", "probes/scores.csv", "report.html"}
    assert _folder(out) == whole


@pytest.mark.parametrize("make, fragment", [
    (lambda d: (d / "afile").write_text("x") and d / "afile" / "out", "Not a directory [ENOTDIR]"),
    (lambda d: Path("/proc/latentprobe-out"), "[ENOENT]"),
])
def test_special_or_impossible_output_paths_are_one_line(study, tmp_path, make, fragment):
    out = make(tmp_path)
    code, text = _cli("run", str(study / "s.toml"), "--out", str(out), "--quiet")
    assert code == 1 and "Traceback" not in text, text
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("latentprobe: error: ") and str(out) in lines[0], text
    assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("err, fragment", [
    (PermissionError(errno.EACCES, "Permission denied"), "choose a folder you can write"),
    (OSError(errno.EROFS, "Read-only file system"), "read-only file system"),
])
def test_an_unwritable_output_folder_is_one_line(study, tmp_path, monkeypatch, err, fragment):
    # the suite may run as root, for whom chmod does not refuse: the refusal is the system's error, raised where
    # the folder is created
    out = tmp_path / "locked" / "out"
    real = Path.mkdir

    def mkdir(self, *a, **k):
        if str(self).startswith(str(tmp_path / "locked")):
            raise type(err)(err.errno, err.strerror, str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    code, text = _cli("run", str(study / "s.toml"), "--out", str(out), "--quiet")
    assert code == 1 and "Traceback" not in text, text
    line = text.strip().splitlines()[-1]
    assert line.startswith("latentprobe: error: ") and str(tmp_path / "locked") in line and fragment in line, line


def test_a_special_file_as_the_output_folder_is_a_usage_error(study):
    code, text = _cli("run", str(study / "s.toml"), "--out", os.devnull, "--quiet")
    lines = text.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in text, text
    assert os.devnull in lines[0] and "is a file, not a folder" in lines[0], text


def test_debug_shows_the_os_error(study, tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError):
        CliRunner().invoke(cli.main, ["--debug", "run", str(study / "s.toml"), "--out", str(tmp_path / "afile" / "out"),
                                      "--quiet"], catch_exceptions=False)


def test_an_untyped_error_is_one_line_without_debug(monkeypatch):
    def boom(*a, **k):
        raise KeyError("deep inside")

    monkeypatch.setattr("latentprobe.demo.run_demo", boom)
    code, text = _cli("demo", "--variants", "free", "--n", "2")
    assert code == 1 and "Traceback" not in text
    assert text.strip() == ("latentprobe: internal error: KeyError: 'deep inside' (run again with --debug for the "
                            "traceback, and report it)")


def test_a_damaged_table_is_one_line_naming_it(study, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(study / "whole", out)
    (out / "z_to_y" / "rows.csv").write_bytes(b"\x00\xff,,\"\n\"a")
    code, text = _cli("report", str(out))
    assert code == 2 and "Traceback" not in text, text
    assert text.strip().startswith(f"latentprobe: error: StudyError: {out / 'z_to_y' / 'rows.csv'}: cannot be read")
