"""Fingerprints of what a result depends on: a model's weights, user callables' source code.

:func:`weights_fingerprint` hashes a module's state dict (every name, shape, dtype and byte), once per
module: the digest is cached in a :class:`weakref.WeakKeyDictionary` keyed on the module and
recomputed only when a tensor of the state dict is replaced or modified in place (torch's version
counters). Measured cost (CPU, a 335 MB float32 toy of two Linear layers): 2.0 s per GB on this
2-core machine, about sha256's speed here (0.4-0.5 GB/s per core), so a 7B model in bf16 (15 GB)
takes about 30 s on one core. The bytes are hashed in 64 MiB blocks by a thread pool (up to 8
threads; hashlib releases the GIL), so the time divides by the free cores (not measured beyond 2
here). Tensors on an accelerator are copied to the CPU block by block. ``mode="sampled"`` hashes the
names, shapes, dtypes and 16 evenly spaced 64 KiB windows of each tensor (20 ms for the same toy): it
tells checkpoints apart, not two that differ in one weight. ``LATENTPROBE_WEIGHTS_HASH=sampled`` makes
it the default (``"full"`` otherwise).

:func:`callable_fingerprint` describes a callable by what it reads (:mod:`latentprobe.callables`): its
code, closure and defaults, the module globals and user functions it reads (transitively), a callable
object's state; a callable given a version (:func:`latentprobe.versioned`) by the version. What cannot be
read makes a resumed run refused (with a :class:`~latentprobe.errors.FingerprintWarning` when it starts)
until the callable is given a version.

The analyses' sweep fingerprints come from the helpers at the end: :func:`runner_fingerprint` (all
of a runner that results depend on), :func:`trace_fingerprint` (ids, latents, answers),
:func:`intervention_fingerprint`, :func:`perturbation_fingerprint` and :func:`inputs_fingerprint`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from latentprobe.callables import _lambda_text, _qualname, describe, source_digest  # noqa: F401 (re-exported)
from latentprobe.errors import FingerprintWarning, InputError, InterventionError
from latentprobe.interventions import Intervention, Lambda, NoLatents, RewriteSpan
from latentprobe.perturbations import InputSet, Perturbation
from latentprobe.trace import LatentTrace

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase
    from latentprobe.engine import LatentRunner

__all__ = ["weights_fingerprint", "callable_fingerprint", "tokenizer_fingerprint", "source_digest", "WEIGHT_HASH_MODES",
           "tensor_digest", "trace_fingerprint", "intervention_fingerprint", "perturbation_fingerprint",
           "inputs_fingerprint", "runner_fingerprint", "mask_rule_of"]

#: Modes of :func:`weights_fingerprint`.
WEIGHT_HASH_MODES = ("full", "sampled")
_BLOCK = 64 * 2**20  # bytes hashed per task
_WINDOW = 64 * 2**10  # bytes per window in "sampled" mode
_N_WINDOWS = 16
_CACHE: "weakref.WeakKeyDictionary[torch.nn.Module, dict[str, tuple[tuple, str]]]" = weakref.WeakKeyDictionary()


def _default_mode() -> str:
    mode = os.environ.get("LATENTPROBE_WEIGHTS_HASH", "full").strip().lower() or "full"
    if mode not in WEIGHT_HASH_MODES:
        raise InputError(f"LATENTPROBE_WEIGHTS_HASH={mode!r}; use one of {WEIGHT_HASH_MODES}.")
    return mode


def _byte_view(t: torch.Tensor) -> torch.Tensor:
    """The tensor's bytes as a flat uint8 tensor (on its own device)."""
    flat = t.detach().contiguous().reshape(-1)
    if flat.dtype == torch.uint8:
        return flat
    try:
        return flat.view(torch.uint8)
    except RuntimeError:  # dtypes torch cannot reinterpret (e.g. some quantized types)
        return torch.frombuffer(bytearray(flat.cpu().numpy().tobytes()), dtype=torch.uint8)


def _hash_block(data: torch.Tensor | list[torch.Tensor]) -> bytes:
    h = hashlib.sha256()
    for piece in data if isinstance(data, list) else [data]:
        h.update(piece.cpu().numpy())
    return h.digest()


def _blocks(data: torch.Tensor, mode: str) -> list[torch.Tensor | list[torch.Tensor]]:
    """The slices of a tensor's bytes that are hashed (one digest per item)."""
    n = data.numel()
    if mode == "full":
        return [data[i:i + _BLOCK] for i in range(0, n, _BLOCK)]
    if n <= _N_WINDOWS * _WINDOW:
        return [data]
    starts = [(n - _WINDOW) * k // (_N_WINDOWS - 1) for k in range(_N_WINDOWS)]
    return [[data[s:s + _WINDOW] for s in starts]]


def _versions(state: dict[str, torch.Tensor]) -> tuple:
    return tuple((k, id(v), v._version, v.data_ptr() if v.device.type != "meta" else 0)
                 for k, v in state.items() if isinstance(v, torch.Tensor))


def weights_fingerprint(module: torch.nn.Module, *, mode: str | None = None, threads: int | None = None) -> str:
    """A hash of ``module.state_dict()``: names, shapes, dtypes and bytes, in order.

    Parameters
    ----------
    module : torch.nn.Module
        The model (its persistent buffers count too; tied weights are hashed under each name).
    mode : {"full", "sampled"}, optional
        ``"full"`` hashes every byte; ``"sampled"`` 16 windows of 64 KiB per tensor (see the module
        docstring). Default: ``"full"``, or ``$LATENTPROBE_WEIGHTS_HASH``.
    threads : int, optional
        Hashing threads (default: up to 8, at most the CPU count).

    Returns
    -------
    str
        ``"sha256:<32 hex>"`` (``"sampled-sha256:..."`` in sampled mode). Cached per module and mode;
        recomputed when a tensor is replaced or modified in place.

    Raises
    ------
    InputError
        If ``module`` is not a ``torch.nn.Module`` or ``mode`` is unknown.
    """
    if not isinstance(module, torch.nn.Module):
        raise InputError(f"weights_fingerprint takes a torch.nn.Module, got {type(module).__name__}.")
    mode = _default_mode() if mode is None else mode
    if mode not in WEIGHT_HASH_MODES:
        raise InputError(f"mode={mode!r}; use one of {WEIGHT_HASH_MODES}.")
    state = module.state_dict(keep_vars=True)
    versions = _versions(state)
    cached = _CACHE.get(module, {}).get(mode)
    if cached is not None and cached[0] == versions:
        return cached[1]
    head = hashlib.sha256()
    tasks: list[torch.Tensor | list[torch.Tensor]] = []
    counts: list[int] = []
    for name, t in state.items():
        if not isinstance(t, torch.Tensor):
            head.update(f"{name}|{type(t).__name__}|{t!r}\n".encode())
            counts.append(0)
            continue
        head.update(f"{name}|{tuple(t.shape)}|{t.dtype}|{t.device.type == 'meta'}\n".encode())
        blocks = [] if t.device.type == "meta" else _blocks(_byte_view(t), mode)
        tasks.extend(blocks)
        counts.append(len(blocks))
    workers = threads or min(8, os.cpu_count() or 1)
    with torch.no_grad():
        if workers > 1 and len(tasks) > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                digests = list(pool.map(_hash_block, tasks))
        else:
            digests = [_hash_block(b) for b in tasks]
    head.update(b"".join(digests))
    prefix = "sha256" if mode == "full" else "sampled-sha256"
    digest = f"{prefix}:{head.hexdigest()[:32]}"
    _CACHE.setdefault(module, {})[mode] = (versions, digest)
    return digest


_TOK_CACHE: "weakref.WeakKeyDictionary[Any, tuple[int, str]]" = weakref.WeakKeyDictionary()


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str | None:
    """A hash of a tokenizer's class, vocabulary (token -> id) and special tokens; cached per tokenizer
    (recomputed when its length changes). ``None`` for ``None``.

    Parameters
    ----------
    tokenizer : PreTrainedTokenizerBase
        The tokenizer.
    """
    if tokenizer is None:
        return None
    n = len(tokenizer) if hasattr(tokenizer, "__len__") else -1
    try:
        cached = _TOK_CACHE.get(tokenizer)
    except TypeError:  # not weak-referenceable
        cached = None
    if cached is not None and cached[0] == n:
        return cached[1]
    h = hashlib.sha256(_qualname(type(tokenizer)).encode())
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    for tok, idx in sorted(vocab.items(), key=lambda kv: (kv[1], kv[0])):
        h.update(f"{idx}\t{tok}\n".encode("utf-8", "surrogatepass"))
    special = getattr(tokenizer, "special_tokens_map", None)
    h.update(repr(sorted((special or {}).items(), key=repr)).encode())
    digest = "sha256:" + h.hexdigest()[:16]
    try:
        _TOK_CACHE[tokenizer] = (n, digest)
    except TypeError:
        pass
    return digest


def callable_fingerprint(fn: object, *, what: str = "callable") -> dict[str, Any] | None:
    """A JSON-ready description of a callable that changes when its code, or anything it reads, does.

    Its bytecode and source, closure, defaults, the module globals and the user functions and classes it
    reads (transitively), a callable object's class and state, a module's weights; a version given with
    :func:`latentprobe.versioned` instead of all that (see :mod:`latentprobe.callables`). Values that cannot
    be read are listed under ``"needs_version"`` with a per-process token, so that a resumed run is refused
    until the callable is given a version; a :class:`~latentprobe.errors.FingerprintWarning` says so.

    Parameters
    ----------
    fn : callable or None
        A function, lambda, class, bound method, :func:`functools.partial`, callable object or
        ``torch.nn.Module``.
    what : str
        How to name it in the warning (``"mask rule"``, ``"logits processor"``, ...).

    Returns
    -------
    dict or None
        ``{"name": qualified name, "source": "sha256:..." or None, ...}`` (``"code"``, ``"values"``,
        ``"globals"``, ``"class"``, ``"state"``, ``"self"``, ``"weights"``, ``"partial"``; or ``"version"``);
        ``None`` for None.
    """
    if fn is None:
        return None
    out, unreadable = describe(fn, module_hash=weights_fingerprint)
    if unreadable:
        warnings.warn(
            f"the {what} {out.get('name')} reads what cannot be fingerprinted ({'; '.join(unreadable[:3])}"
            f"{'; ...' if len(unreadable) > 3 else ''}): a run that uses it cannot be resumed in another process. "
            "Give it an explicit version, latentprobe.versioned(fn, version='1'), and change the version when "
            "its behaviour changes.", FingerprintWarning, stacklevel=2)
    return out


# --------------------------------------------------------------------------- what analyses' results depend on
def tensor_digest(t: torch.Tensor) -> dict[str, Any]:
    """``{"shape": [...], "sha1": <16 hex>}`` of a tensor's float32 values.

    Parameters
    ----------
    t : torch.Tensor
        The tensor.
    """
    a = t.detach().float().cpu().contiguous()
    return {"shape": list(a.shape), "sha1": hashlib.sha1(a.numpy().tobytes()).hexdigest()[:16]}


def trace_fingerprint(trace: LatentTrace) -> str:
    """A short hash of a trace's example ids, latents and answer tokens (16 hex characters).

    Parameters
    ----------
    trace : LatentTrace
        The trace.

    Examples
    --------
    >>> from latentprobe import toy
    >>> from latentprobe.fingerprint import trace_fingerprint
    >>> tm = toy.load("mediated")
    >>> trace = tm.run(tm.examples("test", 2))
    >>> len(trace_fingerprint(trace)), trace_fingerprint(trace) == trace_fingerprint(trace.select([0, 1]))
    (16, True)
    """
    h = hashlib.sha1()
    for e in trace:
        h.update(e.example_id.encode())
        h.update(e.z.detach().float().cpu().contiguous().numpy().tobytes())
        h.update(e.answer_ids.detach().cpu().numpy().astype(np.int64).tobytes())
    return h.hexdigest()[:16]


def _user_class_source(obj: Any) -> dict[str, Any]:
    """``{"class_source": ..., "class_code": ...}`` for a class defined outside latentprobe (its code, and what
    it reads, decide the results)."""
    mod = type(obj).__module__ or ""
    if mod == "latentprobe" or mod.startswith("latentprobe."):
        return {}
    return {"class_source": source_digest(type(obj)), "class_code": callable_fingerprint(type(obj))}


def _callable_name(fn: Any) -> str | None:
    if fn is None:
        return None
    return getattr(fn, "__qualname__", None) or type(fn).__qualname__


def _field_value(v: Any, where: str) -> Any:
    if isinstance(v, torch.Tensor):
        return tensor_digest(v)
    if isinstance(v, LatentTrace):
        return {"trace": trace_fingerprint(v), "n": len(v)}
    if isinstance(v, Intervention):
        return intervention_fingerprint(v)
    if isinstance(v, tuple):
        return [_field_value(x, where) for x in v]
    if callable(v):
        return {"name": _callable_name(v), "code": callable_fingerprint(v, what=where)}
    return v


def intervention_fingerprint(obj: object) -> Any:
    """JSON-ready description of an intervention: fields by value, tensors and traces by digest,
    callables by name and source hash (:func:`callable_fingerprint`).

    Parameters
    ----------
    obj : object
        An intervention, a callable, or ``None``.

    Raises
    ------
    InterventionError
        If ``obj`` is neither an :class:`~latentprobe.interventions.Intervention` nor a callable.

    Examples
    --------
    >>> from latentprobe import Scale
    >>> from latentprobe.fingerprint import intervention_fingerprint
    >>> intervention_fingerprint(Scale(0.5))["type"]
    'Scale'
    """
    if isinstance(obj, NoLatents):
        return {"type": "NoLatents"}
    if isinstance(obj, Lambda):
        name = obj.name_ or _callable_name(obj.fn)
        return {"type": "Lambda", "fn": name, "code": callable_fingerprint(obj.fn, what=f"Lambda {name!r}")}
    if isinstance(obj, Intervention) and dataclasses.is_dataclass(obj):
        d: dict[str, Any] = {"type": type(obj).__name__, **_user_class_source(obj)}
        for f in dataclasses.fields(obj):
            d[f.name] = _field_value(getattr(obj, f.name), f"{type(obj).__name__}.{f.name}")
        if isinstance(obj, RewriteSpan):  # the texts, not only the file's name: an edited file is another condition
            d["texts_sha256"] = hashlib.sha256(json.dumps(obj.texts(), sort_keys=True).encode()).hexdigest()
        return d
    if isinstance(obj, Intervention):
        return {"type": type(obj).__name__, "config": obj.to_config(), "class_source": source_digest(type(obj))}
    if callable(obj):
        return {"type": "callable", "fn": _callable_name(obj), "code": callable_fingerprint(obj, what="intervention")}
    raise InterventionError(f"{obj!r} is not an intervention or a callable (z, step, example) -> z.")


def perturbation_fingerprint(p: Perturbation) -> dict[str, Any]:
    """:meth:`Perturbation.to_config` plus the source hash of every callable field (``{field}_code``)
    and of the class when it is defined outside latentprobe.

    Parameters
    ----------
    p : Perturbation
        The perturbation.
    """
    cfg = dict(p.to_config())
    if dataclasses.is_dataclass(p):
        for f in dataclasses.fields(p):
            v = getattr(p, f.name)
            if callable(v) and not isinstance(v, type):
                cfg[f"{f.name}_code"] = callable_fingerprint(v, what=f"perturbation {p.name!r} ({f.name})")
    cfg.update(_user_class_source(p))
    return cfg


def inputs_fingerprint(inputs: InputSet) -> dict[str, Any]:
    """An input set's fingerprint (ids, prompts, images, gold), a hash of its metadata and its relabel rule.

    Parameters
    ----------
    inputs : InputSet
        The input set.
    """
    meta = json.dumps([dict(m) for m in inputs.meta], sort_keys=True, default=repr)
    return {"data": inputs.fingerprint(), "meta": hashlib.sha1(meta.encode()).hexdigest()[:16],
            "relabel": callable_fingerprint(inputs.relabel, what="InputSet.relabel")}


def mask_rule_of(runner: LatentRunner) -> Any:
    """The runner's attention mask rule (``runner.mask_rule``; ``None`` when it has none)."""
    return getattr(runner, "mask_rule", None)


def runner_fingerprint(runner: LatentRunner) -> dict[str, Any]:
    """Everything about a runner that an analysis's results depend on, JSON-ready.

    The model's class, a hash of its weights (:func:`weights_fingerprint`, computed once per model
    and cached), the whole spec (``spec.to_dict()``), the mask rule's, projection's and image
    processor's code, the tokenizer's vocabulary hash, the dtype, and the layer count and width.
    Read through public attributes only. The device is left out, so that a sweep may resume on
    another machine.

    Parameters
    ----------
    runner : LatentRunner
        The runner.
    """
    model = runner.model
    dtype = getattr(runner, "dtype", None)
    if dtype is None:
        dtype = next((p.dtype for p in model.parameters()), None)
    return {"model": type(model).__name__, "weights": weights_fingerprint(model), "spec": runner.spec.to_dict(),
            "mask_rule": callable_fingerprint(mask_rule_of(runner), what="mask rule"),
            "projection": callable_fingerprint(getattr(runner, "projection", None), what="projection"),
            "image_processor": callable_fingerprint(getattr(runner, "image_processor", None),
                                                    what="image processor"),
            "tokenizer": tokenizer_fingerprint(runner.tokenizer), "dtype": str(dtype),
            "n_layers": int(runner.n_layers), "hidden_size": int(runner.hidden_size)}
