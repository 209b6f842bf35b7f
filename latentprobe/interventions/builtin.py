"""The built-in interventions: the paper's four and a wider suite (all registered by name)."""

from __future__ import annotations

import abc
import dataclasses
import inspect
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, TypeVar

import torch
from jaxtyping import Float
from torch import Tensor

from latentprobe.seeding import torch_generator
from latentprobe.errors import InterventionError, InterventionShapeError, StepOutOfRangeError
from latentprobe.interventions.base import (Intervention, _finite_number, _finite_tensor, _int_arg,
                                            _mapping, _not_rebuildable, _tensor_config, register_intervention)

if TYPE_CHECKING:  # pragma: no cover
    from latentprobe.trace import ExampleTrace, LatentTrace

__all__ = [
    "Replace", "Zero", "Scale", "AddNoise", "ReplaceNoise", "MeanAblate", "Swap", "RepeatFirst", "Lambda",
    "GaussianReplace", "MatchedDisplacement", "NoLatents", "as_intervention",
]


@register_intervention
@dataclass(frozen=True, eq=False)
class Replace(Intervention):
    """Replace with a given tensor: ``[d]`` (one vector for every step of every example, the
    paper's "one shared tensor"), ``[K, d]`` (per step) or ``[n, K, d]`` (per example and step).

    Parameters
    ----------
    value : Tensor
        The replacement, ``[d]``, ``[K, d]`` or ``[n, K, d]`` (finite, floating point).
    """

    value: Tensor

    def __post_init__(self) -> None:
        _finite_tensor("Replace", "value", self.value)

    def check(self, hidden_size: int, trace: LatentTrace | None) -> None:
        v = self.value
        if v.ndim not in (1, 2, 3) or v.shape[-1] != hidden_size:
            raise InterventionShapeError(
                f"Replace.value has shape {tuple(v.shape)}; the model's hidden size is {hidden_size}: "
                f"give [{hidden_size}], [K, {hidden_size}] or [n, K, {hidden_size}]."
            )
        if v.ndim == 3 and trace is not None and v.shape[0] != len(trace):
            raise InterventionShapeError(f"Replace.value is [n={v.shape[0]}, K, d] but the trace has {len(trace)} examples.")
        k_most = max((e.num_latents for e in trace.examples), default=0) if trace is not None else None
        if v.ndim >= 2 and k_most is not None and v.shape[-2] > k_most:
            raise InterventionShapeError(
                f"Replace.value holds {v.shape[-2]} steps (shape {tuple(v.shape)}) but the trace's examples have at "
                f"most {k_most} latents: rows {k_most}..{v.shape[-2] - 1} would never be used; give K = {k_most} rows.")

    def apply(self, z: Tensor, step: int, example: ExampleTrace, layer: int = 0) -> Tensor:
        v = self.value
        if v.ndim >= 2 and step >= v.shape[-2]:
            raise StepOutOfRangeError(f"Replace.value holds {v.shape[-2]} steps; step {step} asked.")
        if v.ndim == 2:
            v = v[step]
        elif v.ndim == 3:
            v = v[example.index, step]
        return v.to(z.dtype).clone()


@register_intervention
@dataclass(frozen=True)
class Zero(Intervention):
    """Set the latent to zero (the paper's near-zero intervention is ``Scale(1e-3)``)."""

    def apply(self, z: Tensor, step: int, example: ExampleTrace, layer: int = 0) -> Tensor:
        return torch.zeros_like(z)


@register_intervention
@dataclass(frozen=True)
class Scale(Intervention):
    """Multiply the latent by ``factor``.

    Parameters
    ----------
    factor : float
        The multiplier (finite).
    """

    factor: float

    def __post_init__(self) -> None:
        _finite_number("Scale", "factor", self.factor)

    def apply(self, z: Tensor, step: int, example: ExampleTrace, layer: int = 0) -> Tensor:
        return z * float(self.factor)


@register_intervention
@dataclass(frozen=True)
class AddNoise(Intervention):
    """Add Gaussian noise with per-coordinate std ``scale * ||z|| / sqrt(d)`` (so the noise norm is
    about ``scale * ||z||``).

    Parameters
    ----------
    scale : float
        Noise norm relative to the latent's norm (non-negative).
    seed : int
        Seed; the draw is keyed by ``(seed, example id, step, layer)``.
    """

    scale: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        _finite_number("AddNoise", "scale", self.scale, min_value=0.0)
        _int_arg("AddNoise", "seed", self.seed)

    def apply(self, z: Tensor, step: int, example: ExampleTrace, layer: int = 0) -> Tensor:
        g = torch_generator(self.seed, example.example_id, step, layer)
        eps = torch.randn(z.shape, generator=g, dtype=torch.float32).to(z.dtype)
        return z + eps * (self.scale * z.norm() / z.numel() ** 0.5)


@register_intervention
@dataclass(frozen=True, eq=False)
class ReplaceNoise(Intervention):
    """Replace with a Gaussian random direction of the same norm as the latent (also the
    random-direction placebo of matched norm).

    Parameters
    ----------
    seed : int
        Seed; the direction is keyed by ``(seed, example id, step, layer)``.
    """

    seed: int = 0

    def __post_init__(self) -> None:
        _int_arg("ReplaceNoise", "seed", self.seed)

    def apply(self, z: Tensor, step: int, example: ExampleTrace, layer: int = 0) -> Tensor:
        g = torch_generator(self.seed, example.example_id, step, layer)
        eps = torch.randn(z.shape, generator=g, dtype=torch.float32).to(z.dtype)
        return eps * (z.norm() / eps.norm().clamp_min(1e-12))


@register_intervention
@dataclass(frozen=True, eq=False)
class MeanAblate(Intervention):
    """Replace with the mean of a reference set: ``[d]``, ``[K, d]`` per step, or
    ``[K, L+1, d]`` per step and residual layer. Build it with :meth:`from_trace`.

    Parameters
    ----------
    mean : Tensor
        The mean, ``[d]``, ``[K, d]`` or ``[K, L+1, d]`` (finite, floating point).
    """

    mean: Tensor

    def __post_init__(self) -> None:
        _finite_tensor("MeanAblate", "mean", self.mean)

    @classmethod
    def from_trace(cls, trace: LatentTrace, *, per_step: bool = True, per_layer: bool = False) -> "MeanAblate":
        """The mean of ``trace``'s latents (of the examples that entered latent mode).

        Parameters
        ----------
        trace : LatentTrace
            The reference set.
        per_step : bool
            One mean per latent step (``[K, d]``) rather than one over all steps (``[d]``).
        per_layer : bool
            Also one per residual layer (``[K, L+1, d]``, from ``hidden``), to ablate at layers other than 0;
            needs ``per_step``.

        Returns
        -------
        MeanAblate
        """
        what = "hidden" if per_layer else "z"
        if per_layer:
            stacked = torch.stack([e.hidden for e in trace.examples if e.num_latents > 0]) if per_step else None
            if stacked is None:
                raise InterventionError("MeanAblate.from_trace(per_layer=True) needs per_step=True.")
            return cls(stacked.mean(0))
        zs, _ = trace.stack(what)
        return cls(zs.mean(0) if per_step else zs.reshape(-1, zs.shape[-1]).mean(0))

    def check(self, hidden_size: int, trace: LatentTrace | None) -> None:
        if self.mean.shape[-1] != hidden_size or self.mean.ndim not in (1, 2, 3):
            raise InterventionShapeError(
                f"MeanAblate.mean has shape {tuple(self.mean.shape)}; expected [{hidden_size}], [K, {hidden_size}] "
                f"or [K, L+1, {hidden_size}]."
            )

    def apply(self, z: Tensor, step: int, example: ExampleTrace, layer: int = 0) -> Tensor:
        m = self.mean
        if m.ndim >= 2:
            if step >= m.shape[0]:
                raise StepOutOfRangeError(f"MeanAblate.mean holds {m.shape[0]} steps; step {step} asked.")
            m = m[step]
        if m.ndim == 2:
            m = m[layer]
        elif layer != 0 and self.mean.ndim < 3:
            raise InterventionError("MeanAblate at a layer other than 0 needs a per-layer mean: from_trace(per_layer=True).")
        return m.to(z.dtype).clone()


@register_intervention
@dataclass(frozen=True, eq=False)
class Swap(Intervention):
    """Swap in another example's latent at the same step (and layer).

    ``source`` is a LatentTrace (default: the trace being intervened on must be passed explicitly)
    and ``mapping[i]`` the source example for example ``i`` (default: ``(i + 1) % n``, a cyclic
    derangement, so no example receives its own latents).

    Parameters
    ----------
    source : LatentTrace
        The trace whose latents are swapped in.
    mapping : tuple of int, optional
        ``mapping[i]``: the source example for example ``i`` (default the cyclic derangement).
    """

    source: LatentTrace
    mapping: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not hasattr(self.source, "__len__") or not hasattr(self.source, "__getitem__") or len(self.source) == 0:
            raise InterventionError(f"Swap.source={self.source!r}: give a non-empty LatentTrace to take latents from.")
        _mapping("Swap", self.mapping)

    def check(self, hidden_size: int, trace: LatentTrace | None) -> None:
        n_src = len(self.source)
        if self.mapping is not None:
            if trace is not None and len(self.mapping) != len(trace):
                raise InterventionShapeError(f"Swap.mapping has {len(self.mapping)} entries for {len(trace)} examples.")
            bad = [j for j in self.mapping if not 0 <= j < n_src]
            if bad:
                raise StepOutOfRangeError(f"Swap.mapping points at source examples {bad}; the source has {n_src}.")
        if trace is self.source:  # an example given its own latents is unchanged
            own = [e.example_id for e in trace.examples if self._src(e) is e]
            if len(own) == len(trace):
                raise InterventionError("Swap gives every example its own latents, so nothing changes; map each "
                                        "example to another one (mapping=None: the next example's), with 2 or more.")
            if own:
                import warnings

                from latentprobe.errors import NoOpWarning

                warnings.warn(f"Swap gives {len(own)} example(s) their own latents ({own[:5]}): they stay unchanged.",
                              NoOpWarning, stacklevel=3)

    def _src(self, example: ExampleTrace) -> ExampleTrace:
        n = len(self.source)
        j = self.mapping[example.index] if self.mapping is not None else (example.index + 1) % n
        return self.source[j]

    def apply(self, z: Tensor, step: int, example: ExampleTrace, layer: int = 0) -> Tensor:
        s = self._src(example)
        if step >= s.num_latents:
            raise StepOutOfRangeError(
                f"Swap: source example {s.example_id!r} has {s.num_latents} latents; step {step} asked."
            )
        v = s.z[step] if layer == 0 else s.hidden[step, layer]
        return v.to(z.dtype).clone()

    def to_config(self) -> dict[str, Any]:
        return {"type": "Swap", "source_ids": list(getattr(self.source, "example_ids", [])),
                "mapping": None if self.mapping is None else list(self.mapping)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Intervention":
        raise _not_rebuildable(cls, "a source trace")


@register_intervention
@dataclass(frozen=True)
class RepeatFirst(Intervention):
    """Replace every chosen step with the example's own first latent (recorded)."""

    def apply(self, z: Tensor, step: int, example: ExampleTrace, layer: int = 0) -> Tensor:
        v = example.z[0] if layer == 0 else example.hidden[0, layer]
        return v.to(z.dtype).clone()


@register_intervention
@dataclass(frozen=True, eq=False)
class Lambda(Intervention):
    """Wrap a user callable ``fn(z, step, example)`` (or ``fn(z, step, example, layer)``).

    Parameters
    ----------
    fn : callable
        ``fn(z, step, example)`` or ``fn(z, step, example, layer)`` returning the new latent.
    name_ : str
        Name recorded in :meth:`to_config` (default the callable's qualified name).
    """

    fn: Callable[..., Tensor]
    name_: str = field(default="")

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise InterventionError(f"Lambda.fn={self.fn!r} is not callable; pass a function (z, step, example) -> z.")

    def apply(self, z: Tensor, step: int, example: ExampleTrace, layer: int = 0) -> Tensor:
        try:
            params = inspect.signature(self.fn).parameters
            takes_layer = "layer" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())
        except (TypeError, ValueError):
            takes_layer = False
        return self.fn(z, step, example, layer=layer) if takes_layer else self.fn(z, step, example)

    def to_config(self) -> dict[str, Any]:
        return {"type": "Lambda", "fn": self.name_ or getattr(self.fn, "__qualname__", repr(self.fn))}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Intervention":
        raise _not_rebuildable(cls, "a Python callable")


@register_intervention
@dataclass(frozen=True)
class GaussianReplace(Intervention):
    """Replace the latent with ``N(0, std^2 I)`` noise, seeded per (seed, example_id, step, layer).

    The paper's "replace with Gaussian noise"; :func:`latentprobe.causal.default_interventions`
    sets ``std`` to the root-mean-square coordinate of the clean latents, so the noise has their
    typical norm (unlike :class:`ReplaceNoise`, whose norm is matched per latent).

    Parameters
    ----------
    std : float
        Standard deviation of every coordinate (non-negative).
    seed : int
        Seed; the draw is keyed by ``(seed, example id, step, layer)``.
    """

    std: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        _finite_number("GaussianReplace", "std", self.std, min_value=0.0)
        _int_arg("GaussianReplace", "seed", self.seed)

    def apply(self, z: Tensor, step: int, example: ExampleTrace, layer: int = 0) -> Tensor:
        g = torch_generator(self.seed, "gauss", example.example_id, step, layer)
        return (torch.randn(z.shape, generator=g, dtype=torch.float32) * float(self.std)).to(z.dtype)


@register_intervention
@dataclass(frozen=True, eq=False)
class MatchedDisplacement(Intervention):
    """Placebo for a swap: move the latent by a random direction of the *same distance* as the swap
    would (``z + u * ||z_src - z||``, ``u`` a seeded random unit vector), where ``z_src`` is the
    latent of example ``mapping[i]`` of ``source`` at the same step (and layer). A swap that hurts
    more than this placebo does so because of *what* it writes, not only how far it moves z.

    Parameters
    ----------
    source : LatentTrace
        The trace whose latents a swap would write (it sets the distance only).
    mapping : tuple of int, optional
        ``mapping[i]``: the source example for example ``i`` (default the cyclic derangement).
    seed : int
        Seed; the direction is keyed by ``(seed, example id, step, layer)``.
    """

    source: LatentTrace
    mapping: tuple[int, ...] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not hasattr(self.source, "__len__") or len(self.source) == 0:
            raise InterventionError(f"MatchedDisplacement.source={self.source!r}: give a non-empty LatentTrace.")
        _mapping("MatchedDisplacement", self.mapping)
        _int_arg("MatchedDisplacement", "seed", self.seed)

    def apply(self, z: Tensor, step: int, example: ExampleTrace, layer: int = 0) -> Tensor:
        n = len(self.source)
        j = self.mapping[example.index] if self.mapping is not None else (example.index + 1) % n
        s = self.source[j]
        target = s.z[step] if layer == 0 else s.hidden[step, layer]
        dist = (target.float() - z.float()).norm()
        g = torch_generator(self.seed, "placebo", example.example_id, step, layer)
        u = torch.randn(z.shape, generator=g, dtype=torch.float32)
        u = u / u.norm().clamp_min(1e-12)
        return (z.float() + u * dist).to(z.dtype)

    def to_config(self) -> dict[str, Any]:
        return {"type": "MatchedDisplacement", "source_ids": list(getattr(self.source, "example_ids", [])),
                "mapping": None if self.mapping is None else list(self.mapping), "seed": int(self.seed)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Intervention":
        raise _not_rebuildable(cls, "a source trace")


@register_intervention
@dataclass(frozen=True)
class NoLatents(Intervention):
    """The "keep only the open/close markers" condition: the latent slots are removed and the
    answer re-decoded (``runner.intervene(..., mode="redecode", drop_latents=True)``), which
    :func:`latentprobe.causal.z_to_y` does for it in redecode mode only. Removing the slots also
    shifts the positions of everything after them, so its effect is not purely an effect of latent
    content. It is not applied latent by latent: :meth:`apply` refuses."""

    name: ClassVar[str] = "no_latents"

    def apply(self, z: Tensor, step: int, example: ExampleTrace, layer: int = 0) -> Tensor:
        raise InterventionError(
            f"NoLatents removes the latent slots instead of rewriting them (example {example.example_id!r}, "
            f"step {step}); run it with runner.intervene(trace, None, mode='redecode', drop_latents=True) "
            "or through latentprobe.causal.z_to_y."
        )


def as_intervention(x: Intervention | Callable[..., Tensor]) -> Intervention:
    """An :class:`Intervention` from an intervention or a callable ``(z, step, example) -> z``.

    Parameters
    ----------
    x : Intervention or callable
        An intervention (returned as is) or a callable (wrapped in :class:`Lambda`).

    Returns
    -------
    Intervention

    Raises
    ------
    InterventionError
        ``x`` is neither, or is a class (``Swap`` rather than ``Swap(trace)``).
    """
    if isinstance(x, Intervention):
        return x
    if isinstance(x, type):
        example = {"Swap": "Swap(trace)", "MeanAblate": "MeanAblate.from_trace(trace)"}.get(x.__name__,
                                                                                           f"{x.__name__}(...)")
        raise InterventionError(f"{x.__name__} is a class; pass an instance, e.g. {example} (its arguments: "
                                f"help(latentprobe.interventions.{x.__name__})).")
    if callable(x):
        return Lambda(x)
    raise InterventionError(
        f"{x!r} is not an intervention; pass a latentprobe.interventions object or a callable (z, step, example) -> z."
    )
