"""The built-in perturbations: swaps of images, questions or whole instances, blank, noisy and
occluded images, and user callables."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from latentprobe.perturbations import _checks as _c
from latentprobe.errors import InputError
from latentprobe.images import occlude
from latentprobe.seeding import numpy_rng
from latentprobe.perturbations.base import (
    Perturbation, PerturbedExample, _check_mapping, _copy_image, _image_groups, _need_images, _relabel,
    register_perturbation,
)
from latentprobe.perturbations.inputs import InputSet, _map_image, derangement

__all__ = ["ImageSwap", "BlankImage", "NoiseImage", "Occlude", "QuestionSwap", "InstanceSwap", "Custom"]


@dataclass(frozen=True)
class ImageSwap(Perturbation):
    """Show example ``mapping[i]``'s image with example ``i``'s question.

    Default mapping: :func:`derangement` with ``seed`` that never pairs two examples showing the
    same image (by ``meta["image_id"]``, else by pixel content). Gold answers are recomputed for
    the new (image, question) pair by :attr:`InputSet.relabel` (``None`` without it, or when the
    question is not well posed there).

    Parameters
    ----------
    mapping : tuple[int, ...] | None
        ``mapping[i]``: the partner of example ``i`` (default a seeded derangement).
    seed : int
        Seed of the default mapping.
    name : str
        Label of the condition in results and configs.
    """

    mapping: tuple[int, ...] | None = None
    seed: int = 0
    name: str = "image_swap"

    def __post_init__(self) -> None:
        _c.check_mapping("ImageSwap", self.mapping)
        _c.check_int("ImageSwap", "seed", self.seed)
        _c.check_name("ImageSwap", self.name)

    def bind(self, inputs: InputSet) -> "ImageSwap":
        """A copy with the mapping fixed for ``inputs``.

        Parameters
        ----------
        inputs : InputSet
            The whole clean input set (fixes the mapping).

        Returns
        -------
        ImageSwap
        """
        _need_images(inputs, "ImageSwap")
        if self.mapping is None:
            return dataclasses.replace(self, mapping=derangement(len(inputs), self.seed, _image_groups(inputs)))
        _check_mapping(tuple(self.mapping), len(inputs), "ImageSwap", inputs.example_ids, _image_groups(inputs))
        return self

    def apply_one(self, inputs: InputSet, i: int) -> PerturbedExample:
        j = self.mapping[i]
        meta = {**inputs.meta[i], "perturbation": self.name, "partner": inputs.example_ids[j]}
        if "image_id" in inputs.meta[j]:
            meta["image_id"] = inputs.meta[j]["image_id"]
        gold = None
        relabelled = _relabel(inputs, image_of=j, question_of=i)
        if relabelled is not None:
            gold, updates = relabelled
            meta.update(updates)
        return PerturbedExample(inputs.prompts[i], _copy_image(inputs.images[j]), gold, meta)


@dataclass(frozen=True)
class BlankImage(Perturbation):
    """Replace every image by a uniform image of the same size (``fill``: grey level or RGB).

    Parameters
    ----------
    fill : int | tuple[int, int, int]
        Grey level or RGB triple.
    name : str
        Label of the condition in results and configs.
    """

    fill: int | tuple[int, int, int] = 0
    name: str = "blank_image"

    def __post_init__(self) -> None:
        _c.check_fill("BlankImage", self.fill)
        _c.check_name("BlankImage", self.name)

    def apply_one(self, inputs: InputSet, i: int) -> PerturbedExample:
        _need_images(inputs, "BlankImage")
        fill = np.asarray(self.fill, dtype=np.uint8)

        def f(a: np.ndarray) -> np.ndarray:
            out = np.empty_like(a, dtype=np.uint8)
            out[...] = fill
            return out

        meta = {**inputs.meta[i], "perturbation": self.name}
        return PerturbedExample(inputs.prompts[i], _map_image(inputs.images[i], f), None, meta)


@dataclass(frozen=True)
class NoiseImage(Perturbation):
    """Gaussian pixel noise, seeded per ``(seed, example_id)``.

    ``additive=True``: ``clip(image + N(0, sigma^2))``, a graded corruption of the real image.
    ``additive=False``: a pure noise image ``clip(N(128, sigma^2))`` carrying no information about
    the scene. Toy gold is kept for additive noise (the scene is unchanged), ``None`` otherwise.

    Parameters
    ----------
    sigma : float
        Standard deviation of the noise, in grey levels.
    seed : int
        Seed; draws keyed by ``(seed, example_id)``.
    additive : bool
        Add the noise to the image (``True``) or replace the image by noise.
    name : str
        Label of the condition in results and configs.
    """

    sigma: float = 64.0
    seed: int = 0
    additive: bool = True
    name: str = "noise_image"

    def __post_init__(self) -> None:
        _c.check_sigma("NoiseImage", self.sigma)
        _c.check_int("NoiseImage", "seed", self.seed)
        if not isinstance(self.additive, bool):
            raise InputError(f"NoiseImage.additive={self.additive!r}: use True or False.")
        _c.check_name("NoiseImage", self.name)

    def apply_one(self, inputs: InputSet, i: int) -> PerturbedExample:
        _need_images(inputs, "NoiseImage")
        rng = numpy_rng(self.seed, inputs.example_ids[i])

        def f(a: np.ndarray) -> np.ndarray:
            eps = rng.normal(0.0, float(self.sigma), size=a.shape)
            base = a.astype(np.float64) if self.additive else np.full(a.shape, 128.0)
            return np.clip(np.rint(base + eps), 0, 255).astype(np.uint8)

        gold = inputs.gold[i] if (self.additive and inputs.gold is not None) else None
        meta = {**inputs.meta[i], "perturbation": self.name}
        return PerturbedExample(inputs.prompts[i], _map_image(inputs.images[i], f), gold, meta)


@dataclass(frozen=True)
class Occlude(Perturbation):
    """Fill a box of the image.

    ``box``: ``(top, left, bottom, right)`` in pixels (end-exclusive) or ``"center"`` (the central
    half of each side). ``fill``: grey level, RGB triple or ``"noise"`` (seeded per example). The
    gold answer is set to ``None`` (occluding the answer's object makes the question
    unanswerable). Subclasses choose a box per example by overriding :meth:`box_for` (the toy's
    :class:`~latentprobe.toy.perturbations.OccludeTarget` covers the queried object's cell).

    Parameters
    ----------
    box : tuple[int, int, int, int] | str
        ``(top, left, bottom, right)`` (end-exclusive) or ``"center"``.
    fill : int | tuple[int, int, int] | str
        Grey level, RGB triple or ``"noise"``.
    seed : int
        Seed of the noise fill.
    name : str
        Label of the condition in results and configs.
    """

    box: tuple[int, int, int, int] | str = "center"
    fill: int | tuple[int, int, int] | str = 0
    seed: int = 0
    name: str = "occlude"

    def __post_init__(self) -> None:
        who = type(self).__name__
        _c.check_box(who, self.box)
        _c.check_fill(who, self.fill, allow_noise=True)
        _c.check_int(who, "seed", self.seed)
        _c.check_name(who, self.name)

    def box_for(self, inputs: InputSet, i: int, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """The ``(top, left, bottom, right)`` box to fill in example ``i``'s image of ``shape``.

        Parameters
        ----------
        inputs : InputSet
            The input set.
        i : int
            The example.
        shape : tuple[int, ...]
            Its image's shape.

        Returns
        -------
        tuple[int, int, int, int]
        """
        h, w = int(shape[0]), int(shape[1])
        if isinstance(self.box, str):
            if self.box != "center":
                raise InputError(
                    f"{type(self).__name__}.box={self.box!r} (example {inputs.example_ids[i]!r}); use a "
                    "(top, left, bottom, right) tuple or 'center' (the toy's target cell: "
                    "latentprobe.toy.perturbations.OccludeTarget)."
                )
            return h // 4, w // 4, h - h // 4, w - w // 4
        return tuple(int(v) for v in self.box)  # type: ignore[return-value]

    def apply_one(self, inputs: InputSet, i: int) -> PerturbedExample:
        _need_images(inputs, type(self).__name__)
        seed = int(numpy_rng(self.seed, inputs.example_ids[i]).integers(0, 2**31 - 1))
        img = _map_image(inputs.images[i], lambda a: occlude(a, self.box_for(inputs, i, a.shape), self.fill, seed))
        meta = {**inputs.meta[i], "perturbation": self.name}
        return PerturbedExample(inputs.prompts[i], img, None, meta)


@dataclass(frozen=True)
class QuestionSwap(Perturbation):
    """Ask example ``mapping[i]``'s question (its whole prompt) about example ``i``'s image.

    Default mapping: a seeded :func:`derangement` that never pairs two identical prompts. Gold
    answers are recomputed by :attr:`InputSet.relabel` (``None`` without it, or when the new
    question is not well posed for the scene).

    Parameters
    ----------
    mapping : tuple[int, ...] | None
        ``mapping[i]``: the partner of example ``i`` (default a seeded derangement).
    seed : int
        Seed of the default mapping.
    name : str
        Label of the condition in results and configs.
    """

    mapping: tuple[int, ...] | None = None
    seed: int = 0
    name: str = "question_swap"

    def __post_init__(self) -> None:
        _c.check_mapping("QuestionSwap", self.mapping)
        _c.check_int("QuestionSwap", "seed", self.seed)
        _c.check_name("QuestionSwap", self.name)

    def bind(self, inputs: InputSet) -> "QuestionSwap":
        """A copy with the mapping fixed for ``inputs``.

        Parameters
        ----------
        inputs : InputSet
            The whole clean input set (fixes the mapping).

        Returns
        -------
        QuestionSwap
        """
        if self.mapping is None:
            groups = [repr(p) for p in inputs.prompts]
            return dataclasses.replace(self, mapping=derangement(len(inputs), self.seed, groups))
        _check_mapping(tuple(self.mapping), len(inputs), "QuestionSwap", inputs.example_ids)
        return self

    def apply_one(self, inputs: InputSet, i: int) -> PerturbedExample:
        j = self.mapping[i]
        meta = {**inputs.meta[i], "perturbation": self.name, "partner": inputs.example_ids[j]}
        gold = None
        relabelled = _relabel(inputs, image_of=i, question_of=j)
        if relabelled is not None:
            gold, updates = relabelled
            meta.update(updates)
        image = None if inputs.images is None else _copy_image(inputs.images[i])
        return PerturbedExample(inputs.prompts[j], image, gold, meta)


@dataclass(frozen=True)
class InstanceSwap(Perturbation):
    """Replace example ``i`` entirely (prompt, image, gold, metadata) by example ``mapping[i]``.

    Comparing an example's latents with those of a *different* instance is the paper's
    cross-instance baseline: a perturbation that changes latents less than this changes them
    little. Default mapping: a seeded :func:`derangement`.

    Parameters
    ----------
    mapping : tuple[int, ...] | None
        ``mapping[i]``: the partner of example ``i`` (default a seeded derangement).
    seed : int
        Seed of the default mapping.
    name : str
        Label of the condition in results and configs.
    """

    mapping: tuple[int, ...] | None = None
    seed: int = 0
    name: str = "instance_swap"

    def __post_init__(self) -> None:
        _c.check_mapping("InstanceSwap", self.mapping)
        _c.check_int("InstanceSwap", "seed", self.seed)
        _c.check_name("InstanceSwap", self.name)

    def bind(self, inputs: InputSet) -> "InstanceSwap":
        if self.mapping is None:
            return dataclasses.replace(self, mapping=derangement(len(inputs), self.seed))
        _check_mapping(tuple(self.mapping), len(inputs), "InstanceSwap", inputs.example_ids)
        return self

    def apply_one(self, inputs: InputSet, i: int) -> PerturbedExample:
        j = self.mapping[i]
        meta = {**inputs.meta[j], "perturbation": self.name, "partner": inputs.example_ids[j]}
        image = None if inputs.images is None else _copy_image(inputs.images[j])
        gold = None if inputs.gold is None else inputs.gold[j]
        return PerturbedExample(inputs.prompts[j], image, gold, meta)


@dataclass(frozen=True)
class Custom(Perturbation):
    """A user callable.

    ``per_example=False``: ``fn(inputs) -> InputSet`` over the whole set (it must keep
    ``example_ids`` and their order). ``per_example=True``: ``fn(prompt, image, meta) -> (prompt,
    image)`` or ``(prompt, image, gold)``, called once per example, so a sweep calls it chunk by
    chunk. ``name`` labels the results and the config.

    Parameters
    ----------
    fn : Callable[..., Any]
        The callable (see above).
    name : str
        Label of the condition in results and configs.
    per_example : bool
        Call ``fn`` once per example (see above).
    """

    fn: Callable[..., Any]
    name: str = "custom"
    per_example: bool = True

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise InputError(f"Custom.fn={self.fn!r} is not callable; pass a function (see Custom's docstring).")
        _c.check_name("Custom", self.name)

    def apply(self, inputs: InputSet, indices: Sequence[int] | None = None) -> InputSet:
        """``fn`` applied to the examples at ``indices`` (see the class docstring).

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
        if self.per_example:
            return super().apply(inputs, indices)
        out = self.fn(inputs)
        if not isinstance(out, InputSet) or out.example_ids != inputs.example_ids:
            raise InputError(f"Custom perturbation {self.name!r} must return an InputSet with the same example_ids, in order.")
        return out if indices is None else out.select(indices)

    __call__ = apply

    def apply_one(self, inputs: InputSet, i: int) -> PerturbedExample:
        image = None if inputs.images is None else inputs.images[i]
        res = self.fn(inputs.prompts[i], image, dict(inputs.meta[i]))
        if not isinstance(res, tuple) or len(res) not in (2, 3):
            raise InputError(f"Custom perturbation {self.name!r}: fn must return (prompt, image) or (prompt, image, gold).")
        gold = res[2] if len(res) == 3 else None
        return PerturbedExample(res[0], res[1], gold, {**inputs.meta[i], "perturbation": self.name})


for _cls in (ImageSwap, BlankImage, NoiseImage, Occlude, QuestionSwap, InstanceSwap):
    register_perturbation(_cls)
