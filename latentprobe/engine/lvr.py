"""LVR's latent head (``lvr_head``): the module applied to latent positions' outputs, read by ``lm_head`` too.

``VincentLeebang/lvr@637a9f7e`` ``src/model/lvr_heads.py`` (``LVRHead``): ``ln_q = LayerNorm(d, eps=1e-6)``,
``mlp = Sequential(Linear(d, d), GELU(), Linear(d, d))``, ``forward(x) = mlp(ln_q(x))``. The parameter
names match the checkpoint's ``lvr_head.ln_q.*``, ``lvr_head.mlp.0.*`` and ``lvr_head.mlp.2.*`` keys, so
``LvrHead.from_state_dict(checkpoint_state)`` loads them. Use it with a spec whose ``head="latent"``
(``get_preset("lvr", head="latent")``) and ``LatentRunner(..., head=LvrHead(...))``.

Example
-------
>>> import torch
>>> head = LvrHead(8)
>>> head(torch.zeros(2, 8)).shape
torch.Size([2, 8])
"""

from __future__ import annotations

from typing import Mapping

import torch
from jaxtyping import Float
from torch import Tensor, nn

from latentprobe.errors import SpecError

__all__ = ["LvrHead"]


class LvrHead(nn.Module):
    """``mlp(ln_q(x))``: LayerNorm (eps 1e-6), Linear, GELU, Linear, all of the hidden size.

    Parameters
    ----------
    hidden_size : int
        The model's hidden size.
    eps : float
        LayerNorm epsilon.
    """

    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.ln_q = nn.LayerNorm(hidden_size, eps=eps)
        self.mlp = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.GELU(), nn.Linear(hidden_size, hidden_size))

    def forward(self, x: Float[Tensor, "... d"]) -> Float[Tensor, "... d"]:
        """``mlp(ln_q(x))``.

        Parameters
        ----------
        x : Float[Tensor, "... d"]
            Hidden states ``[..., d]``.

        Returns
        -------
        Tensor
            ``[..., d]``.
        """
        return self.mlp(self.ln_q(x))

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Tensor], prefix: str = "lvr_head.") -> "LvrHead":
        """A head holding the ``prefix``-ed weights of a checkpoint's state dict (e.g. ``lvr_head.ln_q.weight``).

        Parameters
        ----------
        state : Mapping[str, Tensor]
            A checkpoint's state dict.
        prefix : str
            Prefix of the head's weights.

        Returns
        -------
        LvrHead
        """
        own = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if "ln_q.weight" not in own:
            found = sorted({k.split(".")[0] for k in state})[:10]
            raise SpecError(f"no {prefix}ln_q.weight in the state dict (top-level keys include {found}); the "
                            "checkpoint has no lvr_head (LVR_HEAD=False), or pass its prefix=.")
        head = cls(int(own["ln_q.weight"].shape[0]))
        head.load_state_dict(own)
        return head.to(next(iter(own.values())).dtype)
