"""Where a study's model comes from: ``[model] source`` (and ``base``, ``weights``) resolved like the data roots.

A source is one of

* ``"toy:<variant>"``: a toy model; its shipped weights, or with ``weights = "FOLDER"`` the weights
  ``latentprobe toy train --out FOLDER`` wrote (``FOLDER/<variant>.safetensors`` and ``.json``);
* a local folder: ``~`` is expanded and a relative path resolves against the study file's folder
  (as ``[data] root`` does); the resolved absolute path is what the study records and fingerprints;
* a Hugging Face Hub id ``owner/name`` (or a one-part id such as ``gpt2``), passed on as written.

A value that exists as a folder beside the study file is that folder. A value that looks like a path
(it starts with ``.``, ``/`` or ``~``, or has a path separator and is not a plausible ``owner/name``
hub id) must exist: the error names the path tried. A hub id the hub cannot serve (offline, unknown
repository) fails when the model loads, with :func:`load_failure` saying how to point at a local
folder instead.

Examples
--------
>>> is_hub_id("NOVAglow646/Monet-7B"), is_hub_id("gpt2"), is_hub_id("../monet"), is_hub_id("a/b/c")
(True, True, False, False)
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latentprobe.errors import StudyError

if TYPE_CHECKING:
    from latentprobe.study._toml import Table

__all__ = ["read_model_table", "is_hub_id", "looks_like_path", "resolve_source", "resolve_folder", "load_failure"]

# the Hub's repository names: letters, digits, '-', '_', '.', not starting or ending with '-' or '.'
_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_HUB_ID = re.compile(rf"^(?:{_PART}/)?{_PART}$")


def is_hub_id(value: str) -> bool:
    """Whether ``value`` is a plausible Hugging Face Hub id (``owner/name`` or a one-part legacy id).

    Parameters
    ----------
    value : str
        The ``[model]`` value.

    Returns
    -------
    bool
    """
    return bool(_HUB_ID.match(value)) and ".." not in value


def looks_like_path(value: str) -> bool:
    """Whether ``value`` can only be meant as a local path (``.``, ``/``, ``~`` first, or separators that no
    hub id has).

    Parameters
    ----------
    value : str
        The ``[model]`` value.

    Returns
    -------
    bool
    """
    if value.startswith((".", "/", "~")):
        return True
    seps = [s for s in (os.sep, os.altsep, "/") if s]
    return any(s in value for s in seps) and not is_hub_id(value)


def resolve_folder(value: str, study_dir: Path) -> Path:
    """``value`` with ``~`` expanded, resolved against ``study_dir`` when relative.

    Parameters
    ----------
    value : str
        A folder as the study file writes it.
    study_dir : Path
        The study file's folder.

    Returns
    -------
    Path
        The absolute path.
    """
    path = Path(value).expanduser()
    return (path if path.is_absolute() else study_dir / path).resolve()


def resolve_source(value: str, study_dir: Path, *, what: str = "a local folder or a hub id") -> tuple[str, str | None]:
    """``(resolved source, problem)``: a local folder's absolute path, or the hub id as written.

    ``problem`` is ``None``, or the reason the value cannot be used (a path that does not exist),
    naming the path tried.

    Parameters
    ----------
    value : str
        ``[model] source`` or ``base`` as written.
    study_dir : Path
        The study file's folder.
    what : str
        What the key takes, for the problem's advice.

    Returns
    -------
    tuple of (str, str or None)
        The resolved source, and the problem or ``None``.
    """
    local = resolve_folder(value, study_dir)
    if local.exists():
        return str(local), None
    if looks_like_path(value):
        return str(local), (f"folder {local} does not exist (resolved from {value!r}: '~' is your home folder, a "
                            f"relative path starts at the study file's folder {study_dir}); give {what}")
    return value, None


def load_failure(source: str, err: BaseException, where: str, key: str = "source") -> StudyError:
    """The :class:`StudyError` for a model that could not be loaded from ``source`` (a folder or a hub id),
    the value of ``[model]`` key ``key``.

    Parameters
    ----------
    source : str
        The folder (absolute) or the hub id that failed.
    err : BaseException
        What the loader raised.
    where : str
        The study file, named first.
    key : str
        The ``[model]`` key that holds ``source`` (``"source"`` or ``"base"``).

    Returns
    -------
    StudyError
        The error to raise: what failed and how to point at a local folder instead.
    """
    reason = " ".join(str(err).split())[:400]
    if Path(source).is_absolute():
        return StudyError(f"{where}: [model] key '{key}': the folder {source} could not be loaded as a checkpoint "
                          f"({type(err).__name__}: {reason}); check that it holds config.json, the weights and the "
                          "tokenizer files.")
    return StudyError(f"{where}: [model] key '{key}': {source!r} could not be fetched from the Hugging Face Hub "
                      f"({type(err).__name__}: {reason}); offline, or the repository id is wrong. Download it where "
                      f"the hub is reachable (`hf download {source} --local-dir DIR`) and set {key} = \"DIR\" (a "
                      "local folder: '~' is your home folder, a relative path starts at the study file's folder).")


def read_model_table(t: Table, check_paths: bool, dtypes: tuple[str, ...]) -> dict[str, Any]:
    """The keyword arguments of :class:`~latentprobe.study.config.ModelConfig` from the ``[model]`` table:
    sources resolved and checked, adapter and toy rules applied.

    Parameters
    ----------
    t : Table
        The ``[model]`` table (``latentprobe.study._toml.Table``).
    check_paths : bool
        Check that local folders exist.
    dtypes : tuple of str
        The accepted ``dtype`` values.

    Returns
    -------
    dict
        ``{field: value}`` of a ``ModelConfig``.

    Raises
    ------
    StudyError
        A key is wrong; the message names it and says how to fix it.
    """
    from latentprobe.presets import get_preset, list_presets

    source = t.get("source", str, hint='"toy:mediated", a local folder or a hub id')
    preset = t.get("preset", str, None, choices=tuple(list_presets()))
    weights = t.get("weights", str, None)
    if source.startswith("toy:"):
        from latentprobe.study.toys import toy_variants

        if source[4:] not in toy_variants():
            raise t.error("source", f"unknown toy variant {source[4:]!r}",
                          f"use toy:<one of {', '.join(toy_variants())}>")
        if preset not in (None, "toy", "toy-text"):
            raise t.error("preset", f"the toy models run their own spec, not {preset!r}", "remove preset")
        if weights is not None:
            folder = resolve_folder(weights, t.file.parent)
            files = [folder / f"{source[4:]}{ext}" for ext in (".safetensors", ".json")]
            if check_paths and not all(f.is_file() for f in files):
                raise t.error("weights", f"{folder} holds no {files[0].name} and {files[1].name} (resolved from "
                              f"{weights!r})", "give the folder `latentprobe toy train --out FOLDER` wrote")
            weights = str(folder)
    else:
        if preset is None:
            raise t.error("preset", "is missing (needed for a checkpoint)",
                          f"add preset = one of {', '.join(list_presets())}")
        if weights is not None:
            raise t.error("weights", "applies to source = \"toy:<variant>\" only", "give the checkpoint's folder "
                          "as source")
        source, problem = resolve_source(source, t.file.parent)
        if problem and check_paths:
            raise t.error("source", problem, "fix the path, or give a hub id such as \"owner/name\"")
    base = t.get("base", str, None)
    if base is not None:
        base, problem = resolve_source(base, t.file.parent)
        if problem and check_paths:
            raise t.error("base", problem, "fix the path, or give a hub id such as \"gpt2\"")
    cfg = dict(source=source, preset=preset, dtype=t.get("dtype", str, None, choices=dtypes),
               device_map=t.get("device_map", str, None), revision=t.get("revision", str, None),
               trust_remote_code=t.get("trust_remote_code", bool, False), base=base,
               num_latents=t.get("num_latents", int, None, min_value=1), weights=weights)
    adapters = [p for p in list_presets() if get_preset(p).checkpoint == "adapter"]  # preset data: CODI's
    adapter = preset in adapters
    if adapter and cfg["base"] is None:
        raise t.error("base", f"is missing (a {preset} checkpoint holds only adapter (LoRA) and projection weights)",
                      'add base = "gpt2" (or the base model it was trained on)')
    if not adapter and cfg["base"] is not None:
        raise t.error("base", "applies to presets whose checkpoints are adapters (checkpoint = \"adapter\": "
                      f"{', '.join(adapters)})", "remove it")
    if source.startswith("toy:") and cfg["num_latents"] is not None:
        raise t.error("num_latents", "the toy models run their own spec", "remove it")
    for key in ("dtype", "device_map", "revision"):  # the toy runs float32 on the CPU, from the shipped weights
        if source.startswith("toy:") and cfg[key] is not None:
            raise t.error(key, "does not apply to the toy models (they run float32 on the CPU, from the shipped "
                          "weights or `weights`)", "remove it")
    return cfg
