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


def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (pyproject's addopts): one worker per core, at most four (every worker builds its own
    session fixtures: toy models, SmolLM2)."""
    return max(1, min(4, os.cpu_count() or 1))


# --------------------------------------------------------------------------- scheduling under xdist
#: Seconds the longest tests took (call plus set-up) on two busy cores, by node id prefix: only the order in which
#: work is handed out depends on them (a stale figure costs balance, never correctness).
LONGEST = {
    "tests/test_notebooks.py::test_smollm2_coconut_runs": 150,
    "tests/workers/test_study_workers.py::test_a_sigkilled": 85,
    "tests/workers/test_study_workers.py::test_four_workers": 85,
    "tests/workers/test_study_workers.py::test_one_and_three": 40,
    "tests/workers/test_study_workers.py::test_a_changed": 25,
    "tests/study/test_threads.py::test_one_and_two_threads": 85,
    "tests/realformats/test_smollm2_threads.py": 70,
    "tests/formats/test_smollm2.py::test_architecture": 50,  # loads SmolLM2 (the group's first test)
    "tests/study/test_run.py::test_killed_run_resumes": 65,
    "tests/probing/test_significance.py::test_on_null_probe_grids": 55,
    "tests/readouts/test_tuned.py::test_smollm2_tuned_lens": 40,
    "tests/test_benchmark_scripts.py::test_similarity_coverage": 38,
    "tests/test_notebooks.py::test_quickstart_runs": 30,
    "tests/study/test_owner.py::test_two_studies_started_together": 28,
    "tests/realformats/test_smollm2_ood.py": 30,
    "tests/study/test_data_fingerprint.py::test_a_gold_a_question": 24,
    "tests/workers/test_sharded_sweep.py::test_a_hung_worker": 24,
    "tests/analyses/test_third_party.py": 60,
    "tests/causal/test_attribution.py::test_full_grid_agreement": 30,
    "tests/test_demo.py": 21,
    "tests/test_docs_build.py": 40,
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


@pytest.hookimpl(tryfirst=True)  # before xdist's worker reads the xdist_group marks
def pytest_collection_modifyitems(config, items):
    """Under ``--dist loadgroup`` (pyproject's addopts): keep the tests that share a costly module, class or
    session fixture on one worker (it is built once), hand out everything else test by test, and start the
    longest units first, so no long test starts last while the other worker idles.

    Every worker collects the same items and computes the same groups and order, as xdist requires.
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
    reordered = []
    for members in order:
        if len(members) > 1:
            name = "g:" + items[members[0]].nodeid.split("[")[0]
            for i in members:
                items[i].add_marker(pytest.mark.xdist_group(name))
        reordered.extend(items[i] for i in members)
    items[:] = reordered
