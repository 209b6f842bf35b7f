"""The documentation: the site builds with ``mkdocs build --strict``, and the how-to code runs.

A fenced ``python`` block in ``docs/`` preceded by the line ``<!-- runnable -->`` is run here, on
the shipped toy models. The runnable blocks of one page run in order in one namespace, so a page
starts with a block that builds what the later blocks use (a toy runner, a trace, inputs).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MARKER = "<!-- runnable -->"
_FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.M | re.S)


def runnable_blocks(path: Path) -> list[tuple[int, str]]:
    """(line number, code) of every fenced python block preceded by the runnable marker."""
    return blocks_in(path.read_text())


def blocks_in(text: str) -> list[tuple[int, str]]:
    """(line number, code) of every runnable block of a page's text."""
    out = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        if before == MARKER:
            out.append((text.count("\n", 0, match.start()) + 1, match.group(1)))
    return out


PAGES = sorted(p for p in DOCS.rglob("*.md") if runnable_blocks(p))


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path):
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        pytest.importorskip(module, reason="the docs extra is not installed: pip install -e '.[docs]'")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=600,
    )
    if proc.returncode != 0:
        pytest.fail(f"mkdocs build --strict failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    site = tmp_path / "site"
    assert (site / "api" / "engine.html").is_file()
    # opened from the file system, every link of the home page leads to a page (no directory listings)
    index = (site / "index.html").read_text()
    links = {h.split("#")[0] for h in re.findall(r'href="([^"]+)"', index)}
    local = sorted(h for h in links if h and not re.match(r"^[a-z]+:", h))
    assert not [h for h in local if h.endswith("/") or h in (".", "..")], "directory links open a listing from file://"
    html = [h for h in local if h.endswith(".html")]
    assert len(html) >= 20 and "howto/benchmarks.html" in html
    assert [h for h in html if not (site / h).is_file()] == []
    assert "javascripts/file-search.js" in index  # the search box explains itself from file://
    assert "mkdocs serve" in (site / "javascripts" / "file-search.js").read_text()


def test_rst_roles_and_simple_tables_become_markdown():
    pytest.importorskip("griffe", reason="the docs extra is not installed: pip install -e '.[docs]'")
    import importlib.util

    spec = importlib.util.spec_from_file_location("griffe_rst", DOCS / "griffe_rst.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (
        "See :func:`x_to_z` and :class:`~latentprobe.sweep.ResumableSweep`.\n\n"
        "=========  ==========\n"
        "name       what\n"
        "=========  ==========\n"
        ":func:`a`  first line\n"
        "           and more\n"
        "b          a | b\n"
        "=========  ==========\n"
        "after"
    )
    assert module.rst_to_markdown(text).split("\n") == [
        "See `x_to_z` and `ResumableSweep`.", "",
        "| name | what |", "|---|---|", "| `a` | first line and more |", "| b | a \\| b |",
        "after",
    ]


def test_some_pages_have_runnable_blocks():
    names = {p.relative_to(DOCS).as_posix() for p in PAGES}
    assert {"howto/interventions.md", "howto/mediation.md", "howto/probing-similarity.md", "toy.md",
            "howto/extend.md"} <= names


def test_every_extension_point_has_a_runnable_block_naming_its_files():
    text = (DOCS / "howto" / "extend.md").read_text()
    sections = {s.split("\n", 1)[0]: s for s in text.split("\n## ")[1:]}
    needs = {"A custom intervention": "@register_intervention", "A perturbation": "def apply_one(",
             "A preset for a new latent family": "register_preset(", "A benchmark loader": "@register_benchmark(",
             "A scorer": "def score("}
    for title, call in needs.items():
        body = sections[title]
        assert "Files:" in body and "tests/" in body, title
        assert any(call in code for _, code in blocks_in(body)), title
    assert "An analysis" in sections  # written with the analysis registry
    assert "howto/extend.md" in (ROOT / "mkdocs.yml").read_text()


def _registries() -> list[dict]:
    """The registries a page's blocks may add to (howto/extend.md registers one of each)."""
    import latentprobe.analyses.registry as analyses
    import latentprobe.data.registry as data
    import latentprobe.interventions.base as interventions
    import latentprobe.perturbations.base as perturbations
    import latentprobe.presets as presets
    import latentprobe.toy.perturbations  # noqa: F401 - registers the toy's perturbations before the snapshot

    return [data._LOADERS, analyses._REGISTRY, interventions._REGISTRY, perturbations._REGISTRY, presets._PRESETS]


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(DOCS).as_posix() for p in PAGES])
def test_runnable_blocks(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # blocks that write (out_dir="runs/...") write here
    namespace: dict = {"__name__": "docs_block"}
    saved = [(registry, dict(registry)) for registry in _registries()]
    try:
        for line, code in runnable_blocks(page):
            try:
                # dont_inherit: a block runs as a user runs it, without this file's __future__ annotations
                exec(compile(code, f"{page.relative_to(ROOT)}:{line}", "exec", dont_inherit=True), namespace)
            except Exception as exc:  # noqa: BLE001 - reported with the page and line
                raise AssertionError(f"the block at {page.relative_to(ROOT)}:{line} failed: {exc!r}") from exc
    finally:  # what the blocks registered would otherwise stay in this worker for the tests run after
        for registry, before in saved:
            registry.clear()
            registry.update(before)


def test_docs_state_the_codes_rule_for_unreadable_answers():
    # the analyses count an unreadable answer as wrong and count it in n_unparseable (causal.common); no page
    # may say otherwise
    pages = {p.relative_to(DOCS).as_posix(): p.read_text() for p in DOCS.rglob("*.md")}
    assert not [n for n, t in pages.items() if re.search(r"counted apart|counts apart|not as wrong", t)]
    mentioning = [n for n, t in pages.items() if "n_unparseable" in t]
    assert len(mentioning) >= 3 and all("wrong" in pages[n] for n in mentioning)
