"""The open benchmark registry: register_benchmark (function and decorator), its checks, and the
``latentprobe.benchmarks`` entry-point group (read lazily, each loader imported on first use)."""

from __future__ import annotations

import warnings
from importlib.metadata import EntryPoint

import pytest

import latentprobe
import latentprobe.data.registry as registry
from latentprobe.data import BENCHMARKS, DataError, Example, list_benchmarks, load_benchmark, register_benchmark
from latentprobe.errors import LatentProbeError, LatentProbeWarning


@pytest.fixture
def clean_registry(monkeypatch):
    """A registry holding the built-ins only, restored after the test."""
    monkeypatch.setattr(registry, "_LOADERS", dict(registry._LOADERS))
    monkeypatch.setattr(registry, "_PENDING", {})
    monkeypatch.setattr(registry, "_SCANNED", False)
    return registry


def load_squares(root, *, n=3):
    """A loader outside the package: ``n`` questions, read from nothing (root only names the source)."""
    return [Example(example_id=f"squares/{i}", question=f"what is {i} squared?", gold=str(i * i),
                    category="even" if i % 2 == 0 else "odd", source=f"squares:{root.name}") for i in range(n)]


def test_a_registered_loader_is_read_with_its_options(clean_registry, tmp_path):
    assert register_benchmark("squares", load_squares) is load_squares
    got = load_benchmark("squares", tmp_path / "sq", n=4)
    assert [e.gold for e in got] == ["0", "1", "4", "9"] and got[0].source == "squares:sq"
    assert "squares" in list_benchmarks() and "squares" not in BENCHMARKS
    with pytest.raises(DataError, match=r"benchmark 'squares' takes no option\(s\) \['split'\]; its options are \['n'\]"):
        load_benchmark("squares", tmp_path, split="test")


def test_the_decorator_form_and_the_package_level_name(clean_registry, tmp_path):
    assert latentprobe.register_benchmark is register_benchmark and "register_benchmark" in latentprobe.__all__

    @latentprobe.register_benchmark("cubes")
    def load_cubes(root, *, n=2):
        return [Example(example_id=f"cubes/{i}", question="?", gold=str(i ** 3)) for i in range(n)]

    assert load_cubes.__name__ == "load_cubes"
    assert [e.gold for e in load_benchmark("cubes", tmp_path, n=3)] == ["0", "1", "8"]


def test_duplicates_are_refused_unless_overwrite(clean_registry, tmp_path):
    register_benchmark("squares", load_squares)
    with pytest.raises(DataError, match="'squares' is already registered; pass overwrite=True"):
        register_benchmark("squares", load_squares)
    with pytest.raises(DataError, match="'vstar' is already registered"):
        register_benchmark("vstar", load_squares)
    register_benchmark("vstar", load_squares, overwrite=True)
    assert load_benchmark("vstar", tmp_path, n=1)[0].example_id == "squares/0"


@pytest.mark.parametrize("name, loader, match", [
    ("", load_squares, "non-empty string"),
    (" padded ", load_squares, "without surrounding whitespace"),
    (3, load_squares, "non-empty string"),
    ("toy", load_squares, "'toy' is reserved"),
    ("x", "load_squares", "must be callable, got str"),
    ("x", lambda path: [], r"first parameter must be `root`.*got \(path\)"),
    ("x", lambda root, split: [], r"parameters \['split'\] have no default"),
])
def test_bad_registrations_name_the_problem(clean_registry, name, loader, match):
    with pytest.raises(DataError, match=match) as err:
        register_benchmark(name, loader)
    assert isinstance(err.value, LatentProbeError) and name not in registry._LOADERS


def test_a_loader_returning_something_else_is_refused(clean_registry, tmp_path):
    register_benchmark("bad", lambda root: {"a": 1})
    with pytest.raises(DataError, match="returned dict, not a list of Example"):
        load_benchmark("bad", tmp_path)


def _entry_points(*eps):
    def entry_points(*, group):
        return [e for e in eps if e.group == group]
    return entry_points


def test_entry_points_are_read_on_first_lookup_and_imported_on_first_use(clean_registry, monkeypatch, tmp_path):
    calls = []
    here = f"{__name__}:load_squares"
    fake = [EntryPoint("installed-squares", here, registry.ENTRY_POINT_GROUP),
            EntryPoint("other-group", here, "something.else")]

    def entry_points(*, group):
        calls.append(group)
        return [e for e in fake if e.group == group]

    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    assert calls == []  # nothing read at import or registration of the module
    names = list_benchmarks()
    assert "installed-squares" in names and "other-group" not in names and calls == [registry.ENTRY_POINT_GROUP]
    assert "installed-squares" in registry._PENDING and "installed-squares" not in registry._LOADERS
    assert [e.gold for e in load_benchmark("installed-squares", tmp_path, n=2)] == ["0", "1"]
    assert registry._LOADERS["installed-squares"] is load_squares and list_benchmarks().count("installed-squares") == 1
    list_benchmarks()
    assert calls == [registry.ENTRY_POINT_GROUP]  # scanned once


def test_broken_or_clashing_entry_points(clean_registry, monkeypatch, tmp_path):
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "entry_points", _entry_points(
        EntryPoint("broken", "no_such_package_xyz.loaders:load", registry.ENTRY_POINT_GROUP),
        EntryPoint("vstar", f"{__name__}:load_squares", registry.ENTRY_POINT_GROUP)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = list_benchmarks()
    assert [type(w.message) for w in caught] == [LatentProbeWarning] and "already registered" in str(caught[0].message)
    assert names.count("vstar") == 1 and registry._LOADERS["vstar"] is not load_squares
    with pytest.raises(DataError, match=r"'broken': its entry point 'no_such_package_xyz.loaders:load'.*cannot be "
                                        r"imported \(ModuleNotFoundError"):
        load_benchmark("broken", tmp_path)
    with pytest.raises(DataError, match=r"unknown benchmark 'nope'; use one of \[.*'broken'\]"):
        load_benchmark("nope", tmp_path)
