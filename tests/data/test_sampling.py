"""sample(): proportional largest-remainder strata, every stratum represented, seeded, order-free, recorded."""

import random

import pytest

from latentprobe.data import DataError, Example, Sample, allocate, load_benchmark, sample

from . import builders as B


def _pool(sizes: dict[str, int], source: str = "d") -> list[Example]:
    return [Example(f"{source}/{cat}-{i}", f"q{i}", "A", category=cat, source=source, attributes={"k": i % 3})
            for cat, n in sizes.items() for i in range(n)]


def test_allocation_is_proportional_with_largest_remainders():
    assert allocate({"a": 50, "b": 30, "c": 20}, 10) == {"a": 5, "b": 3, "c": 2}
    # exact shares 4.2 / 3.5 / 2.3 -> floors 4, 3, 2 and the one left to the largest remainder (b)
    assert allocate({"a": 42, "b": 35, "c": 23}, 10) == {"a": 4, "b": 4, "c": 2}
    # equal remainders: the larger stratum first, then the name
    assert allocate({"a": 1, "b": 1, "c": 1, "d": 1}, 2) == {"a": 1, "b": 1, "c": 0, "d": 0}
    assert sum(allocate({"x": 7, "y": 11, "z": 3}, 13).values()) == 13


def test_every_stratum_gets_one_when_n_allows():
    alloc = allocate({"big": 97, "small": 2, "tiny": 1}, 5)
    assert alloc == {"big": 3, "small": 1, "tiny": 1}
    s = sample(_pool({"big": 97, "small": 2, "tiny": 1}), 5, seed=1)
    assert sorted(ex.category for ex in s.examples).count("tiny") == 1
    assert dict(s.allocation) == {"big": (97, 3), "small": (2, 1), "tiny": (1, 1)}
    # fewer draws than strata: some strata get none, the total is still n
    assert sum(allocate({str(i): 10 for i in range(5)}, 3).values()) == 3


def test_deterministic_for_a_seed_and_independent_of_input_order():
    pool = _pool({"a": 20, "b": 13, "c": 7})
    first = sample(pool, 12, seed=7)
    shuffled = pool[:]
    random.Random(0).shuffle(shuffled)
    again = sample(shuffled, 12, seed=7)
    assert first.ids == again.ids and len(first.ids) == 12 == first.n
    assert sample(pool, 12, seed=8).ids != first.ids
    assert [ex.example_id for ex in first.examples] == list(first.ids)
    # strata in name order, each stratum's count as allocated
    cats = [ex.category for ex in first.examples]
    assert cats == sorted(cats) and {c: cats.count(c) for c in "abc"} == {"a": 6, "b": 4, "c": 2}


def test_nested_samples_are_stable_when_n_grows_within_a_stratum():
    pool = _pool({"a": 30})
    assert sample(pool, 5, seed=2).ids == sample(pool, 9, seed=2).ids[:5]


def test_by_source_pools_benchmarks(tmp_path):
    pool = _pool({"x": 40}, "bench1") + _pool({"y": 20}, "bench2") + _pool({"z": 40}, "bench3")
    s = sample(pool, 10, by="source", seed=0)
    assert dict(s.allocation) == {"bench1": (40, 4), "bench2": (20, 2), "bench3": (40, 4)}
    B.vstar(tmp_path / "v")
    B.prosqa(tmp_path / "p")
    real = load_benchmark("vstar", tmp_path / "v") + load_benchmark("prosqa", tmp_path / "p")
    r = sample(real, 2, by="source", seed=0)
    assert sorted(ex.source for ex in r.examples) == ["prosqa", "vstar"]
    # by an attribute key, missing values form their own stratum; None: one stratum
    assert set(sample(pool, 6, by="k").allocation) == {"0", "1", "2"}
    assert set(sample(real, 3, by="n_steps").allocation) == {"<none>", "1", "2"}
    assert dict(sample(pool, 4, by=None).allocation) == {"all": (100, 4)}


def test_sample_records_ids_and_frame():
    pool = _pool({"a": 4, "b": 4})
    s = sample(pool, 4, seed=3)
    frame = s.to_frame()
    assert list(frame.columns) == ["example_id", "source", "category", "stratum", "order", "by", "seed"]
    assert tuple(frame["example_id"]) == s.ids and list(frame["order"]) == [0, 1, 2, 3]
    assert set(frame["by"]) == {"category"} and set(frame["seed"]) == {3}
    assert isinstance(s, Sample) and len(s) == 4 and s.by == "category" and s.seed == 3
    assert sample(s, 2, seed=3).n == 2  # a Sample can be subsampled


@pytest.mark.parametrize("kwargs, match", [
    ({"n": 0}, r"sample\(\): n=0: use an integer from 1 to 8 \(the 8 examples given\)"),
    ({"n": 9}, r"n=9: use an integer from 1 to 8"),
    ({"n": 2.0}, r"n=2\.0"),
    ({"n": True}, r"n=True"),
    ({"n": 2, "seed": "0"}, r"seed='0': use an integer"),
    ({"n": 2, "by": 3}, r"by=3; use 'category'"),
    ({"n": 2, "by": "colour"}, r"by='colour' is neither 'category' nor 'source' nor an attribute"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(DataError, match=match):
        sample(_pool({"a": 4, "b": 4}), **kwargs)


def test_bad_pools():
    with pytest.raises(DataError, match="takes Example records"):
        sample([{"question": "q"}], 1)
    dup = _pool({"a": 2}) + _pool({"a": 1})
    with pytest.raises(DataError, match=r"example id 'd/a-0' occurs twice"):
        sample(dup, 1)
    with pytest.raises(DataError, match=r"sample\(\): no examples given"):
        sample([], 1)
