"""Tests for latentprobe.callables: what a callable's fingerprint reads (globals, helpers, state), what it
leaves to the libraries, what it cannot read, and that it is the same in every process."""

from __future__ import annotations

import functools
import importlib
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from latentprobe.callables import is_user_code
from latentprobe.errors import FingerprintWarning
from latentprobe.fingerprint import callable_fingerprint as cf

MODULE = '''
import logging
from typing import Mapping

import numpy as np
import torch

import {cfg}

log = logging.getLogger(__name__)
WEIGHTS = np.arange(6.0)
TENSOR = torch.ones(3)
TAGS = {{"b", "a", "c"}}
TABLE = {{2: "two", 1: "one"}}
BIG = list(range(500))


def even(n):
    return n == 0 or odd(n - 1)


def odd(n):
    return n != 0 and even(n - 1)


def uses_all(z, step, example):
    log.debug("called")
    if isinstance(z, Mapping) or even(3):
        return z
    return z * WEIGHTS.sum() * TENSOR.sum() * len(TAGS) * len(TABLE) * len(BIG) + {cfg}.SCALE + np.mean(z)


def tagged(word):
    return word in {{"alpha", "beta", "gamma", "delta"}}


class Gain:
    __slots__ = ("k",)

    def __init__(self, k):
        self.k = k

    def scale(self, z):
        return z * self.k
'''


@pytest.fixture
def mod(tmp_path, monkeypatch):
    name = f"callables_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}_cfg.py").write_text("SCALE = 1.5\nOTHER = 0\n")
    (tmp_path / f"{name}.py").write_text(MODULE.format(cfg=f"{name}_cfg"))
    monkeypatch.syspath_prepend(str(tmp_path))

    def load(cfg_text=None):
        if cfg_text is not None:
            (tmp_path / f"{name}_cfg.py").write_text(cfg_text)
        for m in (name, f"{name}_cfg"):
            sys.modules.pop(m, None)
        importlib.invalidate_caches()
        return importlib.import_module(name)

    yield load
    for m in (name, f"{name}_cfg"):
        sys.modules.pop(m, None)


def test_globals_helpers_and_module_attributes_are_read(mod):
    m = mod()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FingerprintWarning)  # a logger, typing, numpy: all readable
        fp = cf(m.uses_all)
    g = fp["globals"]
    assert g["WEIGHTS"]["array"] == [6] and g["TENSOR"]["tensor"] == [3] and g["np"] == {"module": "numpy"}
    assert g["TAGS"] == ["a", "b", "c"] and g["TABLE"] == {"pairs": [[1, "one"], [2, "two"]]}
    assert g["BIG"]["items"] == 500 and len(g["BIG"]["sha256"]) == 16
    assert g[next(k for k in g if k.endswith("_cfg"))]["attrs"] == {"SCALE": "1.5"}  # only what it reads
    assert g["log"]["class"] == "logging.Logger" and g["log"]["reduce"][0] == [m.__name__]
    # mutual recursion is read once and cut: even -> odd -> even
    assert g["even"]["globals"]["odd"]["globals"]["even"] == {"ref": f"{m.__name__}.even"}
    assert cf(mod().uses_all) == fp  # imported again: the same
    assert cf(mod("SCALE = 1.5\nOTHER = 1\n").uses_all) == fp  # an attribute it does not read
    assert cf(mod("SCALE = 2.5\nOTHER = 0\n").uses_all) != fp
    m.WEIGHTS[0] = 1.0  # a global array changed in place
    assert cf(m.uses_all)["globals"]["WEIGHTS"] != g["WEIGHTS"]


def test_library_functions_are_named_not_read():
    fp = cf(json.dumps)  # Python code of the standard library: its own code, not what it reads
    assert fp["name"] == "json.dumps" and "globals" not in fp and fp["code"].startswith("py3.")
    assert cf(np.mean) == {"name": "numpy.mean", "source": None}  # compiled: named
    assert cf(np.tanh)["name"] == "numpy.ufunc:tanh" != cf(np.sin)["name"]
    assert not is_user_code(json.dumps) and not is_user_code(cf)
    assert is_user_code(test_library_functions_are_named_not_read)


def test_objects_partials_and_bound_methods_are_read_with_their_state(mod):
    m = mod()
    assert cf(m.Gain(2.0).scale)["self"]["attrs"] == {"k": "2.0"}  # __slots__
    assert cf(m.Gain(2.0).scale) != cf(m.Gain(3.0).scale)
    p = cf(functools.partial(m.Gain(2.0).scale, torch.ones(2)))
    assert p["name"] == "functools.partial" and p["args"][0]["tensor"] == [2] and p["partial"]["self"]
    layer = torch.nn.Linear(2, 2)
    layer.gain = 3  # a module: its weights and its plain attributes
    assert cf(layer)["state"] == {"gain": 3, "in_features": 2, "out_features": 2}
    assert cf(layer)["weights"].startswith("sha256:")


def test_set_constants_and_globals_do_not_depend_on_the_hash_seed(mod, tmp_path):
    m = mod()
    code = (f"import sys, json; sys.path.insert(0, {str(tmp_path)!r}); import {m.__name__} as m; "
            "from latentprobe.fingerprint import callable_fingerprint as cf; "
            "print(json.dumps([cf(m.tagged), cf(m.uses_all)], sort_keys=True))")
    outs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": os.getcwd()}
        res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        outs.add(res.stdout)
    assert len(outs) == 1
    assert json.loads(outs.pop())[0] == cf(m.tagged)


def test_what_cannot_be_read_is_named_and_refused_in_another_process():
    import threading

    lock = threading.Lock()

    def guarded(z):
        with lock:
            return z

    with pytest.warns(FingerprintWarning, match=r"guarded \(closure lock\): a lock object, which cannot be read"):
        first = cf(guarded, what="intervention")
    assert first["values"]["closure"]["lock"] == {"unreadable": "lock"}
    assert len(first["needs_version"]) == 1
    with pytest.warns(FingerprintWarning):
        assert cf(guarded) == first  # the same lock, in the same process

    lock = threading.Lock()  # what a new process would build: another lock, which may behave otherwise
    with pytest.warns(FingerprintWarning):
        again = cf(guarded)
    assert {k for k in again if again[k] != first[k]} == {"needs_version"}  # only the token differs
    with pytest.warns(FingerprintWarning, match="partial args"):
        assert cf(functools.partial(max, threading.Lock()))["needs_version"]


def test_large_plain_containers_are_hashed_whole_without_a_version():
    vocab = {f"w{i}": i for i in range(100_000)}

    def lookup(word):
        return vocab.get(word, -1)

    with warnings.catch_warnings():
        warnings.simplefilter("error", FingerprintWarning)
        fp = cf(lookup)
    assert fp["values"]["closure"]["vocab"]["items"] == 100_000
    vocab["w7"] = 8
    assert cf(lookup)["values"]["closure"]["vocab"] != fp["values"]["closure"]["vocab"]
