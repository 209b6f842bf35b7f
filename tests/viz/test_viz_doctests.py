"""The Examples sections of the viz modules and the schema run."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["latentprobe.schema", "latentprobe.viz.geometry", "latentprobe.viz.probing",
                                  "latentprobe.viz.causal"])
def test_module_examples_pass(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
