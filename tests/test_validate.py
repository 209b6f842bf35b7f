"""latentprobe.validate: the one module of argument checks (bounds, bools refused, numpy scalars accepted,
the error class chosen by the caller, the house message), and the package's use of it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import latentprobe
from latentprobe import validate as v
from latentprobe.errors import InputError, LatentProbeError, ProbeError, StatsInputError


@pytest.mark.parametrize("value, ok", [(1, True), (np.int64(7), True), (0, False), (-3, False), (True, False),
                                       (np.bool_(True), False), (1.0, False), ("2", False), (None, False)])
def test_positive_int(value, ok):
    if ok:
        out = v.positive_int(value, "n")
        assert out == value and type(out) is int
    else:
        with pytest.raises(InputError, match=re.escape(f"n={value!r}: use an integer >= 1.")):
            v.positive_int(value, "n")


def test_bounds_none_where_hint_and_error_class():
    assert v.non_negative_int(0, "n_boot") == 0 and v.positive_int(None, "limit", allow_none=True) is None
    assert v.integer(5, "k", minimum=1, maximum=5) == 5
    with pytest.raises(ProbeError, match=r"^LinearProbe: inner_cv=1: use an integer >= 2 \(folds\)\.$") as err:
        v.integer(1, "inner_cv", minimum=2, where="LinearProbe", hint="folds", error=ProbeError)
    assert isinstance(err.value, LatentProbeError)
    with pytest.raises(InputError, match=r"^sample\(\): n=9: use an integer from 1 to 8\.$"):
        v.integer(9, "n", minimum=1, maximum=8, where="sample()")
    with pytest.raises(InputError, match=r"top_k=0: use an integer >= 1, or None \(None keeps every token\)\."):
        v.positive_int(0, "top_k", allow_none=True, hint="None keeps every token")
    with pytest.raises(InputError, match=r"seed=1\.5: use an integer\.$"):
        v.integer(1.5, "seed")


@pytest.mark.parametrize("value, ok", [(0.5, True), (np.float32(0.9), True), (0.0, False), (1.0, False),
                                       (True, False), (float("nan"), False), ("0.5", False)])
def test_probability(value, ok):
    if ok:
        assert v.probability(value, "p") == pytest.approx(float(value))
    else:
        with pytest.raises(StatsInputError, match="strictly between 0 and 1"):
            v.probability(value, "p", error=StatsInputError)


def test_number_and_one_of():
    assert v.number(np.float64(2.5), "x") == 2.5 and v.number(0, "tol", minimum=0) == 0.0
    for bad in (float("inf"), float("nan"), True, "1", -0.1):
        with pytest.raises(InputError, match="use a finite number >= 0"):
            v.number(bad, "tol", minimum=0)
    with pytest.raises(InputError, match=r"scale=0: use a finite number > 0\."):
        v.number(0, "scale", minimum=0, exclusive_minimum=True)
    assert v.one_of("b", "kind", ("a", "b")) == "b"
    with pytest.raises(InputError, match=r"kind=\['a'\]: use one of 'a', 'b'\."):
        v.one_of(["a"], "kind", ("a", "b"))


def test_array_checks_moved_from_stats():
    assert v.as_1d_float([1, 2], "x").dtype == np.float64 and v.as_1d_bool([0, 1], "c").tolist() == [False, True]
    with pytest.raises(StatsInputError, match="NaN"):
        v.as_1d_float([1, np.nan], "x")
    with pytest.raises(StatsInputError, match="lengths a=2, b=3"):
        v.same_length({"a": np.zeros(2), "b": np.zeros(3)})


def test_the_package_checks_integers_through_the_module():
    """No scalar integer argument is checked by hand any more (element checks inside sequences stay)."""
    root = Path(latentprobe.__file__).resolve().parent
    pattern = re.compile(r"if (?:\w+ is not None and \()?(?:not )?isinstance\((?:self\.)?\w+, \(?(?:int|bool)\b.*"
                         r"isinstance\((?:self\.)?\w+, \(?(?:int|bool)\b.*(?:< ?[12]|<= ?0)")
    hits = [f"{p.relative_to(root)}:{i}" for p in root.rglob("*.py") if p.name != "validate.py"
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert hits == []
    assert not (root / "stats" / "_validate.py").exists()
