"""Attention rows for chosen queries only: captured at the model's own attention call, never as a T x T map.

Every attention module of transformers 5 (GPT-2, Llama, Qwen2 / Qwen2.5-VL, ...) computes its queries
and keys (projection, then the model's own rotary embedding: Qwen2.5-VL's multimodal RoPE sections are
already merged into the ``cos``/``sin`` it passes), appends the keys to the KV cache, then hands
``(module, query, key, value, attention_mask, scaling=..., **kwargs)`` to the function
``ALL_ATTENTION_FUNCTIONS.get_interface(config._attn_implementation, eager_attention_forward)`` returns
(``transformers/models/llama/modeling_llama.py``, ``LlamaAttention.forward``; the same call in
``modeling_gpt2.py`` and ``modeling_qwen2_5_vl.py``, transformers 5.24.0 as installed here).

:func:`capture_rows` wraps that function for the duration of one forward: the wrapper calls the
implementation the model was loaded with (sdpa, flash, eager; nothing is switched) and, for the
attention modules of the model being read, also computes ``softmax(q_rows k^T * scaling + mask_rows)``
for the selected query rows only, with the keys as the model passed them (after RoPE, the whole
cached sequence), key/value heads shared by ``num_heads / num_kv_heads`` query heads (grouped-query
attention, as ``repeat_kv`` does), the model's mask (its 4-D boolean or additive mask, a 2-D padding
mask, or causal when it passes none, as sdpa's ``is_causal`` path does), its scaling and its logit
soft-capping. Extra memory is ``rows x heads x keys`` per layer.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import Any, Callable, Iterator

import torch
from einops import rearrange
from jaxtyping import Float
from torch import Tensor

from latentprobe.errors import ModelStructureError

__all__ = ["capture_rows", "row_attention", "attention_modules"]

_LOCK = threading.RLock()  # one capture installs and restores the wrappers at a time


def row_attention(q: Float[Tensor, "b h n d"], k: Float[Tensor, "b g t d"], *, rows: Tensor, scaling: float,
                  mask: Tensor | None, q_len: int, softcap: float | None = None,
                  sliding_window: int | None = None) -> Float[Tensor, "b h n t"]:
    """Attention probabilities of query rows ``rows`` over all keys, computed for those rows only.

    Parameters
    ----------
    q : Tensor
        ``[b, heads, n, d]`` queries of the selected rows (after RoPE).
    k : Tensor
        ``[b, kv_heads, t, d]`` keys (after RoPE); ``heads`` must be a multiple of ``kv_heads``.
    rows : Tensor
        ``[n]`` row indices of the selected queries among the ``q_len`` queries of the call.
    scaling : float
        The model's score scaling.
    mask : Tensor or None
        The mask the model passed: ``[b, 1 or heads, q_len, t]`` boolean (True = attend) or additive, ``[b, t]``
        padding, or ``None`` (causal).
    q_len : int
        Number of queries of the call (the last ``q_len`` of the ``t`` positions).
    softcap : float, optional
        Logit soft-capping (``tanh(s / c) * c``) where the model applies it.
    sliding_window : int, optional
        Window of a sliding-window layer, applied when the model passes no mask.

    Returns
    -------
    Tensor
        ``[b, heads, n, t]`` float32 probabilities; each row sums to 1.

    Examples
    --------
    >>> import torch
    >>> q, k = torch.randn(1, 4, 2, 8), torch.randn(1, 2, 5, 8)
    >>> p = row_attention(q, k, rows=torch.tensor([1, 4]), scaling=8 ** -0.5, mask=None, q_len=5)
    >>> tuple(p.shape), bool(torch.allclose(p.sum(-1), torch.ones(1, 4, 2))), float(p[0, :, 0, 2:].abs().max())
    ((1, 4, 2, 5), True, 0.0)
    """
    b, h, n, _ = q.shape
    g, t = k.shape[1], k.shape[2]
    if h % g:
        raise ModelStructureError(f"attention rows: {h} query heads are not a multiple of {g} key/value heads.")
    # query head h reads key/value head h // (h / g), as repeat_kv lays them out; no key is copied
    qg = rearrange(q.float(), "b (g r) n d -> b g (r n) d", g=g)
    scores = torch.matmul(qg, k.float().transpose(-1, -2)) * scaling
    scores = rearrange(scores, "b g (r n) t -> b (g r) n t", n=n)
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    rows = rows.to(scores.device)
    qpos = rows + (t - q_len)  # absolute position of each query among the keys
    kpos = torch.arange(t, device=scores.device)
    if mask is None or mask.dim() == 2:
        allowed = kpos[None, :] <= qpos[:, None]
        if mask is None and sliding_window is not None:
            allowed = allowed & (kpos[None, :] > qpos[:, None] - sliding_window)
        allowed = allowed[None, None]
        if mask is not None:
            allowed = allowed & mask[:, None, None, -t:].bool().to(scores.device)
        scores = scores.masked_fill(~allowed, float("-inf"))
    else:
        m = mask.to(scores.device)[:, :, rows][..., :t]
        scores = scores.masked_fill(~m, float("-inf")) if m.dtype == torch.bool else scores + m.float()
    return torch.softmax(scores, dim=-1)


def attention_modules(layers: torch.nn.ModuleList) -> dict[int, int]:
    """``id(module) -> layer`` for every submodule of every decoder layer (the wrapper learns its layer here).

    Parameters
    ----------
    layers : torch.nn.ModuleList
        The decoder layers.

    Returns
    -------
    dict[int, int]
    """
    return {id(m): i for i, layer in enumerate(layers) for m in layer.modules()}


def _eager_default(module: Any) -> Callable[..., Any]:
    fn = getattr(sys.modules.get(type(module).__module__), "eager_attention_forward", None)
    if fn is None:
        raise ModelStructureError(f"{type(module).__name__} (module {type(module).__module__}) has no "
                                  "eager_attention_forward: attention rows read the transformers 5 attention "
                                  "interface.")
    return fn


@contextlib.contextmanager
def capture_rows(model: torch.nn.Module, layer_of: dict[int, int], rows: Tensor,
                 sink: Callable[[int, Tensor], None], layers: set[int] | None = None) -> Iterator[None]:
    """While open, every attention call of ``model``'s decoder layers also hands ``sink(layer, probs)`` the rows.

    Parameters
    ----------
    model : torch.nn.Module
        The Hugging Face model (its attention implementation is read from its configs, and kept).
    layer_of : dict[int, int]
        :func:`attention_modules` of its decoder layers.
    rows : Tensor
        Query rows (positions of the forward's queries) to compute.
    sink : callable
        Receives the layer (0-based decoder layer) and ``[b, heads, n, t]`` probabilities.
    layers : set of int, optional
        Decoder layers to compute (default all).

    Yields
    ------
    None
    """
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    impls = {getattr(c, "_attn_implementation", None) for c in _configs(model)} - {None}
    if not impls:
        raise ModelStructureError(f"{type(model).__name__}: no config names an attention implementation; "
                                  "attention rows need a transformers 5 model.")
    with _LOCK:
        saved = {key: ALL_ATTENTION_FUNCTIONS._local_mapping.get(key) for key in impls}
        for key in impls:
            inner = saved[key] if saved[key] is not None else ALL_ATTENTION_FUNCTIONS._global_mapping.get(key)
            ALL_ATTENTION_FUNCTIONS[key] = _wrapper(inner, layer_of, rows, sink, layers)
        try:
            yield
        finally:
            for key, fn in saved.items():
                if fn is None:
                    ALL_ATTENTION_FUNCTIONS._local_mapping.pop(key, None)
                else:
                    ALL_ATTENTION_FUNCTIONS[key] = fn


def _configs(model: torch.nn.Module) -> list[Any]:
    cfg = getattr(model, "config", None)
    out = [cfg] if cfg is not None else []
    for name in ("text_config", "get_text_config"):
        sub = getattr(cfg, name, None)
        sub = sub() if callable(sub) else sub
        if sub is not None:
            out.append(sub)
    return out


def _wrapper(inner: Callable[..., Any] | None, layer_of: dict[int, int], rows: Tensor,
             sink: Callable[[int, Tensor], None], layers: set[int] | None) -> Callable[..., Any]:
    def attention_with_rows(module: Any, query: Tensor, key: Tensor, value: Tensor, attention_mask: Tensor | None,
                            *args: Any, **kwargs: Any) -> Any:
        fn = inner if inner is not None else _eager_default(module)
        layer = layer_of.get(id(module))
        if layer is not None and (layers is None or layer in layers):
            if kwargs.get("s_aux") is not None:
                raise ModelStructureError(f"{type(module).__name__} (layer {layer}) uses attention sinks (s_aux); "
                                          "attention rows do not model them.")
            scaling = kwargs.get("scaling")
            scaling = query.shape[-1] ** -0.5 if scaling is None else float(scaling)
            with torch.no_grad():
                probs = row_attention(query[:, :, rows.to(query.device)], key, rows=rows, scaling=scaling,
                                      mask=attention_mask, q_len=query.shape[2], softcap=kwargs.get("softcap"),
                                      sliding_window=kwargs.get("sliding_window"))
            sink(layer, probs)
        return fn(module, query, key, value, attention_mask, *args, **kwargs)

    return attention_with_rows
