"""The one place an intervention is applied, whatever the mode or the layer.

Every path calls :func:`apply_intervention`: the fed vector (layer 0) of replay, propagate and
redecode, and residual layers ``>= 1`` in the prefill and in decode steps (vectorised over rows by
:func:`layer_patch`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import torch
from jaxtyping import Float
from torch import Tensor

from latentprobe.errors import InterventionError, InterventionShapeError, NonFiniteInterventionError
from latentprobe.interventions import Intervention

if TYPE_CHECKING:  # pragma: no cover
    from latentprobe.trace import ExampleTrace

__all__ = ["InterventionMode", "Patch", "LayerPatch", "apply_intervention", "layer_patch", "prefix_patches"]


class InterventionMode(str, enum.Enum):
    """How :meth:`LatentRunner.intervene` uses the changed latents (see :mod:`latentprobe.engine.modes`)."""

    REPLAY = "replay"
    PROPAGATE = "propagate"
    REDECODE = "redecode"

    @classmethod
    def parse(cls, mode: "str | InterventionMode") -> "InterventionMode":
        """The mode named by ``mode`` (a mode is returned as is).

        Parameters
        ----------
        mode : str | InterventionMode
            A mode or its name.

        Returns
        -------
        InterventionMode
        """
        try:
            return cls(mode)
        except ValueError:
            raise InterventionError(f"mode={mode!r}; use 'replay', 'propagate' or 'redecode'.") from None


@dataclass(frozen=True)
class Patch:
    """Change one example's latent step at residual ``layers`` (0 = the fed vector) with ``fn``.

    Parameters
    ----------
    fn : Intervention
        The intervention.
    layers : tuple[int, ...]
        Residual layers it changes.
    mode : InterventionMode
        The intervention mode.
    """

    fn: Intervention
    layers: tuple[int, ...]
    mode: InterventionMode


@dataclass(frozen=True)
class LayerPatch:
    """Rows and columns of one forward pass whose output of decoder layer ``layer - 1`` is rewritten.

    Parameters
    ----------
    layer : int
        The residual layer.
    rows : Tensor
        Batch rows to rewrite.
    cols : Tensor
        Their positions.
    fn : Callable[[Tensor], Tensor]
        Maps the ``[n, d]`` outputs there to their replacements.
    """

    layer: int
    rows: Tensor
    cols: Tensor
    fn: Callable[[Tensor], Tensor]


def _example_id(example: Any) -> str:
    return str(getattr(example, "example_id", "?"))


def apply_intervention(fn: Intervention, z: Float[Tensor, "d"], *, step: int, example: ExampleTrace | None, layer: int,
                       mode: InterventionMode) -> Float[Tensor, "d"]:
    """``fn.apply(z, step, example, layer)``, checked: the result must be a tensor of ``z``'s shape.

    Parameters
    ----------
    fn : Intervention
        The intervention.
    z : Float[Tensor, "d"]
        The vector it changes.
    step : int
        Latent step.
    example : ExampleTrace or None
        The recorded example.
    layer : int
        Residual layer.
    mode : InterventionMode
        The intervention mode (named in errors).

    Returns
    -------
    Tensor
        ``fn``'s result, in ``z``'s shape.

    Raises
    ------
    InterventionShapeError
        Naming the example id, latent step, layer and mode where the output had the wrong shape.
    NonFiniteInterventionError
        Naming the intervention, example id, latent step, layer and mode where the output held NaN or inf.
    """
    out = fn.apply(z, step, example, layer)
    if not isinstance(out, Tensor) or out.shape != z.shape:
        raise InterventionShapeError(
            f"intervention {fn!r} returned {tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__} "
            f"for a latent of shape {tuple(z.shape)} (example {_example_id(example)!r}, latent step {step}, "
            f"layer {layer}, mode {InterventionMode(mode).value!r}); it must return a tensor of the same shape."
        )
    out = out.to(z.dtype)
    if not bool(torch.isfinite(out).all()):
        bad = int((~torch.isfinite(out)).sum())
        raise NonFiniteInterventionError(
            f"intervention {fn!r} returned {bad} non-finite value(s) (NaN or inf) for example "
            f"{_example_id(example)!r}, latent step {step}, layer {layer}, mode {InterventionMode(mode).value!r}; "
            "a latent must stay finite: check the intervention's parameters (e.g. Scale(nan), a Lambda dividing "
            "by zero)."
        )
    return out


def layer_patch(layer: int, items: list[tuple[int, int, int, Any, Patch]], device: torch.device) -> LayerPatch:
    """Bundle per-row patches of one residual layer: ``items`` are ``(row, col, step, example, patch)``.

    Parameters
    ----------
    layer : int
        The residual layer.
    items : list[tuple[int, int, int, Any, Patch]]
        ``(row, col, step, example, patch)`` per changed position.
    device : torch.device
        Device of the index tensors.

    Returns
    -------
    LayerPatch
    """
    rows = torch.tensor([it[0] for it in items], device=device)
    cols = torch.tensor([it[1] for it in items], device=device)

    def fn(vals: Tensor) -> Tensor:
        new = [apply_intervention(p.fn, vals[i].float().cpu(), step=s, example=ex, layer=layer, mode=p.mode)
               for i, (_, _, s, ex, p) in enumerate(items)]
        return torch.stack(new).to(vals.device)

    return LayerPatch(layer, rows, cols, fn)


def _constant(vals: Tensor) -> Callable[[Tensor], Tensor]:
    def fn(old: Tensor) -> Tensor:
        return vals.to(old.device, old.dtype)
    return fn


def prefix_patches(rows: list[Any], offsets: list[int], device: torch.device) -> list[LayerPatch]:
    """Layer ``>= 1`` patches of one prefill: each row's latent-step patches at its prefix's latent slots, and
    its ``position_patches`` (vectors written at given positions, activation patching).

    Parameters
    ----------
    rows : list[Row]
        The rows of the forward pass.
    offsets : list[int]
        Per row, the column of its position 0 in this forward (negative for a chunk after a shared prefix).
    device : torch.device
        Device of the index tensors.

    Returns
    -------
    list[LayerPatch]
    """
    by_layer: dict[int, list] = {}
    fixed: dict[int, list[tuple[int, int, Tensor]]] = {}
    for b, r in enumerate(rows):
        slots = sorted(r.z_at)
        for s, pt in r.patches.items():
            if s >= len(slots):
                continue
            for layer in pt.layers:
                if layer >= 1:
                    by_layer.setdefault(layer, []).append((b, slots[s] + offsets[b], s, r.source, pt))
        for layer, at in r.position_patches.items():
            fixed.setdefault(int(layer), []).extend((b, p + offsets[b], v) for p, v in at.items())
    out = [layer_patch(layer, items, device) for layer, items in by_layer.items()]
    for layer, items in fixed.items():
        rows_t = torch.tensor([it[0] for it in items], device=device)
        cols_t = torch.tensor([it[1] for it in items], device=device)
        out.append(LayerPatch(layer, rows_t, cols_t, _constant(torch.stack([it[2] for it in items]))))
    return out
