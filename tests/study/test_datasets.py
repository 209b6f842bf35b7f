"""The study's data: the toy path, the sampler, field lookup, and the real-benchmark path's calls into
``latentprobe.data`` (checked against the documented signatures with stand-ins)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

import latentprobe.data as data_pkg
from latentprobe.errors import StudyError
from latentprobe.perturbations import InputSet
from latentprobe.study import build_model, load_data, load_study
from latentprobe.analyses.readouts import field_values
from latentprobe.study.datasets import stratified_ids


def test_stratified_ids_is_proportional_deterministic_and_in_order():
    ids = [f"e{i}" for i in range(30)]
    strata = ["a"] * 20 + ["b"] * 10
    got = stratified_ids(ids, strata, 9, seed=3)
    assert got == stratified_ids(ids, strata, 9, seed=3) and got == sorted(got, key=ids.index)
    assert sum(g in ids[:20] for g in got) == 6 and len(got) == 9
    assert stratified_ids(ids, None, 50, seed=0) == ids
    assert stratified_ids(ids, strata, 9, seed=4) != got


def test_toy_data_and_fields(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[study]\nname="t"\n[model]\nsource="toy:mediated"\n[data]\nbenchmark="toy"\nn=12\n'
                    '[analyses.collapse]\n')
    study = load_study(path)
    model = build_model(study.model)
    d = load_data(study, model)
    assert len(d.inputs) == 12 and list(d.sample.example_id) == list(d.inputs.example_ids)
    assert set(d.sample.columns) == {"example_id", "benchmark", "source", "category", "gold"}
    assert len(field_values(d.inputs, "category")) == 12
    with pytest.raises(StudyError, match="no example has the field 'nope'; choose from"):
        field_values(d.inputs, "nope")


@dataclass(frozen=True)
class _Ex:
    example_id: str
    question: str
    gold: str | None
    category: str | None = None
    source: str = ""
    options: tuple[str, ...] | None = None
    attributes: dict = field(default_factory=dict)


@dataclass(frozen=True)
class _Sample:
    examples: list


def test_real_benchmarks_call_the_data_interface(tmp_path, monkeypatch):
    calls: list[tuple[str, Any]] = []

    def load_benchmark(name, root, **options):
        calls.append(("load", (name, root, options)))
        return [_Ex(f"{name}-{i}", f"q{i}", "A", category="c", source=name) for i in range(6)]

    def sample(examples, n, *, by="category", seed=0):
        calls.append(("sample", (len(examples), n, by, seed)))
        return _Sample(list(examples)[:n])

    def to_input_set(examples, *, prompt=None, messages=None, max_pixels=None, runner=None):
        calls.append(("inputs", (len(examples), prompt, messages, max_pixels, runner)))
        return InputSet(example_ids=tuple(e.example_id for e in examples), prompts=tuple(e.question for e in examples),
                        gold=tuple(e.gold for e in examples),
                        meta=tuple({"category": e.category, "source": e.source} for e in examples))

    for name, fn in (("load_benchmark", load_benchmark), ("sample", sample), ("to_input_set", to_input_set)):
        monkeypatch.setattr(data_pkg, name, fn, raising=False)
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
    path = tmp_path / "s.toml"
    path.write_text('[study]\nname="r"\nseed=5\n[model]\nsource="x/y"\npreset="monet"\n'
                    '[[data]]\nbenchmark="vstar"\nroot="a"\nn=4\n[[data]]\nbenchmark="hrbench4k"\nroot="b"\n'
                    'options={split="test"}\n[sample]\nn=7\nby="source"\n[prompt]\ntemplate="{question}\\n{options}"\n'
                    'max_pixels=1000\n[analyses.collapse]\n')
    study = load_study(path)
    d = load_data(study, model=None)
    assert calls[0] == ("load", ("vstar", str((tmp_path / "a").resolve()), {}))
    assert calls[1] == ("sample", (6, 4, "category", 5))
    assert calls[2] == ("load", ("hrbench4k", str((tmp_path / "b").resolve()), {"split": "test"}))
    assert calls[3] == ("sample", (10, 7, "source", 5))
    assert calls[4] == ("inputs", (7, "{question}\n{options}", None, 1000, None))
    assert list(d.sample.benchmark) == ["vstar"] * 4 + ["hrbench4k"] * 3
    assert np.array_equal(field_values(d.inputs, "source"), np.array(["vstar"] * 4 + ["hrbench4k"] * 3))


def test_a_list_valued_field_is_refused_as_a_probe_target():
    inputs = InputSet(example_ids=("a", "b"), prompts=("p", "q"),
                      meta=({"attributes": {"steps": ["x", "y"], "level": 1}}, {"attributes": {"steps": ["z"], "level": 2}}))
    assert field_values(inputs, "level").tolist() == ["1", "2"]
    with pytest.raises(StudyError, match=r"s\.toml: \[analyses\.probes\]: the field 'steps' holds a list \(example "
                                         r"'a': \['x', 'y'\]\), not one label per example"):
        field_values(inputs, "steps", where="s.toml: [analyses.probes]: ")
