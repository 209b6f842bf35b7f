import json
import os
import sys

# before torch starts its OpenMP pool (here and in every subprocess, notebook kernel and worker the tests start):
# idle OpenMP threads sleep instead of spinning. With two pytest workers on two cores, a spinning thread of a
# 2-thread forward takes the core the other worker needs, and each barrier then waits for a descheduled thread
# (measured: 8 linear layers, 800 forwards at 2 threads beside a busy core, 45 s spinning, 1.7 s passive).
# The wait policy changes when a thread sleeps, not what it computes.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(__file__))

from tiny import make_tokenizer, tiny_gpt2, tiny_llama, tiny_qwen_vl  # noqa: E402

# the real-format fixtures (Qwen2.5-VL tokenizer and replica checkpoints, SmolLM2's real weights), suite-wide
from formats.fixtures import qwen_tokenizer, qwen_tokenizer_dir, replica_dir, replica_root, smollm2  # noqa: E402,F401

torch.set_num_threads(1)  # tiny models: intra-op threads only contend on a 2-core machine


@pytest.fixture(scope="session")
def tok():
    return make_tokenizer()


@pytest.fixture(scope="session")
def qwen(tok):
    return tiny_qwen_vl(tok)


@pytest.fixture(scope="session")
def gpt2(tok):
    return tiny_gpt2(tok)


@pytest.fixture(scope="session")
def llama(tok):
    return tiny_llama(tok)


@pytest.fixture(scope="session")
def images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (112, 112, 3), dtype=np.uint8) for _ in range(3)]


@pytest.hookimpl(optionalhook=True)  # xdist's hook: -p no:xdist runs without it
def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (pyproject's addopts): one worker per core, at most four (every worker builds its own
    session fixtures: toy models, SmolLM2)."""
    return max(1, min(4, os.cpu_count() or 1))


# --------------------------------------------------------------------------- scheduling under xdist
#: Seconds the longest tests took (call plus set-up, beside another worker on two cores), by node id prefix. Only
#: the order in which work is handed out depends on them: a stale figure costs balance, never correctness.
LONGEST = {
    "tests/test_notebooks.py::test_smollm2_coconut_runs": 70,
    "tests/workers/test_study_workers.py::test_a_sigkilled": 52,
    "tests/workers/test_study_workers.py::test_four_workers": 52,
    "tests/workers/test_study_workers.py::test_one_and_three": 64,  # with the one-worker reference run
    "tests/workers/test_study_workers.py::test_a_changed": 30,
    "tests/formats/test_smollm2.py::test_architecture": 40,  # loads SmolLM2 (the group's first test)
    "tests/readouts/test_tuned.py::test_smollm2_tuned_lens": 37,
    "tests/realformats/test_smollm2_ood.py": 32,
    "tests/realformats/test_smollm2_threads.py": 12,
    "tests/probing/test_significance.py::test_on_null_probe_grids": 30,
    "tests/study/test_threads.py::test_one_and_two_threads": 29,
    "tests/test_notebooks.py::test_quickstart_runs": 23,
    "tests/study/test_owner.py::test_two_studies_started_together": 22,
    "tests/test_demo.py": 19,
    "tests/study/test_run.py::test_killed_run_resumes": 19,
    "tests/test_docs_build.py": 40,
    "tests/analyses/test_third_party.py": 30,
    "tests/causal/test_attribution.py::test_full_grid_agreement": 20,
    "tests/study/test_data_fingerprint.py::test_a_gold_a_question": 15,
    "tests/test_benchmark_scripts.py::test_similarity_coverage": 14,
}
#: Session fixtures of the top conftest that are expensive enough for their tests to share one worker.
SHARED_SESSION = {"smollm2"}


def _costs(items) -> list[float]:
    """Each item's expected seconds: its share of a LONGEST entry, else 3 s if marked slow, else 0.2 s."""
    prefix_of = [next((p for p in LONGEST if item.nodeid.startswith(p)), None) for item in items]
    shares = {p: prefix_of.count(p) for p in LONGEST}
    return [LONGEST[p] / shares[p] if p else 3.0 if item.get_closest_marker("slow") else 0.2
            for item, p in zip(items, prefix_of)]


def _sharing_key(item, fixturedef) -> tuple | None:
    """What ``item`` shares through ``fixturedef`` with other tests (None: nothing worth keeping together)."""
    scope = fixturedef.scope
    if scope == "function":
        return None
    if scope == "session":
        top = fixturedef.baseid in ("", "tests")
        return None if top and fixturedef.argname not in SHARED_SESSION else (scope, fixturedef.baseid,
                                                                                fixturedef.argname)
    if scope == "class":
        return (scope, item.nodeid.rsplit("::", 1)[0], fixturedef.argname)
    if scope == "module":
        return (scope, item.nodeid.split("::")[0], fixturedef.argname)
    return (scope, fixturedef.baseid, fixturedef.argname)  # package


@pytest.hookimpl(tryfirst=True)  # before pytest's own fixture reordering, which keeps this order otherwise
def pytest_collection_modifyitems(config, items):
    """Order the tests into units, the longest units first: tests that share a costly module, class or session
    fixture form one unit (one worker runs it, so the fixture is built once); every other test is a unit alone.

    Each xdist worker collects the same items and computes the same units and order; the workers write the units
    to ``xdist-units.json`` in the run's base folder, where :class:`UnitScheduling` (the master's) reads them.
    """
    if not items:
        return
    cost = _costs(items)
    parent = list(range(len(items)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[tuple, int] = {}
    for index, item in enumerate(items):
        info = getattr(item, "_fixtureinfo", None)
        for defs in (info.name2fixturedefs.values() if info else ()):
            key = _sharing_key(item, defs[-1]) if defs else None
            if key is None:
                continue
            first = owner.setdefault(key, index)
            parent[find(index)] = find(first)
    units: dict[int, list[int]] = {}
    for index in range(len(items)):
        units.setdefault(find(index), []).append(index)
    order = sorted(units.values(), key=lambda members: (-sum(cost[i] for i in members), members[0]))
    unit_of = {items[i].nodeid: items[members[0]].nodeid for members in order if len(members) > 1 for i in members}
    items[:] = [items[i] for members in order for i in members]
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        path = _units_file(config.getoption("basetemp"), worker=True)
        part = path.with_name(f"{path.name}.{worker}")
        part.write_text(json.dumps(unit_of))
        os.replace(part, path)  # the workers write the same content; the master reads a whole file


def _units_file(basetemp, *, worker: bool):
    from pathlib import Path

    base = Path(basetemp)
    return (base.parent if worker else base) / "xdist-units.json"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """The default ``--dist load`` hands out :func:`pytest_collection_modifyitems`'s units (in its order) instead of
    fixed chunks of tests. (xdist's own ``--dist loadgroup`` renames ``item._nodeid``, which pytest 9.2 no longer
    reads for ``item.nodeid``: the groups would be lost.)"""
    if config.getvalue("dist") != "load":
        return None
    try:
        from xdist.scheduler import LoadScopeScheduling
    except ImportError:  # another xdist layout: its own scheduler (only the balance suffers)
        return None

    basetemp = config._tmp_path_factory.getbasetemp()  # the folder whose popen-gw<i> the workers get
    config.option.loadscopereorder = False  # keep the conftest's order (xdist would put the most tests first)

    class UnitScheduling(LoadScopeScheduling):
        """Work units are the conftest's units; tests outside any unit go one by one, in collection order."""

        _units: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self._units is None:
                path = _units_file(basetemp, worker=False)
                self._units = json.loads(path.read_text()) if path.exists() else {}
            return self._units.get(nodeid, nodeid)

    return UnitScheduling(config, log)
