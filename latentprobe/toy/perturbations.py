"""Toy inputs and the toy's own perturbations: minimal pairs and target-cell occlusion.

The generic perturbations (:mod:`latentprobe.perturbations`) know nothing about the toy. This
module supplies what only the toy can: :func:`toy_inputs` builds an
:class:`~latentprobe.perturbations.InputSet` whose ``meta["toy"]`` holds each
:class:`~latentprobe.toy.shapes.ToyExample` and whose ``relabel`` (:func:`toy_relabel`) answers
any toy question about any toy scene, so swaps recompute gold answers;
:class:`Counterfactual` changes one object attribute so that the answer changes; and
:class:`OccludeTarget` covers the grid cell of the object the answer is about. Importing this
module registers both perturbations for :func:`~latentprobe.perturbations.perturbation_from_config`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from latentprobe.errors import InputError
from latentprobe.perturbations import InputSet, Occlude, Perturbation, PerturbedExample, register_perturbation
from latentprobe.toy.shapes import ToyExample, answer_question, cell_box, counterfactual_scene

__all__ = ["toy_inputs", "toy_relabel", "Counterfactual", "OccludeTarget"]


def toy_relabel(image_meta: Mapping[str, Any], question_meta: Mapping[str, Any]
                ) -> tuple[str | None, dict[str, Any]] | None:
    """The gold answer of one toy example's question about another toy example's scene.

    ``(gold, {"image_id", "question", "template"})``; gold is ``None`` when the question is not
    well posed for that scene (e.g. the shape it names is absent). ``None`` when either example
    is not a toy example (no ``meta["toy"]``).

    Parameters
    ----------
    image_meta : Mapping[str, Any]
        Metadata of the example whose scene is shown.
    question_meta : Mapping[str, Any]
        Metadata of the example whose question is asked.

    Returns
    -------
    tuple or None
        ``(gold, meta)``, or ``None`` when the question is not well posed there.
    """
    a, b = question_meta.get("toy"), image_meta.get("toy")
    if a is None or b is None:
        return None
    try:
        gold: str | None = answer_question(b.scene, a.template, a.query_word)[0]
    except ValueError:
        gold = None
    return gold, {"image_id": b.image_id, "question": a.question, "template": a.template}


def toy_inputs(examples: Sequence[ToyExample], *, image_size: int = 112,
               prompt_fn: Callable[[str], str] | None = None) -> InputSet:
    """Inputs for toy examples: prompt ``question`` then the image (as
    :func:`latentprobe.toy.model.prompt_for` writes it), the gold answers, and ``meta`` with
    ``question``, ``template``, ``image_id``, ``image_size`` and the example itself under ``"toy"``.
    Gold answers of swaps are recomputed by :func:`toy_relabel`.

    Parameters
    ----------
    examples : Sequence[ToyExample]
        Toy examples.
    image_size : int
        Side of the images.
    prompt_fn : Callable[[str], str] | None
        Builds the prompt from the question (default :func:`prompt_for`).

    Returns
    -------
    InputSet
    """
    if prompt_fn is None:
        from latentprobe.toy.model import prompt_for as prompt_fn
    examples = list(examples)
    return InputSet(
        example_ids=tuple(e.example_id for e in examples),
        prompts=tuple(prompt_fn(e.question) for e in examples),
        images=tuple(e.image(image_size) for e in examples),
        gold=tuple(e.answer for e in examples),
        meta=tuple({"question": e.question, "template": e.template, "image_id": e.image_id, "toy": e,
                    "image_size": image_size} for e in examples),
        relabel=toy_relabel,
    )


def _toy_example(inputs: InputSet, i: int, who: str) -> ToyExample:
    ex = inputs.meta[i].get("toy")
    if ex is None:
        raise InputError(
            f"{who} needs toy examples in InputSet.meta['toy'] (example {inputs.example_ids[i]!r} has none); "
            "build the inputs with latentprobe.toy.perturbations.toy_inputs(examples)."
        )
    return ex


@register_perturbation
@dataclass(frozen=True)
class Counterfactual(Perturbation):
    """Toy minimal pair: :func:`~latentprobe.toy.shapes.counterfactual_scene` changes one object
    attribute so that the answer changes; the question and every other object stay. The perturbed
    gold is the counterfactual answer.

    Parameters
    ----------
    seed : int
        Seed of the change.
    name : str
        Label of the condition.
    """

    seed: int = 0
    name: str = "counterfactual"

    def apply_one(self, inputs: InputSet, i: int) -> PerturbedExample:
        ex = _toy_example(inputs, i, "Counterfactual")
        cf = counterfactual_scene(ex, seed=self.seed)
        size = int(inputs.meta[i].get("image_size", 112))
        meta = {**inputs.meta[i], "perturbation": self.name, "toy": cf, "image_id": cf.image_id}
        image = cf.image(size)
        if inputs.images is not None and isinstance(inputs.images[i], (list, tuple)):
            image = [image]
        return PerturbedExample(inputs.prompts[i], image, cf.answer, meta)


@register_perturbation
@dataclass(frozen=True)
class OccludeTarget(Occlude):
    """:class:`~latentprobe.perturbations.Occlude` over the grid cell of the object the answer is
    about. Counting questions, which have no target object, get ``box`` (default: the centre).

    Parameters
    ----------
    box
        The box of questions without a queried object (counting); otherwise the object's cell is filled.
    fill
        Grey level, RGB triple or ``"noise"``.
    seed
        Seed of the noise fill.
    name
        Label of the condition.
    """

    def box_for(self, inputs: InputSet, i: int, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        ex = _toy_example(inputs, i, "OccludeTarget")
        if ex.target is not None:
            return cell_box(ex.target.row, ex.target.col, int(shape[0]))
        return super().box_for(inputs, i, shape)
