"""What :func:`latentprobe.load` checks before it builds anything, and the loaders' library errors as typed ones.

* :func:`checkpoint_source`, :func:`torch_dtype`, :func:`check_device_map`: the arguments (no path, ``None``, an
  unknown or integer dtype, a device this machine lacks) are refused before any file is read;
* :func:`check_checkpoint`: a local checkpoint's files (a missing folder, a file given for a folder, JSON files
  that do not parse, a folder without weights or tokenizer, shards its index names but that are missing);
* :func:`library_errors`: what transformers, huggingface_hub, safetensors or torch raise while loading becomes a
  :class:`~latentprobe.errors.LoadError` that names the checkpoint, the file and what to do, with the library's
  exception kept as ``__cause__``.
"""

from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from latentprobe.errors import (CheckpointFormatError, CheckpointNotFoundError, LatentProbeError, LoadArgumentError,
                                LoadError)

__all__ = ["checkpoint_source", "torch_dtype", "check_device_map", "check_checkpoint", "library_errors",
           "image_processor_of", "chat_template_of"]

#: JSON files of a ``save_pretrained`` folder: each must parse when present.
JSON_FILES = ("config.json", "generation_config.json", "tokenizer_config.json", "tokenizer.json",
              "special_tokens_map.json", "added_tokens.json", "preprocessor_config.json", "processor_config.json",
              "chat_template.json", "model.safetensors.index.json", "pytorch_model.bin.index.json")
#: Suffixes of a checkpoint folder's other files: given alone, the folder was meant. (Coconut's ``run.py`` saves
#: ``checkpoint_{epoch + 1}``, without a suffix: facebookresearch/coconut@07a5573e ``run.py``.)
_NOT_WEIGHTS = (".json", ".jinja", ".txt", ".md", ".py", ".yaml", ".yml", ".csv", ".model", ".tiktoken")
_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")
_TOKENIZER = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
_FLOATS = ("float32", "bfloat16", "float16")
_ACCELERATE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")


def _one_line(err: BaseException, limit: int = 300) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def checkpoint_source(model: Any, who: str = "load") -> str:
    """The checkpoint argument as a string: a folder, a state-dict file or a hub id.

    Parameters
    ----------
    model : Any
        What the caller gave.
    who : str
        The loader, named in errors.

    Returns
    -------
    str

    Raises
    ------
    LoadArgumentError
        ``None``, an empty string or another type.
    CheckpointNotFoundError
        A path (absolute, relative with a folder part, or ``~``) that does not exist and cannot be a hub id.
    """
    if model is None or isinstance(model, bytes) or not isinstance(model, (str, os.PathLike)):
        raise LoadArgumentError(f"{who}({model!r}): give the checkpoint as a folder path or a hub id (a string or "
                                f"pathlib.Path), e.g. {who}('path/to/checkpoint'); got {type(model).__name__}.")
    src = os.fspath(model)
    if not src.strip():
        raise LoadArgumentError(f"{who}({src!r}): the checkpoint path is empty; give a folder path or a hub id.")
    if src.startswith("~"):
        src = str(Path(src).expanduser())
    if not Path(src).exists() and not _HUB_ID.fullmatch(src):
        raise CheckpointNotFoundError(
            f"{who}({src!r}): no such folder or file ({Path(src).resolve()}), and it is not a hub id ('owner/name'); "
            "check the path (a relative path starts at the current folder).")
    return src


def torch_dtype(dtype: Any, where: str) -> torch.dtype | str | None:
    """``dtype`` as ``from_pretrained`` takes it: ``None``, ``"auto"`` or a floating-point ``torch.dtype``.

    Parameters
    ----------
    dtype : Any
        A ``torch.dtype``, its name (``"bfloat16"``), ``"auto"`` or ``None``.
    where : str
        The call, named in errors.

    Returns
    -------
    torch.dtype, "auto" or None

    Raises
    ------
    LoadArgumentError
        An unknown name or a dtype that is not floating point.
    """
    if dtype is None or dtype == "auto":
        return dtype
    value = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if not isinstance(value, torch.dtype):
        raise LoadArgumentError(f"{where}: dtype={dtype!r} is not a torch dtype; use one of {', '.join(_FLOATS)} "
                                "(a string or torch.<name>), 'auto' (the checkpoint's) or None.")
    if not value.is_floating_point:
        raise LoadArgumentError(f"{where}: dtype={dtype!r} is not a floating-point dtype; a model's weights and "
                                f"activations need one of {', '.join(_FLOATS)}.")
    return value


def _device_problem(device: Any) -> str | None:
    if isinstance(device, int) and not isinstance(device, bool):
        device = f"cuda:{device}"
    if isinstance(device, str) and device in ("cpu", "disk", "meta"):
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        return f"{device!r} is not a device ({_one_line(err, 120)})"
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            return f"{device!r} names a CUDA device, but this machine has none (torch.cuda.is_available() is False)"
        if dev.index is not None and dev.index >= n:
            return f"{device!r} names CUDA device {dev.index}, but this machine has {n} (0..{n - 1})"
    if dev.type == "mps" and not torch.backends.mps.is_available():
        return f"{device!r} names an MPS device, which this machine lacks"
    return None


def check_device_map(device_map: Any, where: str) -> None:
    """Refuse a ``device_map`` that names a device this machine lacks (``"cuda:0"`` on a CPU-only machine).

    Parameters
    ----------
    device_map : Any
        ``None``, an accelerate strategy (``"auto"``, ...), a device (``"cuda:0"``, ``"cpu"``, ``0``) or a dict
        of module name -> device.
    where : str
        The call, named in errors.

    Raises
    ------
    LoadArgumentError
        A device that does not exist here, or a value that is no device.
    """
    if device_map is None or device_map in _ACCELERATE_MAPS:
        return
    devices = list(device_map.values()) if isinstance(device_map, dict) else [device_map]
    problems = sorted({p for d in devices if (p := _device_problem(d)) is not None})
    if problems:
        raise LoadArgumentError(f"{where}: device_map={device_map!r}: {'; '.join(problems)}. Use device_map='cpu', "
                                "'auto' (the devices this machine has) or None.")


def check_checkpoint(src: str, where: str) -> None:
    """Check a local checkpoint's files before anything is loaded (a hub id is left to the hub).

    Parameters
    ----------
    src : str
        The checkpoint: a ``save_pretrained`` folder, a folder or file holding a state dict, or a hub id.
    where : str
        The call, named in errors.

    Raises
    ------
    LoadArgumentError
        A file that is not a state dict (``config.json`` given for its folder), or a path that is neither a file
        nor a folder.
    CheckpointFormatError
        A JSON file of the folder that does not parse.
    CheckpointNotFoundError
        A folder with neither config.json nor weights, a config.json without weights or tokenizer files, or
        shards an index names that are missing.
    """
    path = Path(src)
    if not path.exists():
        return
    if path.is_file():
        if path.suffix.lower() in _NOT_WEIGHTS:
            raise LoadArgumentError(f"{where}: {path} is a file ({path.name}), not a checkpoint; pass the folder "
                                    f"that holds it: load({str(path.parent)!r}).")
        return
    if not path.is_dir():
        raise LoadArgumentError(f"{where}: {path} is neither a folder nor a file; pass a checkpoint folder.")
    for name in JSON_FILES:
        file = path / name
        if file.is_file():
            try:
                json.loads(file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                raise CheckpointFormatError(
                    f"{where}: {file} cannot be read as JSON ({_one_line(err, 160)}); the file is damaged or cut "
                    "short: restore it from the checkpoint's source (download it again, or save_pretrained again)."
                ) from err
    weights = [n for n in _WEIGHTS if (path / n).is_file()] or sorted(p.name for p in path.glob("*.safetensors"))
    has_config = (path / "config.json").is_file()
    if not has_config and not weights and not any((path / n).is_file() for n in ("checkpoint", "pytorch_model.pt")):
        raise CheckpointNotFoundError(
            f"{where}: the folder {path} holds neither config.json nor weights, so it is not a checkpoint (a "
            "save_pretrained folder holds config.json, model.safetensors and the tokenizer files); pass the folder "
            "the checkpoint was saved or downloaded to.")
    if not has_config:
        return  # a state dict in Coconut's or CODI's official layout: detection decides
    if not weights:
        raise CheckpointNotFoundError(
            f"{where}: the folder {path} holds config.json but no weights (model.safetensors, pytorch_model.bin or a "
            "shard index); copy the weight files in, or save the model with model.save_pretrained(folder).")
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (path / index).is_file():
            shards = sorted(set(json.loads((path / index).read_text(encoding="utf-8")).get("weight_map", {}).values()))
            missing = [s for s in shards if not (path / s).is_file()]
            if missing:
                raise CheckpointNotFoundError(f"{where}: {path / index} names shard(s) {missing} that are not in "
                                              f"{path}; download the missing files.")
    if not any((path / n).is_file() for n in _TOKENIZER):
        raise CheckpointNotFoundError(
            f"{where}: the folder {path} holds no tokenizer files ({', '.join(_TOKENIZER)}); save the tokenizer "
            "into it: tokenizer.save_pretrained(folder).")


def _translate(err: BaseException, src: str, where: str, doing: str) -> LoadError:
    from importlib.metadata import version

    text = _one_line(err)
    kind = type(err).__name__
    if not Path(src).exists() and isinstance(err, OSError):
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
        why = ("HF_HUB_OFFLINE is set, so only the local cache is read and it does not hold this checkpoint" if offline
               else "the hub is unreachable, or the repository id, revision or file is wrong")
        return CheckpointNotFoundError(
            f"{where}: {src!r} could not be fetched from the Hugging Face Hub while {doing}: {why} ({kind}: {text}). "
            f"Download it where the hub is reachable (`hf download {src} --local-dir DIR`) and load the folder DIR, "
            "or check the repository id.")
    if isinstance(err, PermissionError):
        return LoadError(f"{where}: {doing} failed: {err.filename or src} cannot be read (permission denied); make "
                         "the checkpoint's files readable (chmod) or copy them to a folder you can read.")
    if "does not recognize this architecture" in text or "Unrecognized model" in text:
        return CheckpointFormatError(
            f"{where}: {Path(src) / 'config.json'}: transformers {version('transformers')} does not know its "
            f"model_type ({kind}: {text}); fix model_type in config.json, or install the transformers version the "
            "checkpoint was saved with.")
    if isinstance(err, RuntimeError) and "mismatch" in text.lower():
        return CheckpointFormatError(
            f"{where}: the weights in {src} have other shapes than its config.json describes ({kind}: {text}); the "
            "config and the weights come from different models: restore the matching files.")
    if isinstance(err, (AssertionError, RuntimeError)) and ("CUDA" in text or "cuda" in text):
        return LoadArgumentError(f"{where}: {doing} needs a device this machine lacks ({kind}: {text}); use "
                                 "device_map='cpu' or None.")
    return CheckpointFormatError(
        f"{where}: {doing} failed ({kind}: {text}); the files in {src} are damaged or are not a checkpoint that "
        f"transformers {version('transformers')} can read: compare them with the checkpoint's source.")


@contextmanager
def library_errors(src: str, where: str, doing: str) -> Iterator[None]:
    """Turn what a library raises inside the block into a :class:`~latentprobe.errors.LoadError` (typed errors of
    latentprobe pass unchanged); the library's exception is the new error's ``__cause__``.

    Parameters
    ----------
    src : str
        The checkpoint (folder, file or hub id).
    where : str
        The call, named first in the message.
    doing : str
        What was being read, with its file (``"reading config.json"``).

    Yields
    ------
    None
    """
    try:
        yield
    except LatentProbeError:
        raise
    except Exception as err:  # transformers, huggingface_hub, safetensors, torch, tokenizers: typed here
        raise _translate(err, src, where, doing) from err


def _has_processor_config(src: str, revision: str | None) -> bool:
    """Whether the checkpoint has ``preprocessor_config.json`` (a local folder's file, or the hub's / cache's)."""
    if Path(src).is_dir():
        return (Path(src) / "preprocessor_config.json").is_file()
    from transformers.utils import cached_file

    try:
        return cached_file(src, "preprocessor_config.json", revision=revision,
                           _raise_exceptions_for_missing_entries=False) is not None
    except OSError:
        return False


def image_processor_of(src: str, revision: str | None, trust_remote_code: bool, conv: Any, where: str) -> Any:
    """The checkpoint's image processor (transformers' Pil backend, no torchvision), with the convention's pixel
    bounds; transformers' Qwen2-VL defaults only when the checkpoint has no ``preprocessor_config.json``.

    Parameters
    ----------
    src : str
        The checkpoint (folder or hub id).
    revision : str or None
        The hub revision.
    trust_remote_code : bool
        Passed to ``from_pretrained``.
    conv : PromptConvention or None
        The prompt convention (its ``min_pixels`` / ``max_pixels``).
    where : str
        The call, named in errors.

    Returns
    -------
    image processor

    Raises
    ------
    CheckpointFormatError
        ``preprocessor_config.json`` is there but cannot be read as an image processor (no silent fallback to
        default image settings: they would change every image the model sees).
    """
    from transformers import AutoImageProcessor

    kw: dict[str, Any] = {}
    if conv is not None and conv.min_pixels is not None:
        kw["min_pixels"] = conv.min_pixels
    if conv is not None and conv.max_pixels is not None:
        kw["max_pixels"] = conv.max_pixels
    if not _has_processor_config(src, revision):  # no preprocessor_config.json: transformers' Qwen2-VL defaults
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        return Qwen2VLImageProcessorPil(**kw)
    with library_errors(src, where, "reading the image processor (preprocessor_config.json)"):
        return AutoImageProcessor.from_pretrained(src, revision=revision, trust_remote_code=trust_remote_code,
                                                  backend="pil", **kw)


def chat_template_of(model: str, tokenizer: Any, revision: str | None) -> None:
    """Give ``tokenizer`` the checkpoint's chat template when it is stored beside the processor.

    Parameters
    ----------
    model : str
        The checkpoint (folder or hub id).
    tokenizer : PreTrainedTokenizerBase
        Its tokenizer (left as it is when it has a template).
    revision : str or None
        The hub revision.
    """
    if getattr(tokenizer, "chat_template", None) is not None:
        return
    for name in ("chat_template.jinja", "chat_template.json"):
        path = Path(model) / name
        if not path.is_file():
            try:
                from transformers.utils import cached_file

                found = cached_file(model, name, revision=revision, _raise_exceptions_for_missing_entries=False)
            except OSError:
                found = None
            if found is None:
                continue
            path = Path(found)
        text = path.read_text()
        tokenizer.chat_template = json.loads(text)["chat_template"] if name.endswith(".json") else text
        return
