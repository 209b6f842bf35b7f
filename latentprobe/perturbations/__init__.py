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
:class:`Occlude`       a box of the image filled (a fixed box or the centre)
:class:`QuestionSwap`  the prompt is another example's (image fixed)
:class:`InstanceSwap`  the whole instance is another example's: the paper's cross-instance
                       comparison (how different are latents of *different* inputs?)
:class:`Custom`        a user callable
=====================  ==========================================================================

Perturbations are small frozen dataclasses with a ``name`` and :meth:`Perturbation.to_config`; a
new one implements :meth:`Perturbation.apply_one` (one example's change; see docs/howto/extend.md).
Those that pair examples (swaps) are *bound* to an input set first (:meth:`Perturbation.bind`),
which fixes their mapping once for the whole set; :meth:`Perturbation.apply` can then perturb any
subset (a chunk of a sweep) consistently. Random draws are seeded per ``(seed, example_id)``, so a
chunked run and a one-shot run give the same inputs.

Gold answers of perturbed inputs are recomputed where that is possible (inputs whose
:attr:`InputSet.relabel` knows the scenes, such as the toy's) and ``None`` otherwise (e.g. a blank
image has no correct answer). Dataset-specific perturbations live with their data: the toy's
minimal pairs (``Counterfactual``) and target-cell occlusion (``OccludeTarget``) are in
:mod:`latentprobe.toy.perturbations`, registered with :func:`register_perturbation`.
"""

from latentprobe.perturbations.base import Perturbation, PerturbedExample, perturbation_from_config, register_perturbation
from latentprobe.perturbations.builtin import (
    BlankImage, Custom, ImageSwap, InstanceSwap, NoiseImage, Occlude, QuestionSwap,
)
from latentprobe.perturbations.inputs import InputSet, Relabel, derangement

__all__ = [
    "InputSet",
    "Perturbation",
    "PerturbedExample",
    "ImageSwap",
    "BlankImage",
    "NoiseImage",
    "Occlude",
    "QuestionSwap",
    "InstanceSwap",
    "Custom",
    "Relabel",
    "derangement",
    "perturbation_from_config",
    "register_perturbation",
]
