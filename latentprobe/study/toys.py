"""The study's one door to the shipped toy models (``source = "toy:<variant>"``, ``benchmark = "toy"``).

Everything else in :mod:`latentprobe.study` works on any checkpoint; the toy is a client of the
core, so its names are read here only.
"""

from __future__ import annotations

from typing import Any

__all__ = ["toy_variants", "load_toy", "toy_perturbation", "toy_inputs"]


def toy_variants() -> tuple[str, ...]:
    """The shipped toy variants (``toy:<variant>``)."""
    from latentprobe.toy.model import VARIANTS

    return tuple(VARIANTS)


def load_toy(variant: str) -> Any:
    """The shipped toy model ``variant`` (:func:`latentprobe.toy.load`)."""
    from latentprobe import toy

    return toy.load(variant)


def toy_perturbation(name: str, seed: int) -> Any:
    """The perturbations that need the toy data's ground truth: ``counterfactual`` and ``occlude_target``."""
    from latentprobe.toy import Counterfactual, OccludeTarget

    return Counterfactual(seed=seed) if name == "counterfactual" else OccludeTarget(seed=seed)


def toy_inputs(examples: list[Any]) -> Any:
    """The InputSet of toy examples (:func:`latentprobe.toy.toy_inputs`)."""
    from latentprobe.toy import toy_inputs as build

    return build(examples)
