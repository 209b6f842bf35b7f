"""A resumed sweep whose user callable reads something else is refused, not answered with the stored rows.

The callables live in a module file under ``tmp_path`` that the tests edit between runs, then import
again (a new module object, as a new process would): a module global the callable reads, a helper it
calls, a callable object's state. A callable that reads what cannot be fingerprinted (a lock) is refused
in the next process until it is given a version (:func:`latentprobe.versioned`)."""

from __future__ import annotations

import importlib
import re
import sys
import warnings

import pandas as pd
import pytest

import latentprobe
from latentprobe.causal import z_to_y
from latentprobe.errors import FingerprintWarning
from latentprobe.sweep import SweepConfigMismatch

from .helpers import MAX_NEW, NB, force_open, runner

PLUGIN = '''
import threading

SCALE = 2.0
LOCK = threading.Lock()


def _factor():
    return SCALE


def _bump(z):
    return z + 1.0


def scale(z, step, example):
    return z * _factor()


def shift(z, step, example):
    return _bump(z)


class Gain:
    def __init__(self, k):
        self.k = k

    def __call__(self, z, step, example):
        return z * self.k


GAIN = Gain(3.0)


def guarded(z, step, example):
    with LOCK:
        return z * 0.5
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    name = f"resume_callables_{tmp_path.name.replace('-', '_')}"
    path = tmp_path / f"{name}.py"
    path.write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))

    def load(text=None):
        """Write the module (``text``, default unchanged) and import it afresh."""
        if text is not None:
            path.write_text(text)
        sys.modules.pop(name, None)
        importlib.invalidate_caches()
        return importlib.import_module(name)

    yield load
    sys.modules.pop(name, None)


@pytest.fixture
def setup(model, tok, inputs):
    r = runner(model, tok, "free")
    trace = r.run(**inputs.run_kwargs(), max_new_tokens=MAX_NEW, logits_processor=force_open(tok), progress=False)
    kw = dict(modes=("replay",), gold=inputs.gold, n_boot=NB, chunk_size=4, logits_processor=force_open(tok),
              progress=False)
    return r, trace, kw


def _ivs(mod):
    return {"scale": mod.scale, "shift": mod.shift, "gain": mod.GAIN}


@pytest.mark.parametrize("edit, key", [
    (("SCALE = 2.0", "SCALE = 2.5"),
     "'interventions.scale.code.globals._factor.globals.SCALE': stored '2.0', now '2.5'"),
    (("return z + 1.0", "return z - 1.0"), "'interventions.shift.code.globals._bump.code': stored 'py3."),
    (("GAIN = Gain(3.0)", "GAIN = Gain(4.0)"), "'interventions.gain.code.state.attrs.k': stored '3.0', now '4.0'"),
])
def test_an_edited_global_helper_or_object_state_is_refused_on_resume(setup, plugin, tmp_path, edit, key):
    r, trace, kw = setup
    first = z_to_y(r, trace, _ivs(plugin()), out_dir=tmp_path / "out", **kw)
    again = z_to_y(r, trace, _ivs(plugin()), out_dir=tmp_path / "out", **kw)  # imported afresh, unchanged: resumes
    pd.testing.assert_frame_equal(again.rows, first.rows)
    edited = plugin(PLUGIN.replace(*edit))
    with pytest.raises(SweepConfigMismatch) as info:
        z_to_y(r, trace, _ivs(edited), out_dir=tmp_path / "out", **kw)
    msg = str(info.value)
    assert key in msg, msg
    changed = key.split(".")[1]
    assert set(re.findall(r"'interventions\.(\w+)\.", msg)) == {changed}  # only what changed is named
    # computed afresh, the edited intervention's rows differ from the stored ones: resuming would mix them
    fresh = z_to_y(r, trace, _ivs(edited), out_dir=None, **kw).rows
    cols = ["example_id", "intervention", "gold_logprob"]
    old, new = (f[f.intervention == changed][cols].reset_index(drop=True) for f in (first.rows, fresh))
    assert len(old) == len(new) > 0 and not old.equals(new)
    untouched = fresh[fresh.intervention != changed][cols].reset_index(drop=True)
    assert untouched.equals(first.rows[first.rows.intervention != changed][cols].reset_index(drop=True))


def test_a_callable_object_with_other_state_is_refused(setup, plugin, tmp_path):
    r, trace, kw = setup
    mod = plugin()
    z_to_y(r, trace, {"gain": mod.Gain(2.0)}, out_dir=tmp_path / "out", **kw)
    z_to_y(r, trace, {"gain": mod.Gain(2.0)}, out_dir=tmp_path / "out", **kw)  # another object, same state
    with pytest.raises(SweepConfigMismatch, match=r"'interventions\.gain\.code\.state\.attrs\.k': stored '2\.0', "
                                                  r"now '-2\.0'"):
        z_to_y(r, trace, {"gain": mod.Gain(-2.0)}, out_dir=tmp_path / "out", **kw)


def test_what_cannot_be_read_needs_a_version_to_resume_in_another_process(setup, plugin, tmp_path):
    r, trace, kw = setup
    with pytest.warns(FingerprintWarning, match=r"guarded \(global LOCK\): a lock object.*versioned\(fn, version="):
        first = z_to_y(r, trace, {"half": plugin().guarded}, out_dir=tmp_path / "a", **kw)
    # the module imported again (as in a new process): a new lock, which may not be the same, is refused
    with pytest.warns(FingerprintWarning), pytest.raises(SweepConfigMismatch) as info:
        z_to_y(r, trace, {"half": plugin().guarded}, out_dir=tmp_path / "a", **kw)
    assert "'interventions.half.code.needs_version'" in str(info.value)
    # with a version, nothing is read: no warning, and a new process resumes
    with warnings.catch_warnings():
        warnings.simplefilter("error", FingerprintWarning)
        z_to_y(r, trace, {"half": latentprobe.versioned(plugin().guarded, version="1")}, out_dir=tmp_path / "b", **kw)
        again = z_to_y(r, trace, {"half": latentprobe.versioned(plugin().guarded, version="1")},
                       out_dir=tmp_path / "b", **kw)
    pd.testing.assert_frame_equal(again.rows, first.rows)
    with pytest.raises(SweepConfigMismatch, match=r"'interventions\.half\.code\.version': stored '1', now '2'"):
        z_to_y(r, trace, {"half": latentprobe.versioned(plugin().guarded, version="2")}, out_dir=tmp_path / "b", **kw)
