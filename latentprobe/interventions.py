"""Interventions on latents: small serialisable objects, plus any callable ``(z, step, example) -> z``.

An intervention receives one latent vector at a time (``z``: ``[d]``), the latent step index and
the example's :class:`~latentprobe.trace.ExampleTrace` (its ``index``, ``example_id``, recorded
``z`` and ``hidden``), and returns the vector to use instead. When the runner patches a residual
layer other than the fed vector it also passes ``layer=`` (0 = the fed vector, ``i`` = output of
decoder layer ``i-1``); built-ins use it to read the matching recorded values.

Noise is scaled to the norm of the latent it replaces: latents are post-norm vectors whose norm is
far from a token embedding's, so a fixed sigma would mean different things in different models.
Random draws are seeded per (seed, example_id, step, layer), so batched and one-by-one runs agree.

Every intervention class is registered by name with :func:`register_intervention` (the built-ins
too), so a configuration written by :meth:`Intervention.to_config` can be rebuilt with
:func:`intervention_from_config`. Register your own the same way::

    @register_intervention
    @dataclass(frozen=True)
    class Halve(Intervention):
        def apply(self, z, step, example, layer=0):
            return z / 2

Examples
--------
On the shipped ``mediated`` toy: zero every latent and decode the answers again.

>>> import torch
>>> from latentprobe import Scale, Zero, intervention_from_config, toy
>>> tm = toy.load("mediated")
>>> runner = tm.runner()
>>> trace = tm.run(tm.examples("test", 4))
>>> zeroed = runner.intervene(trace, Zero(), mode="redecode", progress=False)
>>> bool(torch.equal(zeroed[0].z, torch.zeros_like(trace[0].z)))
True
>>> control = runner.intervene(trace, None, mode="redecode", progress=False)
>>> control.answers == trace.answers
True
>>> Scale(0.5).to_config()
{'type': 'Scale', 'factor': 0.5}
>>> intervention_from_config({'type': 'Scale', 'factor': 0.5})
Scale(factor=0.5)
"""

from __future__ import annotations

import abc
import dataclasses
import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, TypeVar

import torch
from jaxtyping import Float
from torch import Tensor

from latentprobe.seeding import torch_generator
from latentprobe.errors import InterventionError, InterventionShapeError, StepOutOfRangeError

__all__ = [
    "Intervention", "Replace", "Zero", "Scale", "AddNoise", "ReplaceNoise", "MeanAblate", "Swap",
    "RepeatFirst", "Lambda", "GaussianReplace", "MatchedDisplacement", "NoLatents", "as_intervention",
    "intervention_from_config", "register_intervention", "registered_interventions",
]

_I = TypeVar("_I", bound=type)
#: Intervention classes by name (the ``"type"`` of their :meth:`Intervention.to_config`).
_REGISTRY: dict[str, type] = {}


def register_intervention(cls: _I) -> _I:
    """Class decorator: register an :class:`Intervention` subclass under its class name, so that
    :func:`intervention_from_config` can rebuild it from :meth:`Intervention.to_config`.

    Registering the same class twice is a no-op; a *different* class with a name already taken
    raises :class:`~latentprobe.errors.InterventionError` (rename the class).
    """
    if not (isinstance(cls, type) and issubclass(cls, Intervention)):
        raise InterventionError(f"register_intervention takes an Intervention subclass, got {cls!r}.")
    name = cls.__name__
    known = _REGISTRY.get(name)
    if known is not None and known is not cls:
        raise InterventionError(
            f"an intervention named {name!r} is already registered ({known.__module__}.{known.__qualname__}); "
            f"give {cls.__module__}.{cls.__qualname__} another class name."
        )
    _REGISTRY[name] = cls
    return cls


def registered_interventions() -> dict[str, type]:
    """``{name: class}`` of every registered intervention (a copy)."""
    return dict(_REGISTRY)


def _generator(seed: int, example_id: str, step: int, layer: int) -> torch.Generator:
    return torch_generator(seed, example_id, step, layer)


def _tensor_config(t: Tensor | None) -> Any:
    return None if t is None else {"shape": list(t.shape), "values": t.flatten().tolist()}


def _tensor_from_config(c: Any) -> Tensor | None:
    return None if c is None else torch.tensor(c["values"], dtype=torch.float32).reshape(c["shape"])


def _finite_number(cls: str, name: str, value: Any, *, min_value: float | None = None) -> None:
    """Refuse a bool, a non-number, NaN/inf, or a number below ``min_value`` for ``cls.name``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (min_value is not None and value < min_value):
        lim = f" >= {min_value:g}" if min_value is not None else ""
        raise InterventionError(f"{cls}.{name}={value!r}: use a finite number{lim} (NaN, inf and bools are refused).")


def _int_arg(cls: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InterventionError(f"{cls}.{name}={value!r}: use an integer.")


def _finite_tensor(cls: str, name: str, value: Any) -> None:
    if not isinstance(value, Tensor):
        raise InterventionShapeError(f"{cls}.{name} must be a torch.Tensor, got {type(value).__name__}.")
    if not value.is_floating_point():
        raise InterventionError(f"{cls}.{name} has dtype {value.dtype}; give a floating-point tensor.")
    if value.numel() == 0 or value.ndim not in (1, 2, 3):
        raise InterventionShapeError(f"{cls}.{name} has shape {tuple(value.shape)}; give [d], [K, d] or [n, K, d] "
                                     "(non-empty).")
    bad = int((~torch.isfinite(value)).sum())
    if bad:
        raise InterventionError(f"{cls}.{name} holds {bad} non-finite value(s) (NaN or inf); every value of the "
                                "tensor must be finite.")


def _mapping(cls: str, mapping: Any) -> None:
    if mapping is None:
        return
    if isinstance(mapping, (str, bytes)) or not hasattr(mapping, "__iter__") \
            or any(isinstance(j, bool) or not isinstance(j, int) for j in mapping):
        raise InterventionError(f"{cls}.mapping={mapping!r}: use a tuple of source example indices (ints), "
                                "one per example, or None for the cyclic default.")


class Intervention(abc.ABC):
    """Base class. Subclasses implement :meth:`apply`; ``__call__(z, step, example)`` forwards to it."""

    name: str = "intervention"

    @abc.abstractmethod
    def apply(self, z: Float[Tensor, "d"], step: int, example: Any, layer: int = 0) -> Float[Tensor, "d"]:
        """The vector to use instead of ``z`` at latent ``step`` (residual ``layer``) of ``example``."""

    def __call__(self, z: Tensor, step: int, example: Any, layer: int = 0) -> Tensor:
        return self.apply(z, step, example, layer)

    def check(self, hidden_size: int, trace: Any) -> None:
        """Validate against the model's hidden size and the trace before anything runs."""

    def to_config(self) -> dict[str, Any]:
        """JSON-ready description: ``{"type": class name, field: value}`` (tensors as shape + values)."""
        d: dict[str, Any] = {"type": type(self).__name__}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            d[f.name] = _tensor_config(v) if isinstance(v, Tensor) else v
        return d

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Intervention":
        """Rebuild from :meth:`to_config` (``config`` without ``"type"``); a dataclass's fields."""
        kw = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            v = config.get(f.name)
            kw[f.name] = _tensor_from_config(v) if isinstance(v, dict) and "values" in v else v
        return cls(**{k: v for k, v in kw.items() if v is not None or k in config})


def _not_rebuildable(cls: type, what: str) -> InterventionError:
    return InterventionError(f"cannot rebuild {cls.__name__} from a config: it holds {what}, which a config "
                             f"only names; construct {cls.__name__}(...) again with the same arguments.")


@register_intervention
@dataclass(frozen=True, eq=False)
class Replace(Intervention):
    """Replace with a given tensor: ``[d]`` (one vector for every step of every example, the
    paper's "one shared tensor"), ``[K, d]`` (per step) or ``[n, K, d]`` (per example and step)."""

    value: Tensor

    def __post_init__(self) -> None:
        _finite_tensor("Replace", "value", self.value)

    def check(self, hidden_size: int, trace: Any) -> None:
        v = self.value
        if v.ndim not in (1, 2, 3) or v.shape[-1] != hidden_size:
            raise InterventionShapeError(
                f"Replace.value has shape {tuple(v.shape)}; the model's hidden size is {hidden_size}: "
                f"give [{hidden_size}], [K, {hidden_size}] or [n, K, {hidden_size}]."
            )
        if v.ndim == 3 and trace is not None and v.shape[0] != len(trace):
            raise InterventionShapeError(f"Replace.value is [n={v.shape[0]}, K, d] but the trace has {len(trace)} examples.")

    def apply(self, z: Tensor, step: int, example: Any, layer: int = 0) -> Tensor:
        v = self.value
        if v.ndim == 2:
            if step >= v.shape[0]:
                raise StepOutOfRangeError(f"Replace.value holds {v.shape[0]} steps; step {step} asked.")
            v = v[step]
        elif v.ndim == 3:
            v = v[example.index, step]
        return v.to(z.dtype).clone()


@register_intervention
@dataclass(frozen=True)
class Zero(Intervention):
    """Set the latent to zero (the paper's near-zero intervention is ``Scale(1e-3)``)."""

    def apply(self, z: Tensor, step: int, example: Any, layer: int = 0) -> Tensor:
        return torch.zeros_like(z)


@register_intervention
@dataclass(frozen=True)
class Scale(Intervention):
    """Multiply the latent by ``factor``."""

    factor: float

    def __post_init__(self) -> None:
        _finite_number("Scale", "factor", self.factor)

    def apply(self, z: Tensor, step: int, example: Any, layer: int = 0) -> Tensor:
        return z * float(self.factor)


@register_intervention
@dataclass(frozen=True)
class AddNoise(Intervention):
    """Add Gaussian noise with per-coordinate std ``scale * ||z|| / sqrt(d)`` (so the noise norm is
    about ``scale * ||z||``)."""

    scale: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        _finite_number("AddNoise", "scale", self.scale, min_value=0.0)
        _int_arg("AddNoise", "seed", self.seed)

    def apply(self, z: Tensor, step: int, example: Any, layer: int = 0) -> Tensor:
        g = _generator(self.seed, example.example_id, step, layer)
        eps = torch.randn(z.shape, generator=g, dtype=torch.float32).to(z.dtype)
        return z + eps * (self.scale * z.norm() / z.numel() ** 0.5)


@register_intervention
@dataclass(frozen=True, eq=False)
class ReplaceNoise(Intervention):
    """Replace with a Gaussian random direction of the same norm as the latent (also the
    random-direction placebo of matched norm)."""

    seed: int = 0

    def __post_init__(self) -> None:
        _int_arg("ReplaceNoise", "seed", self.seed)

    def apply(self, z: Tensor, step: int, example: Any, layer: int = 0) -> Tensor:
        g = _generator(self.seed, example.example_id, step, layer)
        eps = torch.randn(z.shape, generator=g, dtype=torch.float32).to(z.dtype)
        return eps * (z.norm() / eps.norm().clamp_min(1e-12))


@register_intervention
@dataclass(frozen=True, eq=False)
class MeanAblate(Intervention):
    """Replace with the mean of a reference set: ``[d]``, ``[K, d]`` per step, or
    ``[K, L+1, d]`` per step and residual layer. Build it with :meth:`from_trace`."""

    mean: Tensor

    def __post_init__(self) -> None:
        _finite_tensor("MeanAblate", "mean", self.mean)

    @classmethod
    def from_trace(cls, trace: Any, *, per_step: bool = True, per_layer: bool = False) -> "MeanAblate":
        what = "hidden" if per_layer else "z"
        if per_layer:
            stacked = torch.stack([e.hidden for e in trace.examples if e.num_latents > 0]) if per_step else None
            if stacked is None:
                raise InterventionError("MeanAblate.from_trace(per_layer=True) needs per_step=True.")
            return cls(stacked.mean(0))
        zs, _ = trace.stack(what)
        return cls(zs.mean(0) if per_step else zs.reshape(-1, zs.shape[-1]).mean(0))

    def check(self, hidden_size: int, trace: Any) -> None:
        if self.mean.shape[-1] != hidden_size or self.mean.ndim not in (1, 2, 3):
            raise InterventionShapeError(
                f"MeanAblate.mean has shape {tuple(self.mean.shape)}; expected [{hidden_size}], [K, {hidden_size}] "
                f"or [K, L+1, {hidden_size}]."
            )

    def apply(self, z: Tensor, step: int, example: Any, layer: int = 0) -> Tensor:
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
    """

    source: Any
    mapping: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not hasattr(self.source, "__len__") or not hasattr(self.source, "__getitem__") or len(self.source) == 0:
            raise InterventionError(f"Swap.source={self.source!r}: give a non-empty LatentTrace to take latents from.")
        _mapping("Swap", self.mapping)

    def check(self, hidden_size: int, trace: Any) -> None:
        n_src = len(self.source)
        if self.mapping is not None:
            if trace is not None and len(self.mapping) != len(trace):
                raise InterventionShapeError(f"Swap.mapping has {len(self.mapping)} entries for {len(trace)} examples.")
            bad = [j for j in self.mapping if not 0 <= j < n_src]
            if bad:
                raise StepOutOfRangeError(f"Swap.mapping points at source examples {bad}; the source has {n_src}.")

    def _src(self, example: Any) -> Any:
        n = len(self.source)
        j = self.mapping[example.index] if self.mapping is not None else (example.index + 1) % n
        return self.source[j]

    def apply(self, z: Tensor, step: int, example: Any, layer: int = 0) -> Tensor:
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

    def apply(self, z: Tensor, step: int, example: Any, layer: int = 0) -> Tensor:
        v = example.z[0] if layer == 0 else example.hidden[0, layer]
        return v.to(z.dtype).clone()


@register_intervention
@dataclass(frozen=True, eq=False)
class Lambda(Intervention):
    """Wrap a user callable ``fn(z, step, example)`` (or ``fn(z, step, example, layer)``)."""

    fn: Callable[..., Tensor]
    name_: str = field(default="")

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise InterventionError(f"Lambda.fn={self.fn!r} is not callable; pass a function (z, step, example) -> z.")

    def apply(self, z: Tensor, step: int, example: Any, layer: int = 0) -> Tensor:
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
    typical norm (unlike :class:`ReplaceNoise`, whose norm is matched per latent)."""

    std: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        _finite_number("GaussianReplace", "std", self.std, min_value=0.0)
        _int_arg("GaussianReplace", "seed", self.seed)

    def apply(self, z: Tensor, step: int, example: Any, layer: int = 0) -> Tensor:
        g = torch_generator(self.seed, "gauss", example.example_id, step, layer)
        return (torch.randn(z.shape, generator=g, dtype=torch.float32) * float(self.std)).to(z.dtype)


@register_intervention
@dataclass(frozen=True, eq=False)
class MatchedDisplacement(Intervention):
    """Placebo for a swap: move the latent by a random direction of the *same distance* as the swap
    would (``z + u * ||z_src - z||``, ``u`` a seeded random unit vector), where ``z_src`` is the
    latent of example ``mapping[i]`` of ``source`` at the same step (and layer). A swap that hurts
    more than this placebo does so because of *what* it writes, not only how far it moves z."""

    source: Any
    mapping: tuple[int, ...] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not hasattr(self.source, "__len__") or len(self.source) == 0:
            raise InterventionError(f"MatchedDisplacement.source={self.source!r}: give a non-empty LatentTrace.")
        _mapping("MatchedDisplacement", self.mapping)
        _int_arg("MatchedDisplacement", "seed", self.seed)

    def apply(self, z: Tensor, step: int, example: Any, layer: int = 0) -> Tensor:
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

    def apply(self, z: Tensor, step: int, example: Any, layer: int = 0) -> Tensor:
        raise InterventionError(
            f"NoLatents removes the latent slots instead of rewriting them (example {example.example_id!r}, "
            f"step {step}); run it with runner.intervene(trace, None, mode='redecode', drop_latents=True) "
            "or through latentprobe.causal.z_to_y."
        )


def as_intervention(x: Any) -> Intervention:
    """An :class:`Intervention` from an intervention or a callable ``(z, step, example) -> z``."""
    if isinstance(x, Intervention):
        return x
    if callable(x):
        return Lambda(x)
    raise InterventionError(
        f"{x!r} is not an intervention; pass a latentprobe.interventions object or a callable (z, step, example) -> z."
    )


def intervention_from_config(config: dict[str, Any]) -> Intervention:
    """Rebuild a registered intervention from :meth:`Intervention.to_config` (see
    :func:`register_intervention`). Swap, MatchedDisplacement and Lambda hold references to data or
    code and cannot be rebuilt from a config alone."""
    cfg = dict(config)
    kind = cfg.pop("type", None)
    if kind not in _REGISTRY:
        raise InterventionError(
            f"cannot rebuild intervention of type {kind!r} from config; known: {sorted(_REGISTRY)}. "
            "Decorate your class with @register_intervention (and import its module) first."
        )
    return _REGISTRY[kind].from_config(cfg)
