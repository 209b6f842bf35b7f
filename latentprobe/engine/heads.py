"""Heads that compute the fed latent ``f(h)`` from the last hidden state, in their authors' layouts.

:class:`CodiProjection` is CODI's projection (``zhenyi4/codi``, ``src/model.py``) with the official
parameter names, so a CODI checkpoint's ``prj.*`` weights load with ``load_state_dict`` directly.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor, nn

__all__ = ["CodiProjection"]


class CodiProjection(nn.Module):
    """CODI's latent projection ``f``: Dropout -> Linear -> GELU -> Linear -> LayerNorm.

    The layout is the official one: ``prj = Sequential(Dropout, Linear(d, prj_dim), GELU,
    Linear(prj_dim, d))`` with the LayerNorm added to it as ``prj.ln``, so the state-dict keys are
    ``prj.1.*``, ``prj.3.*`` and ``prj.ln.*``. The module runs in its own dtype: the hidden state
    is cast to the projection's parameters' dtype and the result back to the input's dtype (a bf16
    projection on a bf16 model accepts the float32 hidden states the loop feeds it).

    Parameters
    ----------
    hidden_size:
        ``d``, the model's hidden size.
    projection_size:
        ``prj_dim`` (published: equal to ``d``; default ``d``).
    dropout:
        The Dropout slot's probability (published ``prj_dropout=0.0``; inactive in eval mode anyway).
    layer_norm:
        ``False`` for checkpoints trained with ``--prj_no_ln``.
    eps : float
        LayerNorm epsilon.

    Examples
    --------
    >>> proj = CodiProjection(8, 16)
    >>> sorted(proj.state_dict())
    ['prj.1.bias', 'prj.1.weight', 'prj.3.bias', 'prj.3.weight', 'prj.ln.bias', 'prj.ln.weight']
    >>> proj(torch.zeros(2, 8)).shape
    torch.Size([2, 8])
    """

    def __init__(self, hidden_size: int, projection_size: int | None = None, *, dropout: float = 0.0,
                 layer_norm: bool = True, eps: float = 1e-5) -> None:
        super().__init__()
        projection_size = projection_size or hidden_size
        self.prj = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_size, projection_size), nn.GELU(),
                                 nn.Linear(projection_size, hidden_size))
        if layer_norm:
            self.prj.add_module("ln", nn.LayerNorm(hidden_size, eps=eps))

    def forward(self, h: Float[Tensor, "... d"]) -> Float[Tensor, "... d"]:
        """``f(h)``.

        Parameters
        ----------
        h : Float[Tensor, "... d"]
            Final-norm outputs ``[..., d]``.

        Returns
        -------
        Tensor
            ``[..., projection_size]``.
        """
        p = self.prj[1].weight
        return self.prj(h.to(p.device, p.dtype)).to(h.dtype)
