"""Tests for latentprobe.versioning: what an explicit version stands for, and how it is given."""

from __future__ import annotations

import functools

import pytest

import latentprobe
from latentprobe.errors import InputError
from latentprobe.fingerprint import callable_fingerprint as cf
from latentprobe.versioning import VERSION_ATTR, Versioned, version_of, versioned


def test_a_function_gets_the_attribute_and_its_fingerprint_is_the_version():
    def halve(z):
        return z / 2

    assert versioned(halve, version=3) is halve and getattr(halve, VERSION_ATTR) == "3"
    assert cf(halve) == {"name": f"{__name__}.{halve.__qualname__}", "version": "3"}

    @latentprobe.versioned(version="2")
    def double(z):
        return z * 2

    assert double(2) == 4 and version_of(double) == "2"


def test_a_class_version_covers_its_code_and_its_instances_state_is_still_read():
    @versioned(version="1")
    class Gain:
        def __init__(self, k):
            self.k = k

        def __call__(self, z):
            return z * self.k

    a, b = cf(Gain(2)), cf(Gain(3))
    assert a["class"] == {"name": f"{__name__}.{Gain.__qualname__}", "version": "1"}
    assert a != b and (a["state"], b["state"]) == ({"attrs": {"k": 2}}, {"attrs": {"k": 3}})

    class Sub(Gain):  # a subclass is read (the version is its base's)
        def __call__(self, z):
            return -z

    assert cf(Sub(2))["class"]["bases"] == [a["class"]] and "members" in cf(Sub(2))["class"]


def test_an_instance_version_covers_the_whole_object():
    class Counter:
        def __init__(self, limit=None):
            self.limit, self.calls = limit, 0
            self.__latentprobe_version__ = "1"

        def __call__(self, z):
            self.calls += 1
            return z

    assert cf(Counter(limit=3)) == cf(Counter()) == {"name": f"{__name__}.{Counter.__qualname__}", "version": "1"}
    wrapped = versioned(functools.partial(max, 0), version="7")
    assert isinstance(wrapped, Versioned) and wrapped(-3) == 0 and not hasattr(wrapped, "__name__")
    assert cf(wrapped) == {"name": "functools.partial", "version": "7"}
    assert versioned(max, version="x").__qualname__ == "max"


@pytest.mark.parametrize("fn, version, match", [(max, "", "non-empty"), (max, None, "non-empty"),
                                                (max, True, "version"), (3, "1", "not callable")])
def test_bad_versions_are_refused(fn, version, match):
    with pytest.raises(InputError, match=match):
        versioned(fn, version=version)
