import os
import sys

import numpy as np
import pytest
import torch

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
