"""Attention masks from segment codes, shared by the runner and the toy trainer.

A *mask rule* ``rule(seg_q, seg_k) -> allowed`` (boolean ``[B, Q, K]``) states which segments may
attend to which; it is combined with causality and padding. Segment codes are
:class:`latentprobe.trace.Segment` values. Without a rule the runner passes an ordinary 2-D padding
mask.
"""

from __future__ import annotations

from typing import Callable

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

__all__ = ["MaskRule", "segment_attention_mask"]

MaskRule = Callable[[Int[Tensor, "b q"], Int[Tensor, "b k"]], Bool[Tensor, "b q k"]]


def segment_attention_mask(segments: Int[Tensor, "b t"], valid: Int[Tensor, "b t"], q_len: int,
                           rule: MaskRule | None, dtype: torch.dtype = torch.float32) -> Float[Tensor, "b 1 q t"]:
    """Additive 4-D attention mask for the last ``q_len`` positions over all ``t`` positions.

    ``allowed = rule & causal & valid-key``; every query always keeps itself so no row is empty
    (padding queries then attend only to themselves, and their outputs are never read).

    Parameters
    ----------
    segments : Int[Tensor, "b t"]
        ``[b, t]`` segment codes.
    valid : Int[Tensor, "b t"]
        ``[b, t]`` 1 for real positions, 0 for padding.
    q_len : int
        Number of query positions (the last ``q_len``).
    rule : MaskRule | None
        Which (query, key) segment pairs may attend, or ``None``.
    dtype : torch.dtype
        dtype of the mask.

    Returns
    -------
    Tensor
        ``[b, 1, q, t]``: 0 where attention is allowed, a large negative number elsewhere.
    """
    B, T = segments.shape
    qs = segments[:, T - q_len:]
    allowed = torch.ones(B, q_len, T, dtype=torch.bool) if rule is None else rule(qs, segments).bool()
    causal = torch.ones(q_len, T, dtype=torch.bool).tril(diagonal=T - q_len)
    allowed = allowed & causal[None] & valid.bool()[:, None, :]
    eye = torch.zeros(q_len, T, dtype=torch.bool)
    eye[torch.arange(q_len), torch.arange(T - q_len, T)] = True
    allowed = allowed | eye[None]
    m = torch.zeros(B, 1, q_len, T, dtype=dtype)
    m.masked_fill_(~allowed[:, None], torch.finfo(dtype).min)
    return m
