"""The study's one door to the shipped toy models (``source = "toy:<variant>"``, ``benchmark = "toy"``).

Everything else in :mod:`latentprobe.study` works on any checkpoint; the toy is a client of the
core, so its names are read here only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from latentprobe.perturbations import InputSet
    from latentprobe.toy import ToyModel
    from latentprobe.toy.shapes import ToyExample

__all__ = ["toy_variants", "load_toy", "toy_inputs", "register_toy_names", "toy_hooks"]


def toy_variants() -> tuple[str, ...]:
    """The shipped toy variants (``toy:<variant>``).

    Returns
    -------
    tuple of str
    """
    from latentprobe.toy.model import VARIANTS

    return tuple(VARIANTS)


def load_toy(variant: str, weights: str | None = None) -> ToyModel:
    """The toy model ``variant`` (:func:`latentprobe.toy.load`).

    Parameters
    ----------
    variant : str
        A toy variant (:func:`toy_variants`).
    weights : str or None
        The folder ``latentprobe toy train --out FOLDER`` wrote (default: the shipped weights).

    Returns
    -------
    ToyModel
    """
    from latentprobe import toy

    return toy.load(variant, weights)


def toy_inputs(examples: list[ToyExample]) -> InputSet:
    """The InputSet of toy examples (:func:`latentprobe.toy.toy_inputs`).

    Parameters
    ----------
    examples : list of ToyExample
        The toy examples (``ToyModel.examples(split)``).

    Returns
    -------
    InputSet
    """
    from latentprobe.toy import toy_inputs as build

    return build(examples)


def register_toy_names() -> None:
    """Register the toy's perturbations (``counterfactual``, ``occlude_target``) so study files can name them."""
    import latentprobe.toy.perturbations  # noqa: F401  (registers the classes)


def toy_hooks(tm: ToyModel) -> dict[str, Callable[..., Any]]:
    """The toy family's analysis hooks: a random-weights copy of the model (the same architecture, latent mode
    opened by the runner) and the behavioural probe's derived questions.

    Parameters
    ----------
    tm : ToyModel
        The study's toy model.

    Returns
    -------
    dict
        ``{"random_runner": seed -> LatentRunner, "derived_inputs": InputSet -> InputSet}``.
    """
    from latentprobe.engine import LatentRunner
    from latentprobe.toy import build_model
    from latentprobe.toy.behavioural import toy_derived_inputs

    def random_runner(s: int) -> Any:
        model = build_model(tm.tokenizer.get_vocab(), seed=s + 1)
        return LatentRunner(model, tm.tokenizer, tm.spec.replace(open_mode="appended"), mask_rule=tm.mask_rule)

    def derived_inputs(inputs: Any) -> Any:
        return toy_derived_inputs([m["toy"] for m in inputs.meta])

    return {"random_runner": random_runner, "derived_inputs": derived_inputs}
