"""A study whose custom scorer (named by import string) reads something else is not resumed: an edited module
global, an edited helper and another object state are each refused with the change named; an unchanged
module resumes; a scorer that reads what cannot be fingerprinted resumes only with a version."""

from __future__ import annotations

import importlib
import sys

import pytest

from latentprobe.errors import FingerprintWarning, StudyError
from latentprobe.study import run_study

PLUGIN = '''
import threading

PREFIX = 1
LOCK = threading.Lock()


def _head(text, n):
    return str(text)[:n]


class Loose:
    """Correct when the first PREFIX characters agree (case-insensitive when fold)."""

    def __init__(self, fold):
        self.fold = fold

    def __call__(self, answer, gold, example=None):
        a, g = _head(answer, PREFIX), _head(gold, PREFIX)
        return bool(answer) and (a.lower() == g.lower() if self.fold else a == g)


SCORER = Loose(fold=False)


def guarded(answer, gold, example=None):
    with LOCK:
        return str(answer) == str(gold)
'''

STUDY = """
[study]
name = "callables"
[model]
source = "toy:mediated"
[data]
benchmark = "toy"
n = 8
[generation]
max_new_tokens = 8
n_boot = 20
scorer = "{mod}:{scorer}"
[analyses.z_to_y]
interventions = ["zero"]
modes = ["redecode"]
"""


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    name = f"study_callables_{tmp_path.name.replace('-', '_')}"
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(text):
        (tmp_path / f"{name}.py").write_text(text)
        sys.modules.pop(name, None)  # imported afresh, as by a new process
        importlib.invalidate_caches()

    write(PLUGIN)
    yield name, write
    sys.modules.pop(name, None)


def _run(path, out):
    return run_study(path, out, report=False, progress=False)


@pytest.mark.slow
def test_an_edited_global_helper_or_scorer_state_is_refused(tmp_path, plugin):
    name, write = plugin
    path = tmp_path / "s.toml"
    path.write_text(STUDY.format(mod=name, scorer="SCORER"))
    out = tmp_path / "out"
    assert _run(path, out).ran == ("z_to_y",)
    write(PLUGIN)
    assert _run(path, out).skipped == ("z_to_y",)  # the same module, imported again: resumed
    key = f"'sources.{name}:SCORER"
    for old, new, changed in [("PREFIX = 1", "PREFIX = 2", ".class.members.__call__.globals.PREFIX': stored 1, now 2"),
                              ("[:n]", "[:n + 1]", ".class.members.__call__.globals._head.code'"),
                              ("Loose(fold=False)", "Loose(fold=True)", ".state.attrs.fold': stored False, now True")]:
        write(PLUGIN.replace(old, new))
        with pytest.raises(StudyError, match="another study configuration") as info:
            _run(path, out)
        assert key + changed in str(info.value), str(info.value)
    write(PLUGIN)
    assert _run(path, out).skipped == ("z_to_y",)


@pytest.mark.slow
def test_a_scorer_that_cannot_be_read_resumes_only_with_a_version(tmp_path, plugin):
    name, write = plugin
    path = tmp_path / "s.toml"
    path.write_text(STUDY.format(mod=name, scorer="guarded"))
    with pytest.warns(FingerprintWarning, match="guarded"):
        _run(path, tmp_path / "a")
    write(PLUGIN)  # a new process: another lock
    refused = pytest.raises(StudyError, match=rf"'sources\.{name}:guarded\.needs_version'")
    with pytest.warns(FingerprintWarning), refused:
        _run(path, tmp_path / "a")
    versioned = PLUGIN + '\nimport latentprobe\nguarded = latentprobe.versioned(guarded, version="1")\n'
    write(versioned)
    assert _run(path, tmp_path / "b").ran == ("z_to_y",)
    write(versioned)
    assert _run(path, tmp_path / "b").skipped == ("z_to_y",)
