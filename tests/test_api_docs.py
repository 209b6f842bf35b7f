"""The public API is documented and typed: numpydoc ``Parameters`` / ``Returns`` and real annotations.

What is measured (``python tests/test_api_docs.py`` prints the figures, per package and in total):

* **The public API** is every name in ``__all__`` of every module of the package (private modules,
  a dotted part starting with ``_``, are skipped), counted once per object however many modules
  re-export it, and attributed to the module that defines it. Constants are not callables and are
  skipped; so are objects defined outside the package (a re-exported third-party name).
* **Public callables** are the public functions, the public classes (their constructor) and each
  public class's public methods (defined in a latentprobe class; ``staticmethod`` and
  ``classmethod`` included, properties and dunder methods excluded). The constructors of enums and
  exceptions are not counted (their members and message are not parameters a user chooses).
* **Public parameters** are the parameters of those callables except ``self``/``cls`` and
  ``*args``/``**kwargs``. A class's parameters are its constructor's (a dataclass: its fields).
* **Typed**: the parameter has an annotation that is not ``typing.Any`` itself. ``list[Any]``,
  ``Any | None`` or ``Mapping[str, Any]`` count as typed: they say what the container or the option
  is, which ``Any`` alone does not. String annotations are resolved with ``typing.get_type_hints``;
  one that cannot be resolved (a name imported only under ``TYPE_CHECKING``) is judged by its text.
* **Documented**: the parameter is named in a numpydoc ``Parameters`` (or ``Other Parameters``)
  section of the callable's docstring (inherited from the overridden method where the override has
  none, as ``inspect.getdoc`` does); for a class, of the class docstring or its ``__init__``'s (or
  ``__new__``'s), and a dataclass or named tuple may name its fields in ``Attributes`` instead
  (numpydoc's section for them). ``a, b : int`` documents both ``a`` and ``b``.
* **Returns**: a function or method that returns something (a return annotation other than ``None``,
  or, unannotated, a ``return`` with a value in its source) has a ``Returns`` (or ``Yields``) section.
* **Examples**: each main entry point (:data:`ENTRY_POINTS`) has an ``Examples`` section with at least
  one line that runs (not ``+SKIP``); ``tests/test_doctests.py`` runs them on the shipped toys.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import importlib
import inspect
import pkgutil
import re
import sys
import textwrap
import typing
from dataclasses import dataclass, field
from pathlib import Path

import pytest

if __name__ == "__main__":  # run as a script from the checkout: measure this checkout's package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import latentprobe

#: The main entry points: each has an Examples section that runs on the shipped toys.
ENTRY_POINTS = (
    "latentprobe.load", "latentprobe.LatentRunner.run", "latentprobe.LatentRunner.intervene",
    "latentprobe.LatentRunner.intervene_many", "latentprobe.causal.x_to_z", "latentprobe.causal.z_to_y",
    "latentprobe.causal.decompose", "latentprobe.probing.probe_sweep", "latentprobe.probing.compare_representations",
    "latentprobe.geometry.within_instance", "latentprobe.geometry.across_instances",
    "latentprobe.geometry.collapse_table", "latentprobe.data.load_benchmark", "latentprobe.data.sample",
    "latentprobe.data.to_input_set", "latentprobe.study.run_study", "latentprobe.study.load_study",
    "latentprobe.report.Report", "latentprobe.analyses.register_analysis", "latentprobe.data.register_benchmark",
    "latentprobe.register_intervention", "latentprobe.register_preset", "latentprobe.toy.load",
    "latentprobe.lens.to_bridge", "latentprobe.lens.replay_with_cache", "latentprobe.lens.latent_residuals",
)

#: Modules never imported here: importing them has effects (the command-line entry point).
NOT_IMPORTED = ("latentprobe.__main__",)

_PARAM_SECTIONS = ("Parameters", "Other Parameters")
_RETURN_SECTIONS = ("Returns", "Yields")
_SKIPPED_KINDS = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


# ------------------------------------------------------------------------------------------- docstrings
def sections(doc: str | None) -> dict[str, list[str]]:
    """The numpydoc sections of a docstring: title -> the lines below its underline."""
    lines = (inspect.cleandoc(doc) if doc else "").splitlines()
    out: dict[str, list[str]] = {}
    current = None
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and not line.startswith(" ") and re.fullmatch(r"-{3,}", nxt.strip()) \
                and len(nxt.strip()) >= len(line.strip()) - 1:
            current = line.strip()
            out.setdefault(current, [])
            i += 2
            continue
        if current is not None:
            out[current].append(line)
        i += 1
    return out


def documented_names(doc: str | None, titles: tuple[str, ...] = _PARAM_SECTIONS) -> set[str]:
    """The names a docstring's parameter sections document (``a, b : int`` names both; ``*args`` -> args)."""
    names: set[str] = set()
    for title, body in sections(doc).items():
        if title not in titles:
            continue
        for line in body:
            if not line.strip() or line.startswith((" ", "\t")):
                continue
            head = line.split(" : ", 1)[0].rstrip(" :")
            names.update(n.strip().lstrip("*") for n in head.split(",") if n.strip())
    return names


def runnable_examples(doc: str | None) -> int:
    """How many examples (a ``>>>`` line and its ``...`` lines) of the Examples section(s) run (no ``+SKIP``)."""
    body = sum((b for t, b in sections(doc).items() if t in ("Examples", "Example")), [])
    examples: list[str] = []
    for line in body:
        text = line.strip()
        if text.startswith(">>>"):
            examples.append(text)
        elif text.startswith("...") and examples:
            examples[-1] += "\n" + text
    return sum(1 for e in examples if "+SKIP" not in e)


# ------------------------------------------------------------------------------------------ annotations
def _hints(func: typing.Any) -> dict[str, typing.Any]:
    try:
        return typing.get_type_hints(func)
    except Exception:  # noqa: BLE001 - a name imported only under TYPE_CHECKING: judged by its text below
        return dict(getattr(func, "__annotations__", {}) or {})


def is_typed(annotation: typing.Any) -> bool:
    """An annotation that exists and is not ``typing.Any`` itself (see the module docstring)."""
    if annotation is inspect.Parameter.empty or annotation is None:
        return False
    if annotation is typing.Any:
        return False
    if isinstance(annotation, str):
        return annotation.strip().strip("'\"") not in ("Any", "typing.Any", "t.Any", "")
    return True


def _returns_something(func: typing.Any, hints: dict[str, typing.Any]) -> bool:
    if "return" in hints:
        ret = hints["return"]
        return not (ret is None or ret is type(None) or ret in ("None", "NoReturn") or ret is typing.NoReturn)
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):
        return False
    top = tree.body[0]
    nodes = [n for n in ast.walk(top) if not (isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda,
                                                              ast.ClassDef)) and n is not top)]
    return any(isinstance(n, ast.Return) and n.value is not None for n in nodes) or \
        any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in nodes)


# ------------------------------------------------------------------------------------------- the walk
@dataclass(frozen=True)
class Param:
    """One public parameter: where it is, whether it is typed and documented."""

    owner: str
    name: str
    typed: bool
    documented: bool


@dataclass(frozen=True)
class Callable_:
    """One public callable: whether it needs and has a Returns section."""

    name: str
    needs_returns: bool
    has_returns: bool


@dataclass
class Inventory:
    """Every public parameter and callable of the package."""

    params: list[Param] = field(default_factory=list)
    callables: list[Callable_] = field(default_factory=list)


def public_modules() -> list[str]:
    """The package and its modules, private ones (a part starting with ``_``) left out."""
    names = ["latentprobe"] + [m.name for m in pkgutil.walk_packages(latentprobe.__path__, "latentprobe.")]
    return sorted(n for n in names if n not in NOT_IMPORTED and not any(p.startswith("_") for p in n.split(".")))


def public_objects() -> dict[str, typing.Any]:
    """Qualified name (defining module + qualname) -> object, for every callable in some ``__all__``."""
    out: dict[str, typing.Any] = {}
    for modname in public_modules():
        module = importlib.import_module(modname)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name, None)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if not (getattr(obj, "__module__", "") or "").startswith("latentprobe"):
                continue
            out.setdefault(f"{obj.__module__}.{obj.__qualname__}", obj)
    return out


def _add_callable(inv: Inventory, qual: str, func: typing.Any, doc: str | None, documented: set[str],
                  skip_first: bool) -> None:
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return
    hints = _hints(func)
    params = list(sig.parameters.values())
    if skip_first and params and params[0].name in ("self", "cls"):
        params = params[1:]
    for p in params:
        if p.kind in _SKIPPED_KINDS or p.name in ("self", "cls"):
            continue
        ann = hints.get(p.name, p.annotation)
        inv.params.append(Param(qual, p.name, is_typed(ann), p.name in documented))
    if not inspect.isclass(func):
        needs = _returns_something(func, hints)
        has = bool(set(sections(doc)) & set(_RETURN_SECTIONS))
        inv.callables.append(Callable_(qual, needs, has))


def _class_members(cls: type) -> list[tuple[str, typing.Any, bool]]:
    """(name, function, takes self/cls) for each public method a latentprobe class defines."""
    out = []
    for name, raw in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(raw, staticmethod):
            out.append((name, raw.__func__, False))
        elif isinstance(raw, classmethod):
            out.append((name, raw.__func__, True))
        elif inspect.isfunction(raw):
            out.append((name, raw, True))
    return out


def inventory() -> Inventory:
    """Walk the public API (see the module docstring for what is counted)."""
    inv = Inventory()
    seen: set[int] = set()
    for qual, obj in sorted(public_objects().items()):
        if inspect.isfunction(obj):
            doc = inspect.getdoc(obj)
            _add_callable(inv, qual, obj, doc, documented_names(doc), skip_first=False)
            continue
        classes = [c for c in obj.__mro__ if (c.__module__ or "").startswith("latentprobe")]
        cdoc = inspect.getdoc(obj)
        names = documented_names(cdoc) | documented_names(inspect.getdoc(obj.__init__))
        if "__new__" in vars(obj):  # a constructor written as __new__ documents its parameters there
            names |= documented_names(inspect.getdoc(obj.__new__))
        if dataclasses.is_dataclass(obj) or (issubclass(obj, tuple) and hasattr(obj, "_fields")):
            names |= documented_names(cdoc, ("Attributes",))
        if not issubclass(obj, (enum.Enum, BaseException)):  # an enum's members and an error's message are
            _add_callable(inv, qual, obj, cdoc, names, skip_first=False)  # not parameters a user chooses
        for klass in classes:
            for name, func, bound in _class_members(klass):
                if id(func) in seen:
                    continue
                seen.add(id(func))
                doc = inspect.getdoc(getattr(obj, name, func)) or inspect.getdoc(func)
                _add_callable(inv, f"{klass.__module__}.{klass.__qualname__}.{name}", func, doc,
                              documented_names(doc), skip_first=bound)
    return inv


# ---------------------------------------------------------------------------------------------- figures
def package_of(qual: str) -> str:
    """``latentprobe.causal.xz.x_to_z`` -> ``latentprobe.causal``; top-level modules are their own package."""
    parts = qual.split(".")
    path = Path(latentprobe.__file__).parent
    return ".".join(parts[:2]) if (path / parts[1]).is_dir() else f"latentprobe.{parts[1]}"


def _resolve(dotted: str) -> typing.Any:
    """An object by its dotted name, attributes first (``latentprobe.causal.decompose`` is the function), then
    from the longest importable module (``latentprobe.causal.decompose.decompose``)."""
    parts = dotted.split(".")
    obj = importlib.import_module(parts[0])
    try:
        for part in parts[1:]:
            obj = getattr(obj, part)
        return obj
    except AttributeError:
        pass
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for part in parts[i:]:
            obj = getattr(obj, part)
        return obj
    raise ImportError(dotted)


def entry_points_without_examples() -> list[str]:
    """The main entry points whose docstring has no Examples line that runs."""
    return [name for name in ENTRY_POINTS if runnable_examples(inspect.getdoc(_resolve(name))) == 0]


def figures(inv: Inventory | None = None, *, within: str | None = None) -> dict[str, float]:
    """The coverage figures (percentages and counts), of the package or of one subpackage ``within``."""
    inv = inv or inventory()
    params = [p for p in inv.params if within is None or package_of(p.owner) == within]
    calls = [c for c in inv.callables if c.needs_returns and (within is None or package_of(c.name) == within)]
    n = len(params)
    out = {
        "parameters": n,
        "typed %": 100.0 * sum(p.typed for p in params) / n if n else 100.0,
        "documented %": 100.0 * sum(p.documented for p in params) / n if n else 100.0,
        "returning callables": len(calls),
        "Returns %": 100.0 * sum(c.has_returns for c in calls) / len(calls) if calls else 100.0,
    }
    if within is None:
        missing = entry_points_without_examples()
        out["entry points"] = len(ENTRY_POINTS)
        out["entry points with Examples"] = len(ENTRY_POINTS) - len(missing)
    return out


def report(inv: Inventory | None = None) -> str:
    """The figures as a markdown table, the whole package first and then each package."""
    inv = inv or inventory()
    rows = ["| scope | params | typed % | documented % | returning | Returns % |", "|---|---|---|---|---|---|"]
    scopes = [None] + sorted({package_of(p.owner) for p in inv.params} | {package_of(c.name) for c in inv.callables})
    for scope in scopes:
        f = figures(inv, within=scope)
        rows.append(f"| {scope or 'all'} | {f['parameters']} | {f['typed %']:.1f} | {f['documented %']:.1f} "
                    f"| {f['returning callables']} | {f['Returns %']:.1f} |")
    whole = figures(inv)
    rows.append("")
    rows.append(f"entry points with a runnable Examples section: {whole['entry points with Examples']}"
                f" / {whole['entry points']}; missing: {entry_points_without_examples()}")
    return "\n".join(rows)


def missing(inv: Inventory | None = None, *, within: str | None = None) -> dict[str, list[str]]:
    """What is missing, by kind: untyped and undocumented parameters, callables without Returns."""
    inv = inv or inventory()
    keep = (lambda q: True) if within is None else (lambda q: package_of(q) == within)
    return {
        "untyped": [f"{p.owner}({p.name})" for p in inv.params if keep(p.owner) and not p.typed],
        "undocumented": [f"{p.owner}({p.name})" for p in inv.params if keep(p.owner) and not p.documented],
        "no Returns": [c.name for c in inv.callables if keep(c.name) and c.needs_returns and not c.has_returns],
    }


# ------------------------------------------------------------------------------------------------ tests
@pytest.fixture(scope="module")
def inv() -> Inventory:
    return inventory()


def test_the_walk_sees_the_public_api(inv):
    owners = {p.owner for p in inv.params}
    assert {"latentprobe.causal.xz.x_to_z", "latentprobe.engine.runner.LatentRunner.run",
            "latentprobe.probing.estimator.LinearProbe"} <= owners
    assert not [o for o in owners if o.rsplit(".", 1)[-1].startswith("_")]  # no private method
    assert len(inv.params) > 500


def test_the_section_parser_reads_numpydoc():
    doc = """Summary.

    Parameters
    ----------
    a, b : int
        Two of them.
    *args : int
        More.
    c
        No type.

    Returns
    -------
    int
        A number.

    Examples
    --------
    >>> 1 + 1
    2
    >>> f(1,
    ...   2)  # doctest: +SKIP
    """
    assert documented_names(doc) == {"a", "b", "args", "c"}
    assert set(sections(doc)) == {"Parameters", "Returns", "Examples"}
    assert runnable_examples(doc) == 1
    assert not is_typed(typing.Any) and not is_typed("Any") and not is_typed(inspect.Parameter.empty)
    assert is_typed(typing.Optional[typing.Any]) and is_typed("list[Any]") and is_typed(int)


def test_at_least_90_percent_of_public_parameters_are_typed(inv):
    f = figures(inv)
    assert f["typed %"] >= 90.0, f"{f['typed %']:.1f}% typed; untyped: {missing(inv)['untyped']}"


def test_at_least_90_percent_of_public_parameters_are_documented(inv):
    f = figures(inv)
    assert f["documented %"] >= 90.0, f"{f['documented %']:.1f}% documented; missing: {missing(inv)['undocumented']}"


def test_at_least_90_percent_of_returning_callables_have_returns(inv):
    f = figures(inv)
    assert f["Returns %"] >= 90.0, f"{f['Returns %']:.1f}% with Returns; missing: {missing(inv)['no Returns']}"


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_every_main_entry_point_has_a_runnable_example(name):
    assert runnable_examples(inspect.getdoc(_resolve(name))) > 0, f"{name} has no Examples line that runs"


if __name__ == "__main__":  # python tests/test_api_docs.py [--missing latentprobe.analyses ...]
    _inv = inventory()
    print(report(_inv))
    if "--missing" in sys.argv:
        for scope in sys.argv[sys.argv.index("--missing") + 1:] or [None]:
            for kind, names in missing(_inv, within=scope).items():
                print(f"\n{kind} ({scope or 'all'}, {len(names)}):")
                print("\n".join(f"  {n}" for n in names))
