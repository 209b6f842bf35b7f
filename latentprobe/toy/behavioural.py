"""Derived questions for the behavioural probe (:func:`latentprobe.behavioural.behavioural_probe`) on toy examples."""

from __future__ import annotations

from typing import Any

from latentprobe.perturbations import InputSet
from latentprobe.toy.model import prompt_for
from latentprobe.toy.perturbations import toy_inputs
from latentprobe.toy.shapes import TEMPLATES, answer_question

__all__ = ["toy_derived_inputs"]


def toy_derived_inputs(examples: list[Any]) -> tuple[InputSet, InputSet]:
    """Original and derived inputs for toy examples: a question about the queried object's colour
    becomes "what shape is the {colour} object ?" (kept only where that colour is unique), and a
    question about its shape becomes "what colour is the {shape} ?" (where the shape is unique).

    Parameters
    ----------
    examples : list[Any]
        Toy examples.

    Returns
    -------
    tuple[InputSet, InputSet]
        Original and derived inputs, aligned.
    """
    kept, derived_q, derived_a = [], [], []
    for e in examples:
        if e.target_index is None:
            continue
        obj = e.scene.objects[e.target_index]
        if e.template in ("colour_of_shape", "colour_left_of"):
            template, word = "shape_of_colour", obj.colour
        else:
            template, word = "colour_of_shape", obj.shape
        try:
            ans, tgt, _ = answer_question(e.scene, template, word)
        except ValueError:
            continue
        if tgt != e.target_index:
            continue
        kept.append(e)
        derived_q.append(TEMPLATES[template].format(shape=word, colour=word))
        derived_a.append(ans)
    original = toy_inputs(kept)
    derived = original.replace(prompts=tuple(prompt_for(q) for q in derived_q), gold=tuple(derived_a))
    return original, derived
