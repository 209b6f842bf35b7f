"""The intervention interface: the base class, the registry, configs and argument checks."""

from __future__ import annotations

import abc
import dataclasses
import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, TypeVar

import torch
from jaxtyping import Float
from torch import Tensor

from latentprobe.errors import InterventionError, InterventionShapeError, StepOutOfRangeError
from latentprobe.validate import integer, number

if TYPE_CHECKING:  # pragma: no cover
    from latentprobe.trace import ExampleTrace, LatentTrace

__all__ = ["Intervention", "intervention_from_config", "register_intervention", "registered_interventions"]

_I = TypeVar("_I", bound=type)
#: Intervention classes by name (the ``"type"`` of their :meth:`Intervention.to_config`).
_REGISTRY: dict[str, type] = {}


def register_intervention(cls: _I) -> _I:
    """Class decorator: register an :class:`Intervention` subclass under its class name, so that
    :func:`intervention_from_config` can rebuild it from :meth:`Intervention.to_config`.

    Registering the same class twice is a no-op; a *different* class with a name already taken
    raises :class:`~latentprobe.errors.InterventionError` (rename the class).

    Parameters
    ----------
    cls : type
        An :class:`Intervention` subclass (usually a frozen dataclass, whose fields are its config).

    Returns
    -------
    type
        ``cls`` itself, so the function works as a decorator.

    Examples
    --------
    An intervention that shifts every latent by a constant, rebuilt from its config:

    >>> from dataclasses import dataclass
    >>> import torch
    >>> from latentprobe import Intervention, intervention_from_config, register_intervention
    >>> @register_intervention
    ... @dataclass(frozen=True)
    ... class ShiftAll(Intervention):
    ...     by: float = 1.0
    ...     def apply(self, z, step, example, layer=0):
    ...         return z + self.by
    >>> again = intervention_from_config(ShiftAll(by=2.0).to_config())
    >>> again, again(torch.zeros(3), 0, None)
    (ShiftAll(by=2.0), tensor([2., 2., 2.]))
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
    """``{name: class}`` of every registered intervention (a copy).

    Returns
    -------
    dict[str, type]
    """
    return dict(_REGISTRY)


def _tensor_config(t: Tensor | None) -> Any:
    return None if t is None else {"shape": list(t.shape), "values": t.flatten().tolist()}


def _tensor_from_config(c: Any) -> Tensor | None:
    return None if c is None else torch.tensor(c["values"], dtype=torch.float32).reshape(c["shape"])


def _finite_number(cls: str, name: str, value: Any, *, min_value: float | None = None) -> None:
    """Refuse a bool, a non-number, NaN/inf, or a number below ``min_value`` for ``cls.name``."""
    number(value, f"{cls}.{name}", minimum=min_value, hint="NaN, inf and bools are refused", error=InterventionError)


def _int_arg(cls: str, name: str, value: Any) -> None:
    integer(value, f"{cls}.{name}", error=InterventionError)


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
    def apply(self, z: Float[Tensor, "d"], step: int, example: ExampleTrace, layer: int = 0) -> Float[Tensor, "d"]:
        """The vector to use instead of ``z`` at latent ``step`` (residual ``layer``) of ``example``.

        Parameters
        ----------
        z : Tensor
            ``[d]``: the vector the run would use (the fed latent at layer 0, the residual at other layers).
        step : int
            Latent step (0-based).
        example : ExampleTrace
            The recorded example being intervened on (its ``index``, ``example_id``, ``z``, ``hidden``).
        layer : int
            Residual layer: 0 is the fed vector, ``i >= 1`` the output of decoder layer ``i-1``.

        Returns
        -------
        Tensor
            ``[d]``, in ``z``'s dtype.
        """

    def __call__(self, z: Tensor, step: int, example: ExampleTrace, layer: int = 0) -> Tensor:
        return self.apply(z, step, example, layer)

    def check(self, hidden_size: int, trace: LatentTrace | None) -> None:
        """Validate against the model's hidden size and the trace before anything runs.

        Parameters
        ----------
        hidden_size : int
            The model's hidden size ``d``.
        trace : LatentTrace or None
            The trace to be intervened on, when known.

        Raises
        ------
        InterventionShapeError
            A tensor of the intervention does not fit ``hidden_size`` or the trace.
        """

    def to_config(self) -> dict[str, Any]:
        """JSON-ready description: ``{"type": class name, field: value}`` (tensors as shape + values).

        Returns
        -------
        dict
            What :func:`intervention_from_config` rebuilds the intervention from.
        """
        d: dict[str, Any] = {"type": type(self).__name__}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            d[f.name] = _tensor_config(v) if isinstance(v, Tensor) else v
        return d

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Intervention":
        """Rebuild from :meth:`to_config` (``config`` without ``"type"``); a dataclass's fields.

        Parameters
        ----------
        config : dict
            Field values (tensors as :meth:`to_config` writes them).

        Returns
        -------
        Intervention
        """
        kw = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            v = config.get(f.name)
            kw[f.name] = _tensor_from_config(v) if isinstance(v, dict) and "values" in v else v
        return cls(**{k: v for k, v in kw.items() if v is not None or k in config})


def _not_rebuildable(cls: type, what: str) -> InterventionError:
    return InterventionError(f"cannot rebuild {cls.__name__} from a config: it holds {what}, which a config "
                             f"only names; construct {cls.__name__}(...) again with the same arguments.")


def intervention_from_config(config: dict[str, Any]) -> Intervention:
    """Rebuild a registered intervention from :meth:`Intervention.to_config` (see
    :func:`register_intervention`). Swap, MatchedDisplacement and Lambda hold references to data or
    code and cannot be rebuilt from a config alone.

    Parameters
    ----------
    config : dict
        ``{"type": class name, field: value, ...}``.

    Returns
    -------
    Intervention

    Raises
    ------
    InterventionError
        The type is not registered, or the intervention cannot be rebuilt from a config.
    """
    cfg = dict(config)
    kind = cfg.pop("type", None)
    if kind not in _REGISTRY:
        raise InterventionError(
            f"cannot rebuild intervention of type {kind!r} from config; known: {sorted(_REGISTRY)}. "
            "Decorate your class with @register_intervention (and import its module) first."
        )
    return _REGISTRY[kind].from_config(cfg)
