"""Session-scoped pytest fixtures over the offline formats; ``from formats.fixtures import *`` in a conftest.

Each fixture builds on first use, once per session (folders under ``tmp_path_factory``). The folders are shared
by the session's xdist workers: the first worker to need a tokenizer or replica builds it under a file lock and
the others read the same files (the builds are seeded, so every worker would write the same bytes). A missing
package fails the test with ``FormatPackageMissing`` naming the install line (never a skip).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from filelock import FileLock

from .qwen_tokenizer import build_qwen_tokenizer, cached_qwen_tokenizer
from .qwen_vl_replica import build_replica
from .smollm2 import load_smollm2

__all__ = ["qwen_tokenizer_dir", "qwen_tokenizer", "replica_root", "replica_dir", "smollm2"]


def _shared(tmp_path_factory, name: str) -> Path:
    """``name`` under the run's base folder, the same folder for every xdist worker of this run."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # pytest-of-<user>/pytest-<n>/, above each worker's popen-gw<i>/
    folder = base / name
    folder.mkdir(exist_ok=True)
    return folder


def _locked(folder: Path, build):
    """``build()`` once for ``folder`` among all workers; ``.done`` marks a finished build."""
    done = folder.with_name(folder.name + ".done")
    with FileLock(str(folder) + ".lock"):
        if not done.exists():
            build()
            done.touch()
    return folder


@pytest.fixture(scope="session")
def qwen_tokenizer_dir(tmp_path_factory):
    """Folder under which each family's saved tokenizer is cached (``<dir>/<family>``), shared by the workers."""
    return _shared(tmp_path_factory, "qwen_tokenizer")


@pytest.fixture(scope="session")
def qwen_tokenizer():
    """The base Qwen2.5-VL tokenizer (no family tokens), built in memory once per session."""
    return build_qwen_tokenizer("qwen2_5_vl")


@pytest.fixture(scope="session")
def replica_root(tmp_path_factory) -> Path:
    return _shared(tmp_path_factory, "qwen_vl_replicas")


@pytest.fixture(scope="session")
def replica_dir(replica_root, qwen_tokenizer_dir):
    """``replica_dir(family)``: the family's replica checkpoint folder, built once per session."""
    built: dict[str, Path] = {}

    def get(family: str = "qwen2_5_vl") -> Path:
        if family not in built:
            tokenizer = cached_qwen_tokenizer(qwen_tokenizer_dir, family)
            built[family] = _locked(replica_root / family,
                                    lambda: build_replica(replica_root / family, family, tokenizer_dir=tokenizer))
        return built[family]

    return get


@pytest.fixture(scope="session")
def smollm2():
    """``SmolLM2`` (model, tokenizer, load times) of SmolLM2-135M-Instruct, loaded once per session from the
    packaged GGUF (about a minute: use it from tests marked ``slow``)."""
    return load_smollm2()
