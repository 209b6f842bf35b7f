"""One entry point for every benchmark: :data:`BENCHMARKS` and :func:`load_benchmark`."""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Any, Callable

from latentprobe.data.benchmarks import load_mme_realworld_lite, load_tablevqa, load_vsp, load_vstar
from latentprobe.data.generic import examples_from_hf_disk, examples_from_jsonl
from latentprobe.data.records import Example
from latentprobe.data.text import load_gsm8k_aug, load_prosqa
from latentprobe.data.vlmeval import load_hrbench, load_vlmevalkit_tsv
from latentprobe.errors import DataError

__all__ = ["BENCHMARKS", "load_benchmark"]

_LOADERS: dict[str, Callable[..., list[Example]]] = {
    "vstar": load_vstar,
    "hrbench4k": functools.partial(load_hrbench, resolution="4k"),
    "hrbench8k": functools.partial(load_hrbench, resolution="8k"),
    "mme-realworld-lite": load_mme_realworld_lite,
    "tablevqa": load_tablevqa,
    "vsp": load_vsp,
    "vlmevalkit-tsv": load_vlmevalkit_tsv,
    "gsm8k-aug": load_gsm8k_aug,
    "prosqa": load_prosqa,
    "jsonl": examples_from_jsonl,
    "hf-disk": examples_from_hf_disk,
}

#: The benchmark names :func:`load_benchmark` reads (layouts and citations: docs/howto/benchmarks.md).
BENCHMARKS: tuple[str, ...] = tuple(_LOADERS)


def _options_of(loader: Callable[..., Any]) -> list[str]:
    sig = inspect.signature(loader)
    return [p.name for p in sig.parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and not (isinstance(loader, functools.partial)
                                                                  and p.name in loader.keywords)]


def load_benchmark(name: str, root: str | Path, **options: Any) -> list[Example]:
    """Read a benchmark in its published on-disk layout as a list of :class:`Example`.

    Parameters
    ----------
    name : str
        One of :data:`BENCHMARKS`: ``"vstar"``, ``"hrbench4k"``, ``"hrbench8k"``,
        ``"mme-realworld-lite"``, ``"tablevqa"``, ``"vsp"``, ``"vlmevalkit-tsv"``, ``"gsm8k-aug"``,
        ``"prosqa"``, ``"jsonl"``, ``"hf-disk"``.
    root : path
        The benchmark's folder (or file, where the format is one file); ``~`` is expanded.
    **options
        The loader's own options (e.g. ``split="test"`` for ``gsm8k-aug``, ``subsets=`` for
        ``tablevqa``, ``verify_images=False`` to skip the header check); unknown ones are refused.

    Returns
    -------
    list of Example
        In the benchmark's order; ids ``"<name>/<the benchmark's id>"``, unique; images lazy.

    Raises
    ------
    DataError
        An unknown name or option, or a malformed benchmark (the message names file, row and field).

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "prosqa_test.json").write_text(json.dumps([{"question": "Is Tom a wumpus or a yumpus?",
    ...     "answer": "Tom is a wumpus.", "steps": ["Tom is a wumpus."], "idx_to_symbol": ["Tom", "wumpus"],
    ...     "edges": [[0, 1]], "root": 0, "target": 1, "neg_target": 2}]))
    >>> [ex] = load_benchmark("prosqa", d)
    >>> ex.example_id, ex.gold, ex.attributes["n_steps"]
    ('prosqa/0', 'Tom is a wumpus.', 1)
    """
    if name not in _LOADERS:
        raise DataError(f"unknown benchmark {name!r}; use one of {list(BENCHMARKS)}.")
    loader = _LOADERS[name]
    accepted = _options_of(loader)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DataError(f"benchmark {name!r} takes no option(s) {unknown}; its options are {accepted}.")
    if root is None or (isinstance(root, str) and not root.strip()):
        raise DataError(f"benchmark {name!r}: root is empty; pass the benchmark's folder or file.")
    return loader(Path(root).expanduser(), **options)
