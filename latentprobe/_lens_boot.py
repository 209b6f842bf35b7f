"""The TransformerLens boot guards of :mod:`latentprobe.lens`: offline, no package installs, a copied tokenizer."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import TYPE_CHECKING, Iterator

import torch

from latentprobe.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase


# ---------------------------------------------------------------------------------------------- guards
def _never_install_torchvision() -> bool:
    """Stand-in for TransformerLens's processor fallback: report torchvision missing, install nothing."""
    return False


def _disable_package_installs() -> None:
    """Stop TransformerLens from running ``pip install torchvision`` when a processor fails to load.

    TransformerLens 4.x falls back to an unpinned install, which would replace the installed torch
    build. The fallback lives in ``...sources.transformers.helpers._ensure_torchvision``; every
    loaded TransformerLens module that holds it by name is patched as well.
    """
    import transformer_lens.model_bridge.sources.transformers.helpers as helpers

    helpers._ensure_torchvision = _never_install_torchvision
    for name, mod in list(sys.modules.items()):
        if mod is None or not name.startswith("transformer_lens"):
            continue
        if callable(getattr(mod, "_ensure_torchvision", None)):
            setattr(mod, "_ensure_torchvision", _never_install_torchvision)


@contextlib.contextmanager
def _offline_boot() -> Iterator[None]:
    """Offline Hub settings and no modality processor loading for the duration of one boot."""
    import transformer_lens.model_bridge.sources.transformers.source as source

    saved_env = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    saved_loader = source.load_modality_processor
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    # the model is in memory: there is no processor to fetch, and fetching one is where the
    # package-install fallback lives
    source.load_modality_processor = lambda *args, **kwargs: None
    try:
        yield
    finally:
        source.load_modality_processor = saved_loader
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _is_vision_language(model: torch.nn.Module) -> bool:
    cfg = getattr(model, "config", None)
    return cfg is not None and getattr(cfg, "vision_config", None) is not None


def _copy_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """A fresh tokenizer loaded from a saved copy (the bridge reconfigures the one it is given)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    with tempfile.TemporaryDirectory(prefix="latentprobe-tok-") as d:
        try:
            tokenizer.save_pretrained(d)
        except Exception as err:  # noqa: BLE001 - any failure here means the tokenizer cannot be copied
            raise InputError(
                f"could not save the tokenizer ({type(tokenizer).__name__}) to copy it for the bridge: {err}. "
                "Pass a Hugging Face tokenizer that supports save_pretrained."
            ) from err
        try:
            return AutoTokenizer.from_pretrained(d, local_files_only=True)
        except Exception:  # noqa: BLE001 - fall back to the fast class, which needs no config
            return PreTrainedTokenizerFast.from_pretrained(d, local_files_only=True)
