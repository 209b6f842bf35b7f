"""The command line: one-line typed errors, exit codes 2 (usage) and 1 (failure), ranged options."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from latentprobe import cli
from latentprobe.errors import DataError


def _run(args, **kw):
    res = CliRunner().invoke(cli.main, args, standalone_mode=True, catch_exceptions=False, **kw)
    return res.exit_code, res.output


@pytest.mark.parametrize("args, fragment", [
    (["trace", "free", "--out", "x", "--n", "-795"], "'--n': -795 is not in the range"),
    (["trace", "free", "--out", "x", "--n", "0"], "'--n': 0 is not in the range"),
    (["trace", "free", "--out", "x", "--n", "many"], "'many' is not a valid integer"),
    (["trace", "nope", "--out", "x"], "unknown variant(s) ['nope']"),
    (["trace", "HuggingFaceTB/SmolLM2-135M", "--out", "x"], "latentprobe run STUDY.toml"),
    (["trace", "free"], "Missing option '--out'"),
    (["demo", "--variants", ""], "no variant given"),
    (["demo", "--variants", " , "], "no variant given"),
    (["demo", "--variants", "free,bogus"], "unknown variant(s) ['bogus']"),
    (["demo", "--n", "0"], "'--n': 0 is not in the range"),
    (["demo", "--seed", "-1"], "'--seed': -1 is not in the range"),
    (["toy", "train", "--out", "x", "--variant", "nope"], "unknown variant(s) ['nope']"),
    (["toy", "train", "--out", "x", "--seed", "-2"], "'--seed': -2"),
    (["bogus"], "No such command 'bogus'"),
])
def test_usage_errors_are_one_line_and_exit_2(args, fragment, tmp_path):
    code, out = _run(args)
    assert code == 2, out
    lines = out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("latentprobe: usage error:"), out
    assert fragment in lines[0]
    assert "Traceback" not in out


def test_typed_failures_are_one_line_and_exit_1(monkeypatch):
    def boom(*a, **k):
        raise DataError("image file x.png cannot be read;\nreplace it.")

    monkeypatch.setattr("latentprobe.demo.run_demo", boom)
    code, out = _run(["demo", "--variants", "free", "--n", "2"])
    assert code == 1
    assert out.strip() == "latentprobe: error: DataError: image file x.png cannot be read; replace it."


def test_debug_shows_the_traceback(monkeypatch):
    def boom(*a, **k):
        raise DataError("broken")

    monkeypatch.setattr("latentprobe.demo.run_demo", boom)
    with pytest.raises(DataError, match="broken"):
        CliRunner().invoke(cli.main, ["--debug", "demo", "--variants", "free"], catch_exceptions=False)


def test_non_standalone_returns_the_code():
    assert cli.main.main(["demo", "--n", "-1"], standalone_mode=False) == 2
    assert cli.main.main(["presets"], standalone_mode=False) == 0


def test_help_and_presets_exit_0():
    assert _run(["--help"])[0] == 0
    code, out = _run(["presets"])
    assert code == 0 and "coconut" in out


def test_trace_saves_the_asked_number(tmp_path):
    code, out = _run(["trace", "free", "--out", str(tmp_path / "t"), "--n", "3"])
    assert code == 0, out
    from latentprobe.trace import LatentTrace

    assert len(LatentTrace.load(tmp_path / "t")) == 3


def test_the_command_sets_no_offline_variable_it_cannot_honour():
    """HF_HUB_OFFLINE is read by huggingface_hub once, at import; the CLI must not pretend to set it."""
    src = open(cli.__file__).read()
    assert "os.environ" not in src
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    code = ("import sys; from latentprobe import cli; import huggingface_hub.constants as c; "
            "print(c.HF_HUB_OFFLINE)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    env["HF_HUB_OFFLINE"] = "1"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "True"  # set before start, as docs/gotchas.md says, it takes effect


def test_run_and_report_commands_are_listed_with_their_options():
    code, out = _run(["run", "--help"])
    assert code == 0 and all(o in out for o in ("--out", "--overwrite", "--no-report"))
    code, out = _run(["--help"])
    assert code == 0 and "run" in out and "report" in out


@pytest.mark.parametrize("args, fragment", [
    (["run", "missing.toml", "--out", "x"], "missing.toml: no such study file"),
    (["report", "not-a-study"], "not-a-study holds no study.json"),
])
def test_study_errors_are_one_line_and_exit_2(args, fragment, tmp_path):
    code, out = _run([a if not a.startswith(("missing", "not-a")) else str(tmp_path / a) for a in args])
    lines = out.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("latentprobe: error: StudyError:"), out
    assert fragment in lines[0]


def test_run_without_out_is_a_usage_error(tmp_path):
    code, out = _run(["run", str(tmp_path / "s.toml")])
    assert code == 2 and "Missing option '--out'" in out
