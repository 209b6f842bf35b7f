"""The notebooks in ``examples/notebooks/`` are stored clean and run end to end.

Each notebook is executed with nbclient (kernel ``python3``) in a fresh temporary working directory, with
``PYTHONPATH`` holding this checkout, as a user of a clean checkout would run it. The notebooks assert their
own results against the planted truths (the toys' masks) or against a hand-written loop, so a notebook that
runs but computes the wrong thing fails here. Stored notebooks must carry no outputs and no execution counts.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "examples" / "notebooks"
NAMES = ("quickstart.ipynb", "smollm2_coconut.ipynb", "bring_your_own_model.ipynb")
#: nbclient stops a cell that runs longer than this (a hang guard: each notebook takes under two minutes on two idle
#: cores, but wall time on a shared machine is not a property of the notebook, so it is not asserted).
CELL_TIMEOUT_S = 600


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def test_the_notebooks_are_the_expected_ones():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)


def stored_outputs(nb: nbformat.NotebookNode) -> list[str]:
    """Where a stored notebook holds outputs or execution counts (``cell <i>: ...``); empty when clean."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            found.append(f"cell {i}: {len(cell.outputs)} output(s)")
        if cell.get("execution_count") is not None:
            found.append(f"cell {i}: execution_count {cell.execution_count}")
    return found


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_stored_without_outputs(name):
    nb = _read(name)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    assert stored_outputs(nb) == [], f"{name}: clear the outputs before committing (jupyter nbconvert " \
                                     f"--clear-output --inplace examples/notebooks/{name})"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_checks_its_own_results(name):
    """A notebook that ran but computed the wrong thing must fail: each asserts on its results in a code cell."""
    code = [c.source for c in _read(name).cells if c.cell_type == "code"]
    assert sum("\nassert " in "\n" + src for src in code) >= 2


def test_stored_outputs_are_found():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    assert stored_outputs(nb) == []
    nb.cells[0].execution_count = 3
    nb.cells[0].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=3)]
    assert stored_outputs(nb) == ["cell 0: 1 output(s)", "cell 0: execution_count 3"]


def _execute(name: str, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    """Run every cell of ``name`` in a fresh ``python3`` kernel whose working directory is ``workdir``."""
    from nbclient import NotebookClient

    # the kernel inherits this environment: this checkout importable, no hub access, nothing read from the checkout
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    # an installed "python3" kernelspec may name plain `python`: let it be this interpreter, activated venv or not
    monkeypatch.setenv("PATH", os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", ""))))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    nb = _read(name)
    client = NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT_S,
                            resources={"metadata": {"path": str(workdir)}})
    client.execute()  # raises CellExecutionError (with the failing cell's traceback)
    return nb


def _texts(nb: nbformat.NotebookNode) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            out.append(o.get("text", "") or str(o.get("data", {}).get("text/plain", "")))
    return "\n".join(out)


@pytest.mark.slow
def test_quickstart_runs(tmp_path, monkeypatch):
    nb = _execute("quickstart.ipynb", tmp_path, monkeypatch)
    assert (tmp_path / "latentprobe-quickstart" / "report.html").stat().st_size > 100_000
    assert "accuracy:" in _texts(nb)


@pytest.mark.slow
def test_smollm2_coconut_runs(tmp_path, monkeypatch):
    nb = _execute("smollm2_coconut.ipynb", tmp_path, monkeypatch)
    assert "LlamaForCausalLM" in _texts(nb)


@pytest.mark.slow
def test_bring_your_own_model_runs(tmp_path, monkeypatch):
    nb = _execute("bring_your_own_model.ipynb", tmp_path, monkeypatch)
    assert "my-thinker" in _texts(nb)
