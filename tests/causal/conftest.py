"""Fixtures of the causal tests: the toy tokenizer, one random-weight toy model and a few toy inputs."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from latentprobe.toy.perturbations import toy_inputs  # noqa: E402
from latentprobe.toy.model import build_model  # noqa: E402
from latentprobe.toy.shapes import make_dataset  # noqa: E402
from latentprobe.toy.vocab import build_tokenizer  # noqa: E402


@pytest.fixture(scope="package", autouse=True)
def one_thread():
    """The toy models are tiny: one intra-op thread is fastest, and much faster on a busy machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="package")
def tok():
    return build_tokenizer()


@pytest.fixture(scope="package")
def model(tok):
    return build_model(tok.get_vocab(), seed=0)


@pytest.fixture(scope="package")
def inputs():
    return toy_inputs(make_dataset(3, 2, seed=0))
