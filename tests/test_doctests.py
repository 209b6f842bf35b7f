"""The one doctest harness: every module of the package is imported and its ``Examples`` sections run
(``ELLIPSIS`` and ``NORMALIZE_WHITESPACE``), one test per module. Examples that need files, weights or
a GPU carry ``+SKIP`` with their reason; every other example runs on the shipped toys."""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil

import pytest
from threadpoolctl import threadpool_limits

import latentprobe
import latentprobe.causal
import latentprobe.geometry
import latentprobe.probing

#: Modules never imported by the harness: running them has effects (the command-line entry point).
NOT_IMPORTED = ("latentprobe.__main__",)

MODULES = sorted(["latentprobe"] + [m.name for m in pkgutil.walk_packages(latentprobe.__path__, "latentprobe.")
                                    if m.name not in NOT_IMPORTED])

FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS

# causal functions whose examples run the toy: the analyses and the suite; summaries take their rows
PACKAGES = (latentprobe.probing, latentprobe.geometry, latentprobe.causal)
EXAMPLED = {latentprobe.causal: ("x_to_z", "z_to_y", "decompose", "default_interventions", "patch")}


def _examples(name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(name)
    return [t for t in doctest.DocTestFinder().find(module, name) if t.examples]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    with threadpool_limits(limits=1, user_api="blas"):  # small examples: threads only contend on 2 cores
        for test in _examples(name):
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed (see the captured output)"


def test_the_harness_walks_the_whole_package():
    assert {"latentprobe.data.registry", "latentprobe.engine.sampling", "latentprobe.viz.causal",
            "latentprobe.study.config", "latentprobe.toy.shapes", "latentprobe.report.page"} <= set(MODULES)
    assert sum(bool(_examples(n)) for n in MODULES) >= 49  # modules with examples today; add, never lose


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
