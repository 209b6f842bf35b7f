"""One entry point for every benchmark: :func:`load_benchmark`, and the open registry of loaders.

The built-in loaders are listed in :data:`BENCHMARKS`. Others join with :func:`register_benchmark`
(from your own code), or from an installed package through the ``latentprobe.benchmarks``
entry-point group (read on the first lookup, each loader imported when first used)::

    # pyproject.toml of the package that ships the loader
    [project.entry-points."latentprobe.benchmarks"]
    my-bench = "my_package.loaders:load_my_bench"

:func:`list_benchmarks` gives every name a study file's ``[data] benchmark`` may use.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from pathlib import Path
from typing import Any, Callable, TypeVar

from latentprobe.data.benchmarks import load_mme_realworld_lite, load_tablevqa, load_vsp, load_vstar
from latentprobe.data.generic import examples_from_hf_disk, examples_from_jsonl
from latentprobe.data.records import Example
from latentprobe.data.text import load_gsm8k_aug, load_prosqa
from latentprobe.data.vlmeval import load_hrbench, load_vlmevalkit_tsv
from latentprobe.errors import DataError, LatentProbeWarning

__all__ = ["BENCHMARKS", "ENTRY_POINT_GROUP", "list_benchmarks", "load_benchmark", "register_benchmark"]

Loader = Callable[..., "list[Example]"]
_L = TypeVar("_L", bound=Callable[..., Any])

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

#: The built-in benchmark names (layouts and citations: docs/howto/benchmarks.md); every name that
#: :func:`load_benchmark` reads, registered ones included, is in :func:`list_benchmarks`.
BENCHMARKS: tuple[str, ...] = tuple(_LOADERS)

#: The entry-point group through which installed packages add benchmark loaders.
ENTRY_POINT_GROUP = "latentprobe.benchmarks"

_PENDING: dict[str, Any] = {}  # entry points found but not imported yet, by benchmark name
_SCANNED = False


def _check_loader(name: str, loader: Any) -> None:
    if not callable(loader):
        raise DataError(f"register_benchmark({name!r}): the loader must be callable, got "
                        f"{type(loader).__name__}; pass a function called as loader(root, **options).")
    try:
        params = list(inspect.signature(loader).parameters.values())
    except (TypeError, ValueError):
        return  # a builtin or C callable without a readable signature: trust it
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if not params or params[0].name != "root" or params[0].kind not in positional:
        raise DataError(f"register_benchmark({name!r}): the loader's first parameter must be `root` (the "
                        f"benchmark's folder or file), got ({', '.join(p.name for p in params)}); write it as "
                        "def loader(root, *, option=...) -> list[Example].")
    required = [p.name for p in params[1:] if p.kind in positional and p.default is inspect.Parameter.empty]
    if required:
        raise DataError(f"register_benchmark({name!r}): the loader's parameters {required} have no default, but "
                        "load_benchmark passes only root positionally; make them keyword-only options with defaults.")


def register_benchmark(name: str, loader: _L | None = None, *, overwrite: bool = False) -> Any:
    """Make ``loader`` readable as ``load_benchmark(name, root, **options)`` and as a study file's
    ``[data] benchmark = name``.

    Parameters
    ----------
    name : str
        The benchmark's name (non-empty, no surrounding whitespace).
    loader : callable, optional
        Called as ``loader(root, **options)`` with ``root`` a :class:`~pathlib.Path` (``~`` expanded);
        returns a list of :class:`Example` with unique ids. Its keyword-only parameters are the options
        :func:`load_benchmark` accepts. Omit it to use ``register_benchmark(name)`` as a decorator.
    overwrite : bool
        Replace a loader already registered under ``name`` (built-ins included).

    Returns
    -------
    callable
        ``loader`` itself (or, without ``loader``, a decorator that registers and returns the function).

    Raises
    ------
    DataError
        ``name`` empty or not a string, ``loader`` not callable or without a first parameter ``root``,
        or ``name`` already registered and ``overwrite`` false.

    Examples
    --------
    >>> from latentprobe.data import Example, load_benchmark, register_benchmark
    >>> @register_benchmark("doc-arith", overwrite=True)
    ... def load_arith(root, *, n=3):
    ...     return [Example(example_id=f"doc-arith/{i}", question=f"{i} + {i} = ?", gold=str(2 * i),
    ...                     source="doc-arith") for i in range(n)]
    >>> [e.gold for e in load_benchmark("doc-arith", ".", n=2)]
    ['0', '2']
    """
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise DataError(f"register_benchmark: the name must be a non-empty string without surrounding whitespace, "
                        f"got {name!r}; give e.g. \"my-bench\".")
    if name == "toy":
        raise DataError("register_benchmark: the name 'toy' is reserved for the shipped toy data of study files; "
                        "choose another name.")
    if loader is None:
        def decorate(fn: _L) -> _L:
            return register_benchmark(name, fn, overwrite=overwrite)
        return decorate
    _check_loader(name, loader)
    _scan_entry_points()
    if (name in _LOADERS or name in _PENDING) and not overwrite:
        raise DataError(f"register_benchmark: a benchmark named {name!r} is already registered; pass "
                        "overwrite=True to replace it, or choose another name.")
    _PENDING.pop(name, None)
    _LOADERS[name] = loader
    return loader


def _scan_entry_points() -> None:
    """Record (without importing them) the loaders installed packages declare in :data:`ENTRY_POINT_GROUP`."""
    global _SCANNED
    if _SCANNED:
        return
    _SCANNED = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _LOADERS or ep.name in _PENDING:
            warnings.warn(f"the installed entry point {ep.name} = {ep.value!r} (group {ENTRY_POINT_GROUP!r}) names a "
                          "benchmark that is already registered; it is ignored. Rename it in its package.",
                          LatentProbeWarning, stacklevel=3)
            continue
        _PENDING[ep.name] = ep


def _resolve(name: str) -> Callable[..., list[Example]]:
    _scan_entry_points()
    if name in _PENDING:
        ep = _PENDING[name]
        try:
            loader = ep.load()
        except Exception as err:  # any import failure of a third-party package
            raise DataError(f"benchmark {name!r}: its entry point {ep.value!r} (group {ENTRY_POINT_GROUP!r}) "
                            f"cannot be imported ({type(err).__name__}: {err}); reinstall or fix that package.") from err
        _check_loader(name, loader)
        del _PENDING[name]
        _LOADERS[name] = loader
    if name not in _LOADERS:
        raise DataError(f"unknown benchmark {name!r}; use one of {list_benchmarks()} (or register a loader "
                        "with latentprobe.data.register_benchmark).")
    return _LOADERS[name]


def list_benchmarks() -> list[str]:
    """Every benchmark name :func:`load_benchmark` reads: built-in, registered and installed, in that order.

    Returns
    -------
    list of str

    Examples
    --------
    >>> list_benchmarks()[:3]
    ['vstar', 'hrbench4k', 'hrbench8k']
    """
    _scan_entry_points()
    return list(_LOADERS) + [n for n in _PENDING if n not in _LOADERS]


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
        One of :func:`list_benchmarks`: the built-ins (:data:`BENCHMARKS`: ``"vstar"``, ``"hrbench4k"``,
        ``"hrbench8k"``, ``"mme-realworld-lite"``, ``"tablevqa"``, ``"vsp"``, ``"vlmevalkit-tsv"``,
        ``"gsm8k-aug"``, ``"prosqa"``, ``"jsonl"``, ``"hf-disk"``) and those added with
        :func:`register_benchmark` or the ``latentprobe.benchmarks`` entry-point group.
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
    loader = _resolve(name)
    accepted = _options_of(loader)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DataError(f"benchmark {name!r} takes no option(s) {unknown}; its options are {accepted}.")
    if root is None or (isinstance(root, str) and not root.strip()):
        raise DataError(f"benchmark {name!r}: root is empty; pass the benchmark's folder or file.")
    out = loader(Path(root).expanduser(), **options)
    if not isinstance(out, list) or not all(isinstance(e, Example) for e in out):
        raise DataError(f"benchmark {name!r}: its loader returned {type(out).__name__}, not a list of Example; "
                        "make it return [Example(...), ...].")
    return out
