"""Toy weights on disk: writing, loading and verifying the float16 safetensors (nothing is unpickled).

The shipped files live in the ``latentprobe/toy/weights/`` folder, each ``{variant}.safetensors`` next to
a ``{variant}.json`` record holding, among others, the file's sha256.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from latentprobe.errors import DataError

__all__ = ["save_weights", "load_weights", "file_sha256", "verify_weights"]


def save_weights(model: torch.nn.Module, path: str | Path) -> str:
    """Write the model's weights as float16 safetensors (the tied ``lm_head`` is not stored); returns sha256.

    Parameters
    ----------
    model : torch.nn.Module
        A toy model.
    path : str | Path
        The file to write.

    Returns
    -------
    str
        The file's sha256.
    """
    from safetensors.torch import save_file

    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    # a single metadata entry: the header (and so the file's hash) is then the same on every save
    save_file(sd, str(path), metadata={"format": "pt"})
    Path(path).chmod(0o644)
    return file_sha256(path)


def load_weights(model: torch.nn.Module, path: str | Path) -> torch.nn.Module:
    """Load float16 safetensors written by :func:`save_weights` into ``model`` as float32 (safetensors only).

    Parameters
    ----------
    model : torch.nn.Module
        A toy model.
    path : str | Path
        A safetensors file.

    Returns
    -------
    torch.nn.Module
        ``model``, loaded.
    """
    from safetensors.torch import load_file

    sd = {k: v.float() for k, v in load_file(str(path)).items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if m != "lm_head.weight"]
    if missing or unexpected:
        raise DataError(
            f"{path}: weights do not fit the model (missing {missing}, unexpected {unexpected}); build the model "
            "with the ``config_kwargs`` recorded in the weights' JSON file (see latentprobe.toy.load)."
        )
    model.tie_weights()
    return model.float().eval()


def file_sha256(path: str | Path) -> str:
    """The hex sha256 of the file at ``path``.

    Parameters
    ----------
    path : str | Path
        The file.

    Returns
    -------
    str
    """
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def verify_weights(path: str | Path, sha256: str) -> None:
    """Check that the file at ``path`` has the recorded ``sha256``; :class:`~latentprobe.errors.DataError` if not.

    Parameters
    ----------
    path : str | Path
        The file.
    sha256 : str
        The recorded hex sha256.
    """
    digest = file_sha256(path)
    if digest != sha256:
        raise DataError(
            f"{path}: sha256 {digest} differs from the recorded {sha256}; the file is damaged or was "
            "replaced. Restore it (reinstall the package) or retrain with "
            f"`python -m latentprobe.toy.training --out {Path(path).parent}`."
        )
