"""The ``Examples`` sections of the package run and give what they show (toy-model examples included)."""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil

import pytest
from threadpoolctl import threadpool_limits

import latentprobe.causal
import latentprobe.geometry
import latentprobe.probing

PACKAGES = (latentprobe.probing, latentprobe.geometry, latentprobe.causal)
# single modules whose examples run too (viz, schema and scoring run theirs in their own tests)
SINGLE = ("latentprobe.interventions", "latentprobe.trace", "latentprobe.seeding", "latentprobe.engine.protocol",
          "latentprobe.engine.sampling", "latentprobe.spec", "latentprobe.images", "latentprobe.engine.detect")
# causal functions whose examples run the toy: the analyses and the suite; summaries take their rows
EXAMPLED = {latentprobe.causal: ("x_to_z", "z_to_y", "decompose", "default_interventions")}

MODULES = sorted(
    {name
     for package in PACKAGES
     for name in [package.__name__] + [m.name for m in pkgutil.iter_modules(package.__path__, package.__name__ + ".")]}
    | set(SINGLE)
)

FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    tests = [t for t in finder.find(module, name) if t.examples]
    with threadpool_limits(limits=1, user_api="blas"):  # small examples: threads only contend on 2 cores
        for test in tests:
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed (see the captured output)"


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_every_public_function_has_an_example(package):
    names = EXAMPLED.get(package, package.__all__)
    missing = [
        name
        for name in names
        if (inspect.isfunction(getattr(package, name)) or name == "LinearProbe")
        and ">>>" not in (inspect.getdoc(getattr(package, name)) or "")
    ]
    assert not missing, f"public functions of {package.__name__} without a runnable Examples section: {missing}"
