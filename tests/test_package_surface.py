"""The notebook surface: `import latentprobe as lp` reaches every subpackage as an attribute."""

import importlib
import subprocess
import sys

import pytest

import latentprobe as lp


@pytest.mark.parametrize("name", lp.SUBMODULES)
def test_subpackages_are_attributes(name):
    if importlib.util.find_spec(f"latentprobe.{name}") is None:
        pytest.fail(f"latentprobe.{name} is listed in SUBMODULES but does not exist")
    mod = getattr(lp, name)
    assert mod.__name__ == f"latentprobe.{name}"
    assert name in dir(lp)


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lp.nope  # noqa: B018


def test_import_is_light_and_does_not_load_the_toy():
    code = "import sys, latentprobe; print(any(m.startswith('latentprobe.toy') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_public_names_resolve():
    for name in lp.__all__:
        assert getattr(lp, name) is not None, name
