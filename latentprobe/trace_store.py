"""Saving and loading traces: safetensors + JSON, checked so that a damaged or mixed-up trace never loads.

A saved trace is a folder with ``trace.safetensors`` (every tensor, keyed ``{index}.{field}``) and
``trace.json`` (the spec, the run configuration, one record per example with the shape and dtype
of each of its tensors, the SHA-256 of the tensor file and an integrity hash over the JSON itself).
:func:`load_trace` checks all of it and raises :class:`~latentprobe.errors.TraceFormatError`
naming the file and the field at the first inconsistency: a truncated or swapped tensor file, an
edited JSON, a missing tensor, a shape or dtype that differs from the record, clashing indices.
Nothing is unpickled.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from latentprobe.atomic import atomic_write, atomic_write_text
from latentprobe.errors import InputError, SpecError, TraceFormatError
from latentprobe.spec import LatentSpec

__all__ = ["FORMAT_VERSION", "TENSOR_FIELDS", "load_trace", "save_trace"]

FORMAT_VERSION = 2
TENSOR_FILE, JSON_FILE = "trace.safetensors", "trace.json"
TENSOR_FIELDS = (
    "input_ids", "segments", "latent_positions", "z", "h_src", "hidden", "captured_positions",
    "captured_hidden", "answer_ids", "answer_logprobs", "first_token_logprobs", "forced_logprobs",
    "image_embeds", "image_grid_thw",
)


def _json_default(o: Any) -> Any:
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    return str(o)


def _integrity(meta: dict[str, Any]) -> str:
    body = {k: v for k, v in meta.items() if k != "integrity"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=_json_default).encode()).hexdigest()


def save_trace(trace: "LatentTrace", path: str | Path) -> Path:
    """Write ``trace`` (a :class:`~latentprobe.trace.LatentTrace`) to the folder ``path``; see the module docstring.

    Parameters
    ----------
    trace : Any
        The trace.
    path : str | Path
        The folder to write.

    Returns
    -------
    Path
        The folder.

    Raises
    ------
    InputError
        ``path`` is a file (or another non-folder): a trace is a folder of two files.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"save({str(path)!r}): {path} is a file, and a trace is saved as a folder ({TENSOR_FILE} and "
                         f"{JSON_FILE}); give a folder path (new or existing), e.g. {str(path) + '_trace'!r}.")
    path.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    records = []
    for e in trace.examples:
        rec: dict[str, Any] = {"tensors": {}}
        for f in dataclasses.fields(e):
            v = getattr(e, f.name)
            if f.name in TENSOR_FIELDS:
                if v is not None:
                    tensors[f"{e.index}.{f.name}"] = v.detach().contiguous().cpu()
                    rec["tensors"][f.name] = {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")}
            else:
                rec[f.name] = v
        records.append(rec)
    blob = save(tensors)
    meta = {"format_version": FORMAT_VERSION, "spec": trace.spec.to_dict(), "config": trace.config,
            "examples": records, "tensor_sha256": hashlib.sha256(blob).hexdigest()}
    # round-trip once so the integrity hash is computed on what a reader will parse
    meta = json.loads(json.dumps(meta, default=_json_default))
    meta["integrity"] = _integrity(meta)
    atomic_write(path / TENSOR_FILE, lambda f: f.write(blob), binary=True)
    atomic_write_text(path / JSON_FILE, json.dumps(meta, indent=1))
    return path


def _fail(path: Path, what: str) -> TraceFormatError:
    return TraceFormatError(f"{path}: {what}. Re-save the trace with LatentTrace.save, or re-run it.")


def load_trace(path: str | Path, cls: type, example_cls: type) -> Any:
    """Read and check a trace written by :func:`save_trace` (``cls``/``example_cls``: the trace classes).

    Parameters
    ----------
    path : str | Path
        The trace's folder.
    example_cls : type
        The example class (:class:`~latentprobe.trace.ExampleTrace`).

    Returns
    -------
    LatentTrace
    """
    path = Path(path)
    jf, tf = path / JSON_FILE, path / TENSOR_FILE
    if not jf.is_file() or not tf.is_file():
        raise TraceFormatError(f"{path} does not hold {JSON_FILE} and {TENSOR_FILE}; was it written by LatentTrace.save?")
    try:
        meta = json.loads(jf.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _fail(jf, f"not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise _fail(jf, "the top level is not an object")
    if meta.get("format_version") != FORMAT_VERSION:
        raise _fail(jf, f"field 'format_version' is {meta.get('format_version')!r}; this version reads {FORMAT_VERSION}")
    if meta.get("integrity") != _integrity(meta):
        raise _fail(jf, "field 'integrity' does not match the content: the file was edited after it was written")
    blob = tf.read_bytes()
    if hashlib.sha256(blob).hexdigest() != meta.get("tensor_sha256"):
        raise _fail(tf, "content differs from the SHA-256 recorded in trace.json (field 'tensor_sha256'): the tensor "
                        "file is truncated, damaged or from another trace")
    try:
        tensors = load_file(str(tf))
    except (SafetensorError, OSError, ValueError) as err:
        raise _fail(tf, f"not a readable safetensors file ({err})") from None
    try:
        spec = LatentSpec.from_dict(meta["spec"])
    except (KeyError, TypeError, SpecError) as err:
        raise _fail(jf, f"field 'spec' is not a valid LatentSpec ({err})") from None
    names = {f.name for f in dataclasses.fields(example_cls)}
    examples = []
    for row, rec in enumerate(meta.get("examples", [])):
        where = f"examples[{row}]"
        if not isinstance(rec, dict) or not isinstance(rec.get("tensors"), dict):
            raise _fail(jf, f"{where} is not an example record")
        kw: dict[str, Any] = {k: v for k, v in rec.items() if k != "tensors"}
        unknown = set(kw) - names
        if unknown:
            raise _fail(jf, f"{where} has unknown field(s) {sorted(unknown)}")
        for field in TENSOR_FIELDS:
            want = rec["tensors"].get(field)
            if want is None:
                kw[field] = None
                continue
            key = f"{kw.get('index')}.{field}"
            if key not in tensors:
                raise _fail(tf, f"tensor {key!r} ({where}.{field}) is missing")
            t = tensors[key]
            got = {"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", "")}
            if got != want:
                raise _fail(tf, f"tensor {key!r} has shape {got['shape']} {got['dtype']}, trace.json records "
                                f"{want['shape']} {want['dtype']} ({where}.{field})")
            kw[field] = t
        try:
            examples.append(example_cls(**kw))
        except TypeError as err:
            raise _fail(jf, f"{where} is incomplete ({err})") from None
    try:
        return cls(tuple(examples), spec, meta.get("config", {}))
    except TraceFormatError as err:
        raise _fail(jf, str(err)) from None
