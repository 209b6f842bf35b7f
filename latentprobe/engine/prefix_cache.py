"""A KV cache for sweeps: each example's shared prefix stored once, every condition row attending to it.

:func:`latentprobe.engine.fork.prefill_shared` prefills one prefix per example (a *group* of rows, one row
per condition). Copying that prefix's keys and values into every row (transformers' ``DynamicCache``
forked with ``reorder_cache``) costs M copies of identical content, and ``DynamicCache`` concatenates
every layer anew at every decode step. :class:`SharedPrefixCache` instead keeps

* the **prefix block** of each group once: views of the prefill's own cache (no copy), and
* a **suffix block** per row, preallocated for the rest of the prefix and the decode budget (written in
  place at each step; it grows only if a run outlives its budget, counted in ``grown``).

Attention over the two blocks is computed by :func:`shared_prefix_attention`, registered with
transformers' ``AttentionInterface`` and switched on for the decoder's attention modules only while a
forward runs on the cache (:func:`attached`). Per group, the rows' queries meet the group's prefix keys
in one matrix product (each prefix key is read once per group, not once per row); the suffix block is
one batched product; the two partial softmaxes are merged by their log-sum-exp. The result equals
attention over the concatenated keys up to float rounding (``tests/engine/test_many.py`` compares the
sweep against the copied cache and against each condition run alone, for every preset family).

Queries never see another group's prefix; padding columns of the suffix are masked; a mask rule
(segment codes) applies to both blocks, each query always keeping itself, as
:func:`~latentprobe.engine.masks.segment_attention_mask` does.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Any, Iterator, Sequence

import torch
from torch import Tensor

from latentprobe.engine.masks import MaskRule
from latentprobe.errors import ModelStructureError

__all__ = ["SharedPrefixCache", "shared_prefix_attention", "attached", "supports_shared", "cache_nbytes",
           "ATTENTION_NAME"]

#: The name :func:`shared_prefix_attention` is registered under in transformers' ``AttentionInterface``.
ATTENTION_NAME = "latentprobe_shared_prefix"
_ACTIVE: ContextVar["SharedPrefixCache | None"] = ContextVar("latentprobe_shared_prefix", default=None)

try:  # transformers' base class: isinstance checks in the models accept the cache
    from transformers.cache_utils import Cache as _Base
except ImportError:  # pragma: no cover
    _Base = object  # type: ignore[assignment,misc]


def _index(members: list[int]) -> slice | Tensor:
    """Rows as a slice when they form an arithmetic progression (a view), else as an index tensor."""
    if len(members) == 1:
        return slice(members[0], members[0] + 1)
    step = members[1] - members[0]
    if step > 0 and all(b - a == step for a, b in zip(members, members[1:])):
        return slice(members[0], members[-1] + 1, step)
    return torch.tensor(members, dtype=torch.long)


class SharedPrefixCache(_Base):
    """Prefix keys/values once per group, suffix keys/values per row, preallocated.

    Parameters
    ----------
    prefix : Sequence[tuple[Tensor, Tensor]]
        Per decoder layer, the prefill's keys and values ``[G, kv_heads, P, head_dim]`` (one row per group,
        each left-padded to ``P``).
    pads : Sequence[int]
        Per group, its padding columns at the start of ``P``.
    group : Tensor
        ``[B]``: each row's group.
    prefix_segs : Tensor
        ``[G, P]`` segment codes of the prefix (read only with a mask rule).
    capacity : int
        Suffix positions to preallocate per row (the rest of the prefix plus the decode budget).
    rule : MaskRule | None
        The runner's attention rule, or ``None``.
    n_layers : int
        Decoder layers (when there is no prefix).
    device : torch.device | str | None
        Where the masks go (default: the prefix's device, else the CPU).
    """

    def __init__(self, prefix: Sequence[tuple[Tensor, Tensor]], pads: Sequence[int], group: Tensor,
                 prefix_segs: Tensor, capacity: int, rule: MaskRule | None, n_layers: int,
                 device: torch.device | str | None = None) -> None:
        self.layers = []  # transformers' Cache API: no layer objects of its own
        self.layer_class_to_replicate = None
        self.offloading = False
        g = group.tolist()
        G = len(pads)
        self.members = [[b for b, x in enumerate(g) if x == k] for k in range(G)]
        self.rows = [_index(m) for m in self.members]
        self.n_rows, self.n_layers = len(g), n_layers
        P = prefix[0][0].shape[2] if prefix else 0
        self.device = torch.device(device) if device is not None else (prefix[0][0].device if prefix else
                                                                       torch.device("cpu"))
        self.rows = [r if isinstance(r, slice) else r.to(self.device) for r in self.rows]
        self.lengths = [P - p for p in pads]
        # per layer, per group: views [kv_heads, P_g, head_dim] of the prefill's cache (nothing copied)
        self.prefix = [[(k[i, :, pads[i]:], v[i, :, pads[i]:]) for i in range(G)] for k, v in prefix]
        self._prefix_store = list(prefix)
        self.pads = list(pads)
        self.prefix_segs = prefix_segs
        # every group with as many rows and a prefix: all groups attend in one batched product over the padded
        # prefill cache (rows taken in group order), its padding columns masked
        self.batched = G > 1 and P > 0 and min(self.lengths) > 0 and len({len(m) for m in self.members}) == 1
        if self.batched:
            self.order = torch.tensor([b for m in self.members for b in m], dtype=torch.long)
            self.inverse = torch.argsort(self.order)
            pad = torch.arange(P)[None] < torch.tensor(self.pads)[:, None]
            self.pad_bias = torch.zeros(G, P).masked_fill_(pad, torch.finfo(torch.float32).min)
            self.pad_bias, self.order, self.inverse = (t.to(self.device) for t in (self.pad_bias, self.order,
                                                                                    self.inverse))
        self.capacity = max(int(capacity), 1)
        self.rule = rule
        self.keys: list[Tensor | None] = [None] * n_layers
        self.values: list[Tensor | None] = [None] * n_layers
        self.used = [0] * n_layers
        self.grown = 0
        self.suffix_bias: Tensor | None = None
        self.prefix_bias: list[Tensor | None] = [None] * G
        self.calls = [0, 0]  # updates, attention calls (every update must be attended by our function)

    # ---------------------------------------------------------------- transformers' Cache API
    def update(self, key_states: Tensor, value_states: Tensor, layer_idx: int, *args: Any,
               **kwargs: Any) -> tuple[Tensor, Tensor]:
        """Write this step's keys and values into the row's suffix block; returns the suffix so far."""
        self.calls[0] += 1
        B, H, W, D = key_states.shape
        n = self.used[layer_idx]
        buf_k, buf_v = self.keys[layer_idx], self.values[layer_idx]
        if buf_k is None or n + W > buf_k.shape[2]:
            cap = self.capacity if buf_k is None else max(2 * buf_k.shape[2], n + W)
            cap = max(cap, n + W)
            new_k = key_states.new_empty(B, H, cap, D)
            new_v = value_states.new_empty(B, H, cap, value_states.shape[-1])
            if buf_k is not None:  # outlived the budget: one copy, counted
                new_k[:, :, :n], new_v[:, :, :n] = buf_k[:, :, :n], buf_v[:, :, :n]  # type: ignore[index]
                self.grown += 1
            self.keys[layer_idx], self.values[layer_idx] = buf_k, buf_v = new_k, new_v
        buf_k[:, :, n:n + W] = key_states
        buf_v[:, :, n:n + W] = value_states  # type: ignore[index]
        self.used[layer_idx] = n + W
        return buf_k[:, :, :n + W], buf_v[:, :, :n + W]  # type: ignore[index]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return max(self.lengths, default=0) + self.used[layer_idx]

    def get_mask_sizes(self, query_length: int, layer_idx: int = 0) -> tuple[int, int]:
        return self.get_seq_length(layer_idx) + query_length, 0

    def get_max_length(self, layer_idx: int | None = None) -> int:
        return -1

    @property
    def is_compileable(self) -> bool:
        return False

    @property
    def is_initialized(self) -> bool:
        return True

    # ---------------------------------------------------------------- masks of one forward
    def step_mask(self, col_segs: Tensor, col_mask: Tensor, q_len: int) -> Tensor:
        """The additive suffix mask ``[B, 1, q, S]`` of the next forward (``col_segs``/``col_mask``: the suffix
        columns after it); with a mask rule also each group's prefix mask. Checks that the previous forward
        attended every cache update through :func:`shared_prefix_attention`."""
        self.check()
        dev = self.device
        B, S = col_segs.shape
        qs = col_segs[:, S - q_len:]
        allowed = torch.ones(B, q_len, S, dtype=torch.bool) if self.rule is None else self.rule(qs, col_segs).bool()
        allowed &= torch.ones(q_len, S, dtype=torch.bool).tril(diagonal=S - q_len)[None]
        allowed &= col_mask.bool()[:, None, :]
        allowed[:, torch.arange(q_len), torch.arange(S - q_len, S)] = True
        bias = torch.zeros(B, 1, q_len, S, dtype=torch.float32)
        bias.masked_fill_(~allowed[:, None], torch.finfo(torch.float32).min)
        self.suffix_bias = bias.to(dev)
        if self.rule is not None:  # per group [rows, q, P] over the padded prefix columns
            for i, rows in enumerate(self.members):
                segs = self.prefix_segs[i][None].expand(len(rows), -1)
                ok = self.rule(qs[rows], segs).bool()
                pb = torch.zeros(len(rows), q_len, segs.shape[1], dtype=torch.float32)
                self.prefix_bias[i] = pb.masked_fill_(~ok, torch.finfo(torch.float32).min).to(dev)
        return self.suffix_bias

    def check(self) -> None:
        """Refuse a model whose attention did not go through :func:`shared_prefix_attention` (its results would
        ignore the prefix)."""
        if self.calls[0] != self.calls[1]:
            raise ModelStructureError(
                f"the shared-prefix KV cache was updated {self.calls[0]} times but attended {self.calls[1]} times: "
                "this model's attention does not dispatch through transformers' AttentionInterface. Pass "
                "prefix_cache='copied' to intervene_many.")

    def nbytes(self) -> int:
        """Bytes of key/value storage held: the prefill's prefix cache once, plus the suffix blocks.

        Returns
        -------
        int
        """
        prefix = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in self._prefix_store)
        suffix = sum(t.numel() * t.element_size() for t in self.keys + self.values if t is not None)
        return prefix + suffix


def shared_prefix_attention(module: torch.nn.Module, query: Tensor, key: Tensor, value: Tensor,
                            attention_mask: Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                            **kwargs: Any) -> tuple[Tensor, None]:
    """Attention of ``query`` over its group's prefix block and its row's suffix block (``key``/``value``).

    Registered with transformers' ``AttentionInterface`` as :data:`ATTENTION_NAME`; the cache comes from
    :func:`attached`. Scores and the softmax are computed in float32.

    Parameters
    ----------
    module : torch.nn.Module
        The attention module (its ``layer_idx`` names the layer).
    query : Tensor
        ``[B, heads, q, head_dim]``.
    key, value : Tensor
        ``[B, kv_heads, S, head_dim]``: the suffix block so far, as the cache's ``update`` returned it.
    attention_mask : Tensor | None
        Ignored (the masks were set by :meth:`SharedPrefixCache.step_mask`).
    scaling : float | None
        The score scale (default ``head_dim ** -0.5``).
    dropout : float
        Ignored (inference only).

    Returns
    -------
    tuple[Tensor, None]
        ``[B, q, heads, head_dim]`` and no weights.
    """
    cache = _ACTIVE.get()
    if cache is None:
        raise ModelStructureError(f"{ATTENTION_NAME} attention ran outside a shared-prefix forward; it is switched "
                                  "on only by latentprobe.engine.prefix_cache.attached.")
    cache.calls[1] += 1
    layer = int(module.layer_idx)
    B, Hq, Q, D = query.shape
    Hk, S = key.shape[1], key.shape[2]
    rep = Hq // Hk
    scale = D ** -0.5 if scaling is None else scaling
    q = query.reshape(B, Hk, rep * Q, D)
    s_s = torch.matmul(q, key.transpose(-1, -2)).float().mul_(scale).view(B, Hk, rep, Q, S)
    s_s += cache.suffix_bias.to(q.device).view(B, 1, 1, Q, S)  # type: ignore[union-attr]  (a device_map: per layer)
    lse_s = torch.logsumexp(s_s, dim=-1)
    p_s = torch.exp(s_s - lse_s[..., None]).view(B, Hk, rep * Q, S)
    out = torch.matmul(p_s.to(value.dtype), value).float()  # [B, Hk, rep*Q, Dv]
    if cache.batched:
        o_p, lse_p = _prefix_batched(cache, layer, q, rep, Q, scale)
    else:
        o_p, lse_p = _prefix_per_group(cache, layer, q, rep, Q, scale, value.shape[-1])
    Dv = value.shape[-1]
    lse = torch.logaddexp(lse_p, lse_s)
    w_p = torch.exp(lse_p - lse).view(B, Hk, rep * Q, 1)
    w_s = torch.exp(lse_s - lse).view(B, Hk, rep * Q, 1)
    res = (o_p * w_p + out * w_s).view(B, Hk, rep, Q, Dv).reshape(B, Hq, Q, Dv)
    return res.transpose(1, 2).contiguous().to(query.dtype), None


def _prefix_per_group(cache: SharedPrefixCache, layer: int, q: Tensor, rep: int, Q: int, scale: float,
                      Dv: int) -> tuple[Tensor, Tensor]:
    """Attention output (normalised) and log-sum-exp of every row over its group's prefix, one group at a time."""
    B, Hk, _, D = q.shape
    o_p = q.new_zeros(B, Hk, rep * Q, Dv, dtype=torch.float32)
    lse_p = q.new_full((B, Hk, rep, Q), float("-inf"), dtype=torch.float32)
    for i, rows in enumerate(cache.rows):
        if cache.lengths[i] == 0:
            continue
        rows = rows if isinstance(rows, slice) else rows.to(q.device)
        kp, vp = cache.prefix[layer][i]
        n = len(cache.members[i])
        qg = q[rows].transpose(0, 1).reshape(Hk, n * rep * Q, D)
        s = torch.matmul(qg, kp.transpose(-1, -2)).float().mul_(scale).view(Hk, n, rep, Q, -1)
        if cache.prefix_bias[i] is not None:
            s += cache.prefix_bias[i].to(s.device)[None, :, None, :, cache.pads[i]:]  # type: ignore[union-attr]
        lse = torch.logsumexp(s, dim=-1)
        p = torch.exp(s - lse[..., None]).view(Hk, n * rep * Q, -1)
        o = torch.matmul(p.to(vp.dtype), vp).float().view(Hk, n, rep * Q, Dv)
        o_p[rows] = o.transpose(0, 1)
        lse_p[rows] = lse.transpose(0, 1)
    return o_p, lse_p


def _prefix_batched(cache: SharedPrefixCache, layer: int, q: Tensor, rep: int, Q: int,
                    scale: float) -> tuple[Tensor, Tensor]:
    """As :func:`_prefix_per_group`, for groups of equal size: one product over the padded prefill cache."""
    kp, vp = cache._prefix_store[layer]  # [G, Hk, P, D]
    G, P, Dv = kp.shape[0], kp.shape[2], vp.shape[-1]
    B, Hk, _, D = q.shape
    n = B // G
    order, inverse = cache.order.to(q.device), cache.inverse.to(q.device)
    qg = q[order].view(G, n, Hk, rep * Q, D).transpose(1, 2).reshape(G, Hk, n * rep * Q, D)
    s = torch.matmul(qg, kp.transpose(-1, -2)).float().mul_(scale).view(G, Hk, n, rep, Q, P)
    s += cache.pad_bias.to(s.device).view(G, 1, 1, 1, 1, P)
    if cache.prefix_bias[0] is not None:
        s += torch.stack(cache.prefix_bias).to(s.device)[:, None, :, None]  # type: ignore[arg-type]
    lse = torch.logsumexp(s, dim=-1)  # [G, Hk, n, rep, Q]
    p = torch.exp(s - lse[..., None]).view(G, Hk, n * rep * Q, P)
    o = torch.matmul(p.to(vp.dtype), vp).float().view(G, Hk, n, rep * Q, Dv).transpose(1, 2)
    o_p = o.reshape(B, Hk, rep * Q, Dv)[inverse]
    lse_p = lse.transpose(1, 2).reshape(B, Hk, rep, Q)[inverse]
    return o_p, lse_p


def _register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION_NAME, shared_prefix_attention)


def _attention_configs(layers: torch.nn.ModuleList) -> list[Any]:
    """The distinct configs the decoder layers' attention modules read their implementation from."""
    seen: dict[int, Any] = {}
    for layer in layers:
        for m in layer.modules():
            cfg = getattr(m, "config", None)
            if hasattr(m, "layer_idx") and cfg is not None and hasattr(cfg, "_attn_implementation_internal"):
                seen[id(cfg)] = cfg
    return list(seen.values())


def supports_shared(layers: torch.nn.ModuleList) -> bool:
    """Whether the decoder's attention can run on a :class:`SharedPrefixCache`: its modules read their
    implementation from a config, and no layer attends through a sliding window.

    Parameters
    ----------
    layers : torch.nn.ModuleList
        The decoder layers.

    Returns
    -------
    bool
    """
    cfgs = _attention_configs(layers)
    if not cfgs:
        return False
    for cfg in cfgs:
        types = getattr(cfg, "layer_types", None) or []
        if any(t != "full_attention" for t in types):
            return False
        if getattr(cfg, "use_sliding_window", False) or getattr(cfg, "attention_chunk_size", None):
            return False
    return True


@contextlib.contextmanager
def attached(cache: Any, layers: torch.nn.ModuleList) -> Iterator[None]:
    """While the block runs, the decoder's attention reads ``cache`` through :func:`shared_prefix_attention`
    (a no-op for any other cache); the previous implementation is restored after.

    Parameters
    ----------
    cache : Any
        The cache the forwards of the block use.
    layers : torch.nn.ModuleList
        The decoder layers.
    """
    if not isinstance(cache, SharedPrefixCache):
        yield
        return
    _register()
    cfgs = _attention_configs(layers)
    before = [c._attn_implementation_internal for c in cfgs]
    token = _ACTIVE.set(cache)
    for c in cfgs:
        c._attn_implementation_internal = ATTENTION_NAME
    try:
        yield
        cache.check()
    finally:
        for c, b in zip(cfgs, before):
            c._attn_implementation_internal = b
        _ACTIVE.reset(token)


def cache_nbytes(cache: Any) -> int:
    """Bytes of key/value storage a KV cache holds (a :class:`SharedPrefixCache` or a transformers cache).

    Parameters
    ----------
    cache : Any
        The cache.

    Returns
    -------
    int
    """
    if isinstance(cache, SharedPrefixCache):
        return cache.nbytes()
    total = 0
    for layer in getattr(cache, "layers", []):
        for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if isinstance(t, Tensor):
                total += t.numel() * t.element_size()
    return total
