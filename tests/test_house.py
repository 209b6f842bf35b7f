"""The house's facts: module sizes, no import cycles, the toy as a client, one error root."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import latentprobe
from latentprobe.errors import LatentProbeError, LatentProbeWarning

PKG = Path(latentprobe.__file__).parent
MAX_LINES = 500
# the toy is a client of the core: only these may import it
TOY_CLIENTS = ("latentprobe.toy", "latentprobe.demo", "latentprobe.cli", "latentprobe.study.toys")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every latentprobe module that ``name`` imports, at any depth of its code (type-checking imports too)."""
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                    pkg = pkg[: len(pkg) - (child.level - 1)]
                    base = ".".join(pkg + ([base] if base else []))
                # `from pkg import sub` depends on the submodule; `from mod import name` on the module
                for a in child.names:
                    found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base)
            visit(child)

    visit(tree)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            strong(v)
    return out


def test_no_module_over_500_lines():
    big = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_no_import_cycles():
    # the package root re-exports the public API; a module importing `latentprobe` itself would loop through it
    assert not _cycles(GRAPH), f"import cycles: {_cycles(GRAPH)}"


def test_import_finder_reads_submodule_imports_as_such():
    assert "latentprobe.engine.modes" in GRAPH["latentprobe.engine.runner"]
    assert "latentprobe.engine" not in GRAPH["latentprobe.engine.runner"]


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_only_the_toy_and_its_clients_import_the_toy():
    offenders = {name: sorted(m for m in deps if m == "latentprobe.toy" or m.startswith("latentprobe.toy."))
                 for name, deps in GRAPH.items() if not name.startswith(TOY_CLIENTS)}
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"core modules importing the toy: {offenders}"


def test_import_finder_sees_function_level_imports():
    # the scan must see imports hidden inside functions (how a cycle hid before)
    assert "latentprobe.toy" in GRAPH["latentprobe.cli"] or any(
        m.startswith("latentprobe.toy") for m in GRAPH["latentprobe.cli"])


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_exception_class_has_the_package_root(name):
    # errors under LatentProbeError, warnings under LatentProbeWarning
    module = importlib.import_module(name)
    bad = [obj.__qualname__ for _, obj in inspect.getmembers(module, inspect.isclass)
           if obj.__module__ == name and issubclass(obj, BaseException)
           and not issubclass(obj, (LatentProbeError, LatentProbeWarning))]
    assert not bad, f"{name}: exception classes outside LatentProbeError / LatentProbeWarning: {bad}"


def _raised_builtins(path: Path) -> list[str]:
    """``raise ValueError(...)``-style raises of built-in exception types (outside tests of the package)."""
    import builtins

    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and isinstance(getattr(builtins, exc.id, None), type) \
                    and issubclass(getattr(builtins, exc.id), BaseException):
                found.append(f"{path.relative_to(PKG.parent)}:{node.lineno} raise {exc.id}")
    return found


def test_the_package_raises_only_its_own_errors():
    raised = [hit for path in MODULES.values() for hit in _raised_builtins(path)]
    # AttributeError from a module __getattr__ is the protocol Python asks for
    raised = [hit for hit in raised if not hit.endswith("raise AttributeError")]
    assert not raised, "built-in exceptions raised by the package (use a LatentProbeError subclass):\n" + "\n".join(raised)


def test_walk_covers_every_module():
    walked = {m.name for m in pkgutil.walk_packages(latentprobe.__path__, "latentprobe.")}
    assert walked | {"latentprobe"} == set(MODULES)


def _documented_raises() -> list[tuple[str, str]]:
    """(where, exception name) for every name listed under a docstring's ``Raises`` heading."""
    import re

    found = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef, ast.Module)):
                doc = ast.get_docstring(node) or ""
                m = re.search(r"^Raises\n-+\n(.*?)(?:\n\n|\Z)", doc, re.S | re.M)  # the entries up to a blank line
                if m:
                    # an entry is an unindented name (optionally :class:`~...`); its description is indented
                    for exc in re.findall(r"^(?::class:`~?)?([A-Za-z_.]+)`?\s*$", m.group(1), re.M):
                        exc = exc.split(".")[-1]
                        if exc != "Exception":  # "whatever your callable raises", passed through
                            found.append((f"{name}:{getattr(node, 'name', '<module>')}", exc))
    return found


def test_documented_exceptions_are_the_package_s_own():
    import builtins

    import latentprobe.errors as errors

    documented = _documented_raises()
    assert len(documented) >= 10, "the Raises sections were not found"
    bad = []
    for where, exc in documented:
        cls = getattr(errors, exc, None)
        if cls is None:  # a class defined next to its module (e.g. scoring, engine.loading)
            cls = next((getattr(importlib.import_module(m), exc) for m in MODULES
                        if hasattr(importlib.import_module(m), exc)), None)
        if cls is None or getattr(builtins, exc, None) is cls or not issubclass(cls, LatentProbeError):
            bad.append(f"{where}: {exc}")
    assert not bad, f"documented exceptions that are not LatentProbeErrors: {bad}"


#: Analysis keys that are also ordinary config fields: ``"steps"`` (the ``[analyses.steps]`` analysis) is the
#: latent-steps field of every intervention's config dict, so dict literals keyed by it are not dispatch tables
#: (comparisons with it are still refused).
CONFIG_FIELDS = frozenset({"steps", "lens"})  # a config field and a KL-table column, not dispatch


def _analysis_name_dispatch(path: Path, keys: set[str]) -> list[str]:
    """Places in ``path`` that dispatch on an analysis key as a string: a comparison with it (``==``, ``!=``,
    ``in``), a literal tuple/list/set holding it on either side of a comparison, or a dict literal keyed by it."""
    tree = ast.parse(path.read_text())
    found = []

    def names(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
        return []

    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            hit = {n for side in [node.left, *node.comparators] for n in names(side)} & keys
            if hit:
                found.append(f"{path.relative_to(PKG.parent)}:{node.lineno}: compares with {sorted(hit)}")
        elif isinstance(node, ast.Dict):
            hit = {n for k in node.keys if k is not None for n in names(k)} & (keys - CONFIG_FIELDS)
            if hit:
                found.append(f"{path.relative_to(PKG.parent)}:{node.lineno}: a table keyed by {sorted(hit)}")
        elif isinstance(node, ast.Match):
            hit = {n for case in node.cases for p in ast.walk(case.pattern)
                   if isinstance(p, ast.MatchValue) for n in names(p.value)} & keys
            if hit:
                found.append(f"{path.relative_to(PKG.parent)}:{node.lineno}: matches {sorted(hit)}")
    return found


def test_no_analysis_name_is_dispatched_on_outside_the_registry():
    from latentprobe.analyses import registered_analyses

    keys = set(registered_analyses())
    hits = [h for name, path in MODULES.items() if not name.startswith("latentprobe.analyses")
            for h in _analysis_name_dispatch(path, keys)]
    assert not hits, "analysis names dispatched on outside latentprobe/analyses:\n" + "\n".join(hits)


def test_name_dispatch_finder_finds_planted_dispatch(tmp_path):
    planted = PKG / "_planted_dispatch_probe.py"
    try:
        planted.write_text('def f(name):\n    if name == "z_to_y":\n        return 1\n    return {"probes": 2}[name]\n')
        hits = _analysis_name_dispatch(planted, {"z_to_y", "probes"})
    finally:
        planted.unlink()
    assert len(hits) == 2 and "compares with ['z_to_y']" in hits[0] and "keyed by ['probes']" in hits[1]
