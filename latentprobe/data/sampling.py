"""Seeded stratified sampling of benchmark examples: :func:`sample` and its record, :class:`Sample`.

Allocation is proportional with largest remainders (Hamilton's method): stratum ``s`` of ``N_s``
examples out of ``N`` gets ``floor(n * N_s / N)`` draws, and the draws left over go to the largest
fractional parts (ties: the larger stratum, then the stratum's name). When ``n`` is at least the
number of strata every stratum gets at least one draw, taken from the strata most over their
exact share. Within a stratum the examples drawn are the first of a permutation keyed by
``(seed, by, stratum)`` (:func:`latentprobe.seeding.numpy_rng`) over the stratum's ids *sorted*:
the sample depends on the seed and on the set of examples, never on their order in the input.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from latentprobe.data.records import Example
from latentprobe.display import Summarized, short_list
from latentprobe.errors import DataError
from latentprobe.seeding import numpy_rng
from latentprobe.validate import integer

__all__ = ["NO_STRATUM", "Sample", "allocate", "draw_stratified", "sample", "stratum_of"]

#: The stratum of examples whose ``by`` value is missing (``None``).
NO_STRATUM = "<none>"


@dataclass(frozen=True, repr=False)
class Sample(Summarized):
    """The examples :func:`sample` drew, with what is needed to redraw or report them.

    Attributes
    ----------
    examples : list of Example
        The drawn examples, grouped by stratum (strata in name order), in draw order within one.
    ids : tuple of str
        Their ids, in the same order.
    by : str or None
        The stratification key (``None``: one stratum).
    seed : int
        The seed.
    n : int
        The number asked for (``len(examples)``).
    allocation : mapping
        Stratum -> ``(available, drawn)``.
    """

    examples: list[Example]
    ids: tuple[str, ...]
    by: str | None
    seed: int
    n: int
    allocation: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.examples)

    def _summary(self) -> tuple[str, list[tuple[str, str]]]:
        strata = ", ".join(f"{k}: {d}/{a}" for k, (a, d) in list(self.allocation.items())[:6])
        more = len(self.allocation) - 6
        rows = [("ids", short_list(self.ids)), ("by, seed", f"{self.by}, {self.seed}"),
                ("drawn / available", strata + (f", ... (+{more})" if more > 0 else ""))]
        return f"Sample: {len(self)} example(s)", rows

    def to_frame(self) -> Any:
        """One row per drawn example: ``example_id``, ``source``, ``category``, ``stratum``, ``order``
        (position in :attr:`examples`), ``by`` and ``seed`` (write it as the study's ``sample.csv``).

        Returns
        -------
        pandas.DataFrame
        """
        import pandas as pd

        return pd.DataFrame({
            "example_id": list(self.ids),
            "source": [ex.source for ex in self.examples],
            "category": [ex.category for ex in self.examples],
            "stratum": [stratum_of(ex, self.by) for ex in self.examples],
            "order": range(len(self.examples)),
            "by": [self.by] * len(self.examples),
            "seed": [self.seed] * len(self.examples),
        })


def stratum_of(example: Example, by: str | None) -> str:
    """The stratum name of ``example`` under ``by`` (``category``, ``source`` or an attribute key).

    Parameters
    ----------
    example : Example
        An example.
    by : str | None
        ``"category"``, an attribute name, or ``None`` (one stratum).

    Returns
    -------
    str
    """
    if by is None:
        return "all"
    if by == "category":
        value = example.category
    elif by == "source":
        value = example.source
    else:
        value = example.attributes.get(by)
    return NO_STRATUM if value is None else str(value)


def allocate(sizes: Mapping[str, int], n: int) -> dict[str, int]:
    """Largest-remainder proportional allocation of ``n`` draws over strata of ``sizes``, at least one each
    when ``n >= len(sizes)``.

    Parameters
    ----------
    sizes : Mapping[str, int]
        Examples per stratum.
    n : int
        Examples to draw.

    Returns
    -------
    dict[str, int]
        Examples drawn per stratum.

    Examples
    --------
    >>> allocate({"a": 50, "b": 30, "c": 20}, 10)
    {'a': 5, 'b': 3, 'c': 2}
    >>> allocate({"a": 97, "b": 2, "c": 1}, 5)      # every stratum is represented
    {'a': 3, 'b': 1, 'c': 1}
    """
    total = sum(sizes.values())
    if n > total:
        raise DataError(f"cannot draw n={n} from {total} examples; pass n <= {total}.")
    exact = {s: n * k / total for s, k in sizes.items()}
    alloc = {s: math.floor(q) for s, q in exact.items()}
    left = n - sum(alloc.values())
    order = sorted(sizes, key=lambda s: (-(exact[s] - alloc[s]), -sizes[s], s))
    for s in order[:left]:
        alloc[s] += 1
    if n >= len(sizes):
        for s in sorted(sizes, key=lambda s: (-sizes[s], s)):
            if alloc[s] == 0:
                donor = max((d for d in alloc if alloc[d] > 1), key=lambda d: (alloc[d] - exact[d], alloc[d], d))
                alloc[donor] -= 1
                alloc[s] = 1
    return alloc


def sample(examples: Sequence[Example] | Sample, n: int, *, by: str | None = "category", seed: int = 0) -> Sample:
    """Draw ``n`` examples, stratified by ``by``, reproducibly.

    Parameters
    ----------
    examples : sequence of Example
        One benchmark's examples or several benchmarks' pooled (ids must be unique).
    n : int
        How many to draw, ``1 <= n <= len(examples)``.
    by : str or None
        ``"category"`` (default), ``"source"`` (stratify pooled benchmarks, e.g. 20 per benchmark
        for 100 over five of equal size), any key of :attr:`Example.attributes`, or ``None`` for a
        simple random sample. Examples whose value is missing form the stratum ``"<none>"``.
    seed : int
        The seed; the same seed and the same set of examples give the same sample in any input order.

    Returns
    -------
    Sample
        The drawn examples and their ids; :meth:`Sample.to_frame` records them.

    Raises
    ------
    DataError
        ``n`` not an int in ``[1, len(examples)]``, ``seed`` not an int, ``by`` not a string or
        ``None``, an attribute key no example has, an element that is not an :class:`Example`,
        duplicate ids.

    Examples
    --------
    >>> exs = [Example(f"d/{i}", "q", "A", category="xy"[i % 2]) for i in range(10)]
    >>> s = sample(exs, 4, seed=0)
    >>> dict(s.allocation)
    {'x': (5, 2), 'y': (5, 2)}
    >>> s.ids == sample(exs[::-1], 4, seed=0).ids
    True
    """
    pool = list(examples.examples if isinstance(examples, Sample) else examples)
    if not all(isinstance(ex, Example) for ex in pool):
        bad = next(type(ex).__name__ for ex in pool if not isinstance(ex, Example))
        raise DataError(f"sample() takes Example records (latentprobe.data.load_benchmark), got a {bad}.")
    if not pool:
        raise DataError("sample(): no examples given; load some first (latentprobe.data.load_benchmark).")
    integer(n, "n", minimum=1, maximum=len(pool), where="sample()", hint=f"the {len(pool)} examples given",
            error=DataError)
    integer(seed, "seed", where="sample()", error=DataError)
    if by is not None and not isinstance(by, str):
        raise DataError(f"sample(): by={by!r}; use 'category', 'source', an attribute key, or None.")
    if by not in (None, "category", "source") and not any(by in ex.attributes for ex in pool):
        raise DataError(f"sample(): by={by!r} is neither 'category' nor 'source' nor an attribute of any example; "
                        "use one of those, or None.")
    ids = [ex.example_id for ex in pool]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise DataError(f"sample(): example id {dup!r} occurs twice; ids must be unique (pooling two loads of one "
                        "benchmark?).")
    by_id = {ex.example_id: ex for ex in pool}
    picked, alloc = draw_stratified(ids, [stratum_of(ex, by) for ex in pool], n, seed=seed, by=by)
    drawn = [by_id[i] for i in picked]
    return Sample(examples=drawn, ids=tuple(ex.example_id for ex in drawn), by=by, seed=seed, n=n,
                  allocation=alloc)


def draw_stratified(ids: Sequence[str], strata: Sequence[str], n: int, *, seed: int,
                    by: str | None) -> tuple[list[str], dict[str, tuple[int, int]]]:
    """The ids :func:`sample` draws: per stratum (sorted), a keyed permutation of its ids (sorted), cut at
    the :func:`allocate` quota. Returns the drawn ids and ``{stratum: (available, drawn)}``; the order
    of ``ids`` does not matter.

    Parameters
    ----------
    ids : Sequence[str]
        Example ids.
    strata : Sequence[str]
        Each example's stratum.
    n : int
        Examples to draw.
    seed : int
        Seed of the draw.
    by : str | None
        The field the strata come from (recorded).

    Returns
    -------
    tuple[list[str], dict[str, tuple[int, int]]]
        The drawn ids, and per stratum ``(available, drawn)``.

    Examples
    --------
    >>> draw_stratified(["b", "a", "c", "d"], ["x", "x", "y", "y"], 2, seed=0, by="category")[1]
    {'x': (2, 1), 'y': (2, 1)}
    """
    groups: dict[str, list[str]] = {}
    for i, s in sorted(zip(ids, strata)):
        groups.setdefault(s, []).append(i)
    alloc = allocate({s: len(v) for s, v in groups.items()}, n)
    drawn: list[str] = []
    for s in sorted(groups):
        members = groups[s]
        perm = numpy_rng(seed, "sample", by, s).permutation(len(members))
        drawn.extend(members[int(j)] for j in perm[: alloc[s]])
    return drawn, {s: (len(groups[s]), alloc[s]) for s in sorted(groups)}
