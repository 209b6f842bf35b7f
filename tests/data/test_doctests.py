"""The ``Examples`` sections of ``latentprobe.data`` run and give what they show."""

import doctest
import importlib

import pytest

MODULES = ("latentprobe.data.images", "latentprobe.data.records", "latentprobe.data.sampling",
           "latentprobe.data.inputs", "latentprobe.data.registry", "latentprobe.data.vlmeval",
           "latentprobe.data.prompts")


@pytest.mark.parametrize("name", MODULES)
def test_data_docstring_examples_run(name):
    module = importlib.import_module(name)
    tests = [t for t in doctest.DocTestFinder().find(module, name) if t.examples]
    assert tests, f"{name} has no examples"
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    for t in tests:
        runner.run(t)
    assert runner.failures == 0
