"""The :class:`Perturbation` base class, its registry and the helpers the built-ins share."""

from __future__ import annotations

import abc
import dataclasses
import hashlib
from typing import Any, Mapping, NamedTuple, Sequence, TypeVar

import numpy as np

from latentprobe.errors import InputError
from latentprobe.perturbations.inputs import InputSet, _image_list, _map_image

__all__ = ["Perturbation", "PerturbedExample", "register_perturbation", "perturbation_from_config"]

_P = TypeVar("_P", bound=type)
_REGISTRY: dict[str, type] = {}


def register_perturbation(cls: _P) -> _P:
    """Class decorator: register a :class:`Perturbation` dataclass under its class name, so that
    :func:`perturbation_from_config` can rebuild it. Registering the same class twice is a no-op;
    a different class with a name already taken raises :class:`~latentprobe.errors.InputError`.

    Parameters
    ----------
    cls : _P
        A :class:`Perturbation` dataclass.

    Returns
    -------
    type
        ``cls`` itself (a decorator).
    """
    if not (isinstance(cls, type) and issubclass(cls, Perturbation)):
        raise InputError(f"register_perturbation takes a Perturbation subclass, got {cls!r}.")
    known = _REGISTRY.get(cls.__name__)
    if known is not None and known is not cls:
        raise InputError(f"a perturbation named {cls.__name__!r} is already registered "
                         f"({known.__module__}.{known.__qualname__}); give the new class another name.")
    _REGISTRY[cls.__name__] = cls
    return cls


class PerturbedExample(NamedTuple):
    """One perturbed example, as :meth:`Perturbation.apply_one` returns it (a plain 4-tuple works too).

    Attributes
    ----------
    prompt : str, token ids or chat messages
        The prompt (usually the example's own).
    image : array, list of arrays, or None
        The image entry (an array, a list of arrays for multi-image prompts, or ``None``).
    gold : str | None
        The gold answer of the perturbed input, ``None`` where it has none or it is unknown.
    meta : dict[str, Any]
        The example's metadata, with what the perturbation did.
    """

    prompt: str | Sequence[int] | Sequence[Mapping[str, Any]]
    """The prompt (usually the example's own)."""
    image: np.ndarray | Sequence[np.ndarray] | None
    """The image entry (an array, a list of arrays for multi-image prompts, or ``None``)."""
    gold: str | None
    """The gold answer of the perturbed input, ``None`` where it has none or it is unknown."""
    meta: dict[str, Any]
    """The example's metadata, with ``"perturbation"`` (the perturbation's name) and what else it changed."""


class Perturbation(abc.ABC):
    """Base class: a controlled change to every example of an :class:`InputSet`.

    A new perturbation is a frozen dataclass that subclasses :class:`Perturbation`, sets ``name``
    and implements :meth:`apply_one` (the change for example ``i`` of the full set); those that
    pair examples (swaps) also override :meth:`bind`, which fixes their mapping once for the whole
    set. :meth:`apply` calls :meth:`apply_one` for every example asked for, so chunked sweeps and
    one-shot runs see the same inputs. Decorate the class with :func:`register_perturbation` so that
    saved configs can rebuild it.

    Examples
    --------
    >>> import dataclasses
    >>> from latentprobe.perturbations import InputSet
    >>> @dataclasses.dataclass(frozen=True)
    ... class Shout(Perturbation):
    ...     name: str = "shout"
    ...     def apply_one(self, inputs, i):
    ...         return PerturbedExample(inputs.prompts[i].upper(), None, None,
    ...                                 {**inputs.meta[i], "perturbation": self.name})
    >>> out = Shout().apply(InputSet(example_ids=("a", "b"), prompts=("hi", "yo")))
    >>> out.prompts, out.meta[1]["perturbation"]
    (('HI', 'YO'), 'shout')
    """

    name: str = "perturbation"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_one" in vars(cls) and "apply_one" not in vars(cls):
            cls.apply_one = vars(cls)["_one"]  # type: ignore[attr-defined]  # the former name of the override

    def bind(self, inputs: InputSet) -> "Perturbation":
        """A copy with everything that depends on the whole input set fixed (default: self).

        Parameters
        ----------
        inputs : InputSet
            The whole clean input set.

        Returns
        -------
        Perturbation
        """
        return self

    def apply(self, inputs: InputSet, indices: Sequence[int] | None = None) -> InputSet:
        """The perturbed examples at ``indices`` (default: all), as a new InputSet.

        The result holds ``inputs.example_ids[indices]`` in the same order. Partners of swaps are
        looked up in the *full* ``inputs``: :meth:`bind` is called on the full set, then
        :meth:`apply_one` for every index.

        Parameters
        ----------
        inputs : InputSet
            The clean input set.
        indices : Sequence[int] | None
            Which examples (default all).

        Returns
        -------
        InputSet
        """
        bound = self.bind(inputs)
        idx = list(range(len(inputs))) if indices is None else [int(i) for i in indices]
        prompts, images, gold, meta = [], [], [], []
        for i in idx:
            p, im, g, m = bound.apply_one(inputs, i)
            prompts.append(p)
            images.append(im)
            gold.append(g)
            meta.append(m)
        return InputSet(
            example_ids=tuple(inputs.example_ids[i] for i in idx), prompts=tuple(prompts),
            images=None if inputs.images is None else tuple(images),
            gold=None if inputs.gold is None and all(g is None for g in gold) else tuple(gold),
            meta=tuple(meta), relabel=inputs.relabel,
        )

    __call__ = apply

    @abc.abstractmethod
    def apply_one(self, inputs: InputSet, i: int) -> PerturbedExample:
        """The change for example ``i`` of the full, bound input set: the override point of subclasses.

        Parameters
        ----------
        inputs : InputSet
            The whole input set (partners of swaps are other examples of it).
        i : int
            The index of the example to perturb.

        Returns
        -------
        PerturbedExample
            ``(prompt, image, gold, meta)``; keep ``inputs.meta[i]``'s keys and add
            ``"perturbation": self.name``. Never modify ``inputs`` in place (copy images).
        """

    def to_config(self) -> dict[str, Any]:
        """JSON-ready description: the class name and every field.

        Returns
        -------
        dict[str, Any]
        """
        d: dict[str, Any] = {"type": type(self).__name__}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if callable(v):
                v = getattr(v, "__qualname__", type(v).__qualname__)
            elif isinstance(v, tuple):
                v = list(v)
            d[f.name] = v
        return d


def perturbation_from_config(config: dict[str, Any]) -> Perturbation:
    """Rebuild a registered perturbation from :meth:`Perturbation.to_config` (not :class:`Custom`,
    which holds code). Perturbations defined elsewhere are known once their module is imported
    (e.g. :mod:`latentprobe.toy.perturbations`).

    Parameters
    ----------
    config : dict[str, Any]
        What :meth:`Perturbation.to_config` returned.

    Returns
    -------
    Perturbation
    """
    cfg = dict(config)
    kind = cfg.pop("type", None)
    if kind not in _REGISTRY:
        raise InputError(f"cannot rebuild a perturbation of type {kind!r}; known: {sorted(_REGISTRY)} "
                         "(import the module that defines it, which registers it with register_perturbation).")
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items()}
    return _REGISTRY[kind](**kw)


def _need_images(inputs: InputSet, who: str) -> None:
    if inputs.images is None:
        raise InputError(f"{who} changes images, but the InputSet has none (images=None).")


def _relabel(inputs: InputSet, image_of: int, question_of: int) -> tuple[str | None, dict[str, Any]] | None:
    """``inputs.relabel`` for the image of example ``image_of`` and the question of ``question_of``."""
    if inputs.relabel is None:
        return None
    return inputs.relabel(inputs.meta[image_of], inputs.meta[question_of])


def _image_groups(inputs: InputSet) -> list[str]:
    """A label per example that is equal when two examples show the same image."""
    out = []
    for i in range(len(inputs)):
        iid = inputs.meta[i].get("image_id")
        if iid is not None:
            out.append(f"id:{iid}")
            continue
        h = hashlib.sha1()
        for im in _image_list(inputs.images[i] if inputs.images is not None else None):
            a = np.ascontiguousarray(np.asarray(im))
            h.update(str(a.shape).encode())
            h.update(a.tobytes())
        out.append(h.hexdigest())
    return out


def _check_mapping(mapping: tuple[int, ...], n: int, who: str, ids: Sequence[str] | None = None,
                   labels: Sequence[str] | None = None) -> None:
    """Refuse a mapping of the wrong length or out of range, or one that changes nothing (every example paired with
    itself, or with an example of the same ``labels``: the same image); warn when it leaves some unchanged."""
    if len(mapping) != n:
        raise InputError(f"{who}.mapping has {len(mapping)} entries for {n} examples; bind it to this InputSet.")
    bad = [j for j in mapping if not 0 <= j < n]
    if bad:
        raise InputError(f"{who}.mapping points at examples {bad[:5]} outside 0..{n - 1}.")
    same = [i for i, j in enumerate(mapping) if i == j or (labels is not None and labels[i] == labels[j])]
    if not same:
        return
    what = "with itself" + (" or with an example showing the same image" if labels is not None else "")
    names = [ids[i] if ids is not None else i for i in same[:5]]
    if len(same) == n:
        raise InputError(f"{who}.mapping pairs every example {what}, so the perturbation changes nothing; pair each "
                         f"with another example (or leave mapping=None for a seeded derangement).")
    import warnings

    from latentprobe.errors import NoOpWarning

    warnings.warn(f"{who}.mapping pairs {len(same)} of {n} example(s) {what} ({names}{' ...' if len(same) > 5 else ''}"
                  "): they stay unchanged, and count as unchanged in every effect.", NoOpWarning, stacklevel=3)


def _copy_image(entry: Any) -> Any:
    return _map_image(entry, lambda a: np.array(a, copy=True))
