"""Controlled input perturbations for X -> Z and mediation experiments.

An :class:`InputSet` holds the inputs of an experiment (example ids, prompts, images, gold answers
and per-example metadata). A :class:`Perturbation` turns it into a *paired* input set: the same
example ids in the same order, with one controlled change per example, so that clean and perturbed
runs can be compared example by example.

=====================  ==========================================================================
perturbation           change (everything else is kept)
=====================  ==========================================================================
:class:`ImageSwap`     the image is another example's (question fixed); default partner: a seeded
                       derangement that never pairs two examples showing the same image
:class:`BlankImage`    a uniform image of the same size
:class:`NoiseImage`    Gaussian pixel noise (additive, or a pure noise image), seeded per example
:class:`Occlude`       a box of the image filled (fixed box, the centre, or the toy target's cell)
:class:`QuestionSwap`  the prompt is another example's (image fixed)
:class:`InstanceSwap`  the whole instance is another example's: the paper's cross-instance
                       comparison (how different are latents of *different* inputs?)
:class:`Counterfactual`  toy minimal pair: one object attribute changes so that the answer changes
                       (:func:`latentprobe.toy.shapes.counterfactual_scene`)
:class:`Custom`        a user callable
=====================  ==========================================================================

Perturbations are small frozen dataclasses with a ``name`` and :meth:`Perturbation.to_config`.
Those that pair examples (swaps) are *bound* to an input set first (:meth:`Perturbation.bind`),
which fixes their mapping once for the whole set; :meth:`Perturbation.apply` can then perturb any
subset (a chunk of a sweep) consistently. Random draws are seeded per ``(seed, example_id)``, so a
chunked run and a one-shot run give the same inputs.

Gold answers of perturbed inputs are recomputed where that is possible (toy examples, whose scenes
are known) and ``None`` otherwise (e.g. a blank image has no correct answer).
"""

from __future__ import annotations

import abc

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from latentprobe.seeding import numpy_rng
from latentprobe.errors import InputError

__all__ = [
    "InputSet",
    "Perturbation",
    "ImageSwap",
    "BlankImage",
    "NoiseImage",
    "Occlude",
    "QuestionSwap",
    "InstanceSwap",
    "Counterfactual",
    "Custom",
    "derangement",
    "perturbation_from_config",
]


# --------------------------------------------------------------------------- input sets
@dataclass(frozen=True, eq=False)
class InputSet:
    """The inputs of an experiment, one entry per example, all aligned.

    Attributes
    ----------
    example_ids : tuple of str
        Unique ids; perturbations keep them (and their order) so runs pair up.
    prompts : tuple
        Prompt strings or token-id sequences, as :meth:`LatentRunner.run` takes them.
    images : tuple or None
        One entry per example (``None``, an ``HxWx3`` uint8 array, or a list of them), or ``None``
        for a text-only model.
    gold : tuple or None
        Gold answers (``None`` entries where unknown), or ``None`` when no answer is known.
    meta : tuple of dict
        Per-example metadata. :meth:`from_toy` stores ``question``, ``template``, ``image_id`` and
        the :class:`~latentprobe.toy.shapes.ToyExample` itself under ``"toy"``.
    """

    example_ids: tuple[str, ...]
    prompts: tuple[Any, ...]
    images: tuple[Any, ...] | None = None
    gold: tuple[str | None, ...] | None = None
    meta: tuple[dict[str, Any], ...] = ()

    def __post_init__(self) -> None:
        n = len(self.example_ids)
        object.__setattr__(self, "example_ids", tuple(str(e) for e in self.example_ids))
        object.__setattr__(self, "prompts", tuple(self.prompts))
        if self.images is not None:
            object.__setattr__(self, "images", tuple(self.images))
        if self.gold is not None:
            object.__setattr__(self, "gold", tuple(None if g is None else str(g) for g in self.gold))
        meta = tuple(dict(m) for m in self.meta) if self.meta else tuple({} for _ in range(n))
        object.__setattr__(self, "meta", meta)
        if len(set(self.example_ids)) != n:
            raise InputError("InputSet.example_ids must be unique; results are matched on them.")
        for name in ("prompts", "images", "gold", "meta"):
            v = getattr(self, name)
            if v is not None and len(v) != n:
                raise InputError(f"InputSet.{name} has {len(v)} entries for {n} example_ids; give one per example.")

    @classmethod
    def from_toy(cls, examples: Sequence[Any], *, image_size: int = 112,
                 prompt_fn: Callable[[str], str] | None = None) -> "InputSet":
        """Inputs for toy :class:`~latentprobe.toy.shapes.ToyExample` objects (prompt ``question``
        then the image, as :func:`latentprobe.toy.model.prompt_for` writes it)."""
        if prompt_fn is None:
            from latentprobe.toy.model import prompt_for as prompt_fn
        examples = list(examples)
        return cls(
            example_ids=tuple(e.example_id for e in examples),
            prompts=tuple(prompt_fn(e.question) for e in examples),
            images=tuple(e.image(image_size) for e in examples),
            gold=tuple(e.answer for e in examples),
            meta=tuple({"question": e.question, "template": e.template, "image_id": e.image_id, "toy": e,
                        "image_size": image_size} for e in examples),
        )

    def __len__(self) -> int:
        return len(self.example_ids)

    def select(self, indices: Sequence[int]) -> "InputSet":
        """The examples at ``indices`` (in that order)."""
        idx = [int(i) for i in indices]
        return InputSet(
            example_ids=tuple(self.example_ids[i] for i in idx),
            prompts=tuple(self.prompts[i] for i in idx),
            images=None if self.images is None else tuple(self.images[i] for i in idx),
            gold=None if self.gold is None else tuple(self.gold[i] for i in idx),
            meta=tuple(self.meta[i] for i in idx),
        )

    def replace(self, **changes: Any) -> "InputSet":
        return dataclasses.replace(self, **changes)

    def fingerprint(self) -> str:
        """A short hash of ids, prompts, images and gold (recorded in sweep configs)."""
        h = hashlib.sha1()
        for i in range(len(self)):
            h.update(self.example_ids[i].encode())
            h.update(repr(self.prompts[i]).encode())
            if self.images is not None:
                for im in _image_list(self.images[i]):
                    a = np.ascontiguousarray(np.asarray(im))
                    h.update(str(a.shape).encode())
                    h.update(a.tobytes())
            if self.gold is not None:
                h.update(repr(self.gold[i]).encode())
        return h.hexdigest()[:16]

    def run_kwargs(self) -> dict[str, Any]:
        """``prompts``, ``images`` and ``example_ids`` for :meth:`LatentRunner.run`."""
        return {"prompts": list(self.prompts), "images": None if self.images is None else list(self.images),
                "example_ids": list(self.example_ids)}


def _image_list(entry: Any) -> list[Any]:
    if entry is None:
        return []
    if isinstance(entry, (list, tuple)):
        return list(entry)
    return [entry]


def _map_image(entry: Any, fn: Callable[[np.ndarray], np.ndarray]) -> Any:
    if entry is None:
        return None
    if isinstance(entry, (list, tuple)):
        return [fn(np.asarray(im)) for im in entry]
    return fn(np.asarray(entry))


def _example_rng(seed: int, example_id: str) -> np.random.Generator:
    return numpy_rng(seed, example_id)


def derangement(n: int, seed: int = 0, groups: Sequence[Any] | None = None, max_tries: int = 1000) -> tuple[int, ...]:
    """A seeded random permutation ``m`` of ``range(n)`` with ``m[i] != i`` for every ``i``.

    With ``groups``, also ``groups[m[i]] != groups[i]`` (e.g. never pair two questions about the
    same image, which would make an image swap a no-op). Drawn by rejection sampling from
    ``numpy.random.default_rng(seed)`` (uniform over valid permutations); when ``max_tries`` draws
    fail (many examples share a group), a valid one is built instead: examples are put in a random
    order grouped by label and each is paired with the one ``m`` places further (``m`` = the
    largest group's size), cyclically. Raises :class:`InputError` when none exists (one group holds
    more than half of the examples).
    """
    if n < 2:
        raise InputError(f"a derangement needs at least 2 examples, got {n}.")
    rng = np.random.default_rng(seed)
    g = None if groups is None else np.asarray([str(x) for x in groups])
    if g is not None and len(g) != n:
        raise InputError(f"derangement: {len(g)} group labels for {n} examples.")
    idx = np.arange(n)
    for _ in range(max_tries):
        p = rng.permutation(n)
        if np.any(p == idx):
            continue
        if g is not None and np.any(g[p] == g):
            continue
        return tuple(int(x) for x in p)
    labels = g if g is not None else np.asarray([str(i) for i in range(n)])
    uniq = list(dict.fromkeys(labels.tolist()))
    sizes = {u: int(np.sum(labels == u)) for u in uniq}
    m = max(sizes.values())
    if 2 * m > n:
        raise InputError(
            f"no derangement of {n} examples exists: {m} of them share one group, more than half; "
            "pass an explicit mapping."
        )
    order = []
    for u in (uniq[i] for i in rng.permutation(len(uniq))):
        members = np.flatnonzero(labels == u)
        order.extend(int(x) for x in members[rng.permutation(len(members))])
    out = [0] * n
    for pos, i in enumerate(order):
        out[i] = order[(pos + m) % n]
    return tuple(out)


# --------------------------------------------------------------------------- perturbations
class Perturbation(abc.ABC):
    """Base class: a controlled change to every example of an :class:`InputSet`.

    Subclasses implement :meth:`_one` (the change for example ``i`` of the full set); those that
    pair examples override :meth:`bind` to fix their mapping.
    """

    name: str = "perturbation"

    def bind(self, inputs: InputSet) -> "Perturbation":
        """A copy with everything that depends on the whole input set fixed (default: self)."""
        return self

    def apply(self, inputs: InputSet, indices: Sequence[int] | None = None) -> InputSet:
        """The perturbed examples at ``indices`` (default: all), as a new InputSet.

        The result holds ``inputs.example_ids[indices]`` in the same order. Partners of swaps are
        looked up in the *full* ``inputs``.
        """
        bound = self.bind(inputs)
        idx = list(range(len(inputs))) if indices is None else [int(i) for i in indices]
        prompts, images, gold, meta = [], [], [], []
        for i in idx:
            p, im, g, m = bound._one(inputs, i)
            prompts.append(p)
            images.append(im)
            gold.append(g)
            meta.append(m)
        return InputSet(
            example_ids=tuple(inputs.example_ids[i] for i in idx), prompts=tuple(prompts),
            images=None if inputs.images is None else tuple(images),
            gold=None if inputs.gold is None and all(g is None for g in gold) else tuple(gold),
            meta=tuple(meta),
        )

    __call__ = apply

    @abc.abstractmethod
    def _one(self, inputs: InputSet, i: int) -> tuple[Any, Any, str | None, dict[str, Any]]:
        """The change for example ``i``: (prompt, image, gold, meta)."""

    def to_config(self) -> dict[str, Any]:
        """JSON-ready description: the class name and every field."""
        d: dict[str, Any] = {"type": type(self).__name__}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if callable(v):
                v = getattr(v, "__qualname__", type(v).__qualname__)
            elif isinstance(v, tuple):
                v = list(v)
            d[f.name] = v
        return d


def _need_images(inputs: InputSet, who: str) -> None:
    if inputs.images is None:
        raise InputError(f"{who} changes images, but the InputSet has none (images=None).")


def _toy(inputs: InputSet, i: int) -> Any:
    return inputs.meta[i].get("toy")


def _toy_gold(scene: Any, template: str, query_word: str) -> str | None:
    from latentprobe.toy.shapes import answer_question

    try:
        return answer_question(scene, template, query_word)[0]
    except ValueError:
        return None


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


def _check_mapping(mapping: tuple[int, ...], n: int, who: str) -> None:
    if len(mapping) != n:
        raise InputError(f"{who}.mapping has {len(mapping)} entries for {n} examples; bind it to this InputSet.")
    bad = [j for j in mapping if not 0 <= j < n]
    if bad:
        raise InputError(f"{who}.mapping points at examples {bad[:5]} outside 0..{n - 1}.")


@dataclass(frozen=True)
class ImageSwap(Perturbation):
    """Show example ``mapping[i]``'s image with example ``i``'s question.

    Default mapping: :func:`derangement` with ``seed`` that never pairs two examples showing the
    same image (by ``meta["image_id"]``, else by pixel content). Toy gold answers are recomputed
    for the new (image, question) pair (``None`` when the question is not well posed there).
    """

    mapping: tuple[int, ...] | None = None
    seed: int = 0
    name: str = "image_swap"

    def bind(self, inputs: InputSet) -> "ImageSwap":
        _need_images(inputs, "ImageSwap")
        if self.mapping is None:
            return dataclasses.replace(self, mapping=derangement(len(inputs), self.seed, _image_groups(inputs)))
        _check_mapping(tuple(self.mapping), len(inputs), "ImageSwap")
        return self

    def _one(self, inputs: InputSet, i: int):
        j = self.mapping[i]
        meta = {**inputs.meta[i], "perturbation": self.name, "partner": inputs.example_ids[j]}
        gold = None
        a, b = _toy(inputs, i), _toy(inputs, j)
        if a is not None and b is not None:
            gold = _toy_gold(b.scene, a.template, a.query_word)
            meta["image_id"] = b.image_id
        elif "image_id" in inputs.meta[j]:
            meta["image_id"] = inputs.meta[j]["image_id"]
        return inputs.prompts[i], _copy_image(inputs.images[j]), gold, meta


def _copy_image(entry: Any) -> Any:
    return _map_image(entry, lambda a: np.array(a, copy=True))


@dataclass(frozen=True)
class BlankImage(Perturbation):
    """Replace every image by a uniform image of the same size (``fill``: grey level or RGB)."""

    fill: int | tuple[int, int, int] = 0
    name: str = "blank_image"

    def _one(self, inputs: InputSet, i: int):
        _need_images(inputs, "BlankImage")
        fill = np.asarray(self.fill, dtype=np.uint8)

        def f(a: np.ndarray) -> np.ndarray:
            out = np.empty_like(a, dtype=np.uint8)
            out[...] = fill
            return out

        meta = {**inputs.meta[i], "perturbation": self.name}
        return inputs.prompts[i], _map_image(inputs.images[i], f), None, meta


@dataclass(frozen=True)
class NoiseImage(Perturbation):
    """Gaussian pixel noise, seeded per ``(seed, example_id)``.

    ``additive=True``: ``clip(image + N(0, sigma^2))``, a graded corruption of the real image.
    ``additive=False``: a pure noise image ``clip(N(128, sigma^2))`` carrying no information about
    the scene. Toy gold is kept for additive noise (the scene is unchanged), ``None`` otherwise.
    """

    sigma: float = 64.0
    seed: int = 0
    additive: bool = True
    name: str = "noise_image"

    def _one(self, inputs: InputSet, i: int):
        _need_images(inputs, "NoiseImage")
        rng = _example_rng(self.seed, inputs.example_ids[i])

        def f(a: np.ndarray) -> np.ndarray:
            eps = rng.normal(0.0, float(self.sigma), size=a.shape)
            base = a.astype(np.float64) if self.additive else np.full(a.shape, 128.0)
            return np.clip(np.rint(base + eps), 0, 255).astype(np.uint8)

        gold = inputs.gold[i] if (self.additive and inputs.gold is not None) else None
        meta = {**inputs.meta[i], "perturbation": self.name}
        return inputs.prompts[i], _map_image(inputs.images[i], f), gold, meta


@dataclass(frozen=True)
class Occlude(Perturbation):
    """Fill a box of the image.

    ``box``: ``(top, left, bottom, right)`` in pixels (end-exclusive), ``"center"`` (the central
    half of each side) or ``"target"`` (toy examples: the grid cell of the object the answer is
    about; counting questions, which have no target object, get the centre box). ``fill``: grey
    level, RGB triple or ``"noise"`` (seeded per example). The gold answer is set to ``None``
    (occluding the answer's object makes the question unanswerable).
    """

    box: tuple[int, int, int, int] | str = "center"
    fill: int | tuple[int, int, int] | str = 0
    seed: int = 0
    name: str = "occlude"

    def _box(self, inputs: InputSet, i: int, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        h, w = int(shape[0]), int(shape[1])
        if isinstance(self.box, str):
            if self.box == "target":
                ex = _toy(inputs, i)
                if ex is None:
                    raise InputError("Occlude(box='target') needs toy examples (InputSet.from_toy).")
                if ex.target is not None:
                    from latentprobe.toy.shapes import cell_box

                    return cell_box(ex.target.row, ex.target.col, h)
            elif self.box != "center":
                raise InputError(f"Occlude.box={self.box!r}; use a (top, left, bottom, right) tuple, 'center' or 'target'.")
            return h // 4, w // 4, h - h // 4, w - w // 4
        return tuple(int(v) for v in self.box)  # type: ignore[return-value]

    def _one(self, inputs: InputSet, i: int):
        _need_images(inputs, "Occlude")
        from latentprobe.images import occlude

        seed = int(_example_rng(self.seed, inputs.example_ids[i]).integers(0, 2**31 - 1))
        img = _map_image(inputs.images[i], lambda a: occlude(a, self._box(inputs, i, a.shape), self.fill, seed))
        meta = {**inputs.meta[i], "perturbation": self.name}
        return inputs.prompts[i], img, None, meta


@dataclass(frozen=True)
class QuestionSwap(Perturbation):
    """Ask example ``mapping[i]``'s question (its whole prompt) about example ``i``'s image.

    Default mapping: a seeded :func:`derangement` that never pairs two identical prompts. Toy gold
    answers are recomputed (``None`` when the new question is not well posed for the scene).
    """

    mapping: tuple[int, ...] | None = None
    seed: int = 0
    name: str = "question_swap"

    def bind(self, inputs: InputSet) -> "QuestionSwap":
        if self.mapping is None:
            groups = [repr(p) for p in inputs.prompts]
            return dataclasses.replace(self, mapping=derangement(len(inputs), self.seed, groups))
        _check_mapping(tuple(self.mapping), len(inputs), "QuestionSwap")
        return self

    def _one(self, inputs: InputSet, i: int):
        j = self.mapping[i]
        meta = {**inputs.meta[i], "perturbation": self.name, "partner": inputs.example_ids[j]}
        gold = None
        a, b = _toy(inputs, i), _toy(inputs, j)
        if a is not None and b is not None:
            gold = _toy_gold(a.scene, b.template, b.query_word)
            meta.update(question=b.question, template=b.template)
        image = None if inputs.images is None else _copy_image(inputs.images[i])
        return inputs.prompts[j], image, gold, meta


@dataclass(frozen=True)
class InstanceSwap(Perturbation):
    """Replace example ``i`` entirely (prompt, image, gold, metadata) by example ``mapping[i]``.

    Comparing an example's latents with those of a *different* instance is the paper's
    cross-instance baseline: a perturbation that changes latents less than this changes them
    little. Default mapping: a seeded :func:`derangement`.
    """

    mapping: tuple[int, ...] | None = None
    seed: int = 0
    name: str = "instance_swap"

    def bind(self, inputs: InputSet) -> "InstanceSwap":
        if self.mapping is None:
            return dataclasses.replace(self, mapping=derangement(len(inputs), self.seed))
        _check_mapping(tuple(self.mapping), len(inputs), "InstanceSwap")
        return self

    def _one(self, inputs: InputSet, i: int):
        j = self.mapping[i]
        meta = {**inputs.meta[j], "perturbation": self.name, "partner": inputs.example_ids[j]}
        image = None if inputs.images is None else _copy_image(inputs.images[j])
        gold = None if inputs.gold is None else inputs.gold[j]
        return inputs.prompts[j], image, gold, meta


@dataclass(frozen=True)
class Counterfactual(Perturbation):
    """Toy minimal pair: :func:`~latentprobe.toy.shapes.counterfactual_scene` changes one object
    attribute so that the answer changes; the question and every other object stay. The perturbed
    gold is the counterfactual answer."""

    seed: int = 0
    name: str = "counterfactual"

    def _one(self, inputs: InputSet, i: int):
        from latentprobe.toy.shapes import counterfactual_scene

        ex = _toy(inputs, i)
        if ex is None:
            raise InputError("Counterfactual needs toy examples in InputSet.meta['toy'] (use InputSet.from_toy).")
        cf = counterfactual_scene(ex, seed=self.seed)
        size = int(inputs.meta[i].get("image_size", 112))
        meta = {**inputs.meta[i], "perturbation": self.name, "toy": cf, "image_id": cf.image_id}
        image = cf.image(size)
        if inputs.images is not None and isinstance(inputs.images[i], (list, tuple)):
            image = [image]
        return inputs.prompts[i], image, cf.answer, meta


@dataclass(frozen=True)
class Custom(Perturbation):
    """A user callable.

    ``per_example=False``: ``fn(inputs) -> InputSet`` over the whole set (it must keep
    ``example_ids`` and their order). ``per_example=True``: ``fn(prompt, image, meta) -> (prompt,
    image)`` or ``(prompt, image, gold)``, called once per example, so a sweep calls it chunk by
    chunk. ``name`` labels the results and the config.
    """

    fn: Callable[..., Any]
    name: str = "custom"
    per_example: bool = True

    def apply(self, inputs: InputSet, indices: Sequence[int] | None = None) -> InputSet:
        if self.per_example:
            return super().apply(inputs, indices)
        out = self.fn(inputs)
        if not isinstance(out, InputSet) or out.example_ids != inputs.example_ids:
            raise InputError(f"Custom perturbation {self.name!r} must return an InputSet with the same example_ids, in order.")
        return out if indices is None else out.select(indices)

    __call__ = apply

    def _one(self, inputs: InputSet, i: int):
        image = None if inputs.images is None else inputs.images[i]
        res = self.fn(inputs.prompts[i], image, dict(inputs.meta[i]))
        if not isinstance(res, tuple) or len(res) not in (2, 3):
            raise InputError(f"Custom perturbation {self.name!r}: fn must return (prompt, image) or (prompt, image, gold).")
        gold = res[2] if len(res) == 3 else None
        return res[0], res[1], gold, {**inputs.meta[i], "perturbation": self.name}


_REGISTRY = {c.__name__: c for c in (ImageSwap, BlankImage, NoiseImage, Occlude, QuestionSwap, InstanceSwap,
                                     Counterfactual)}


def perturbation_from_config(config: dict[str, Any]) -> Perturbation:
    """Rebuild a built-in perturbation from :meth:`Perturbation.to_config` (not :class:`Custom`)."""
    cfg = dict(config)
    kind = cfg.pop("type", None)
    if kind not in _REGISTRY:
        raise InputError(f"cannot rebuild a perturbation of type {kind!r}; known: {sorted(_REGISTRY)}.")
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items()}
    return _REGISTRY[kind](**kw)
