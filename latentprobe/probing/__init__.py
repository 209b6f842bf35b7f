"""Linear probing of latent-token representations.

This module answers one narrow question: *is a quantity linearly decodable
from a set of hidden states?*  It works on plain arrays (NumPy, or CPU torch
tensors) and never runs a model; capture the activations first, then probe
them here.

Everything follows scikit-learn conventions: estimators take their
hyper-parameters in ``__init__``, learned state carries a trailing underscore,
and :class:`LinearProbe` composes with :func:`sklearn.base.clone`,
:func:`sklearn.model_selection.cross_val_score` and pipelines.

Main entry points
-----------------
LinearProbe
    Standardise + L2-regularised logistic (classification) or ridge
    (regression) model whose regularisation strength is chosen by an inner,
    optionally grouped, cross-validation.
cross_validate_probe
    Nested, grouped cross-validation returning a :class:`ProbeScore` with a
    95% t-interval over the outer folds.
majority_baseline, shuffle_control, control_task_labels, shuffle_within_types
    Controls: trivial predictor, label permutation, and the control task of
    Hewitt & Liang (2019) (one random label per control type, or the target
    permuted within each type).
recurring_types, control_recurrence
    Control types that recur across grouped folds (questions backed off to
    their longest recurring prefix) and the share of held-out examples whose
    type was seen in training.
probe_sweep
    Probe every (layer, latent step) cell and tabulate scores and controls.
probe_positions
    Probe the same target at several position groups (latents, close marker, first answer token, image,
    ...) and tabulate the decodability gap between the latents and each of them.
numeric_values, bin_values, parse_intermediates, intermediate_values
    Targets beyond categories: numbers from a column or a callable (probe them with
    ``task="regression"`` and ``control_types="shuffled"``), quantile bins for a logistic probe, and the
    intermediate results of a gold chain ``<<a*b=c>>``.
compare_representations
    Probe several named representations (latent tokens, image tokens, text
    tokens, a random-weights model, ...) side by side.

What a probe does NOT show
--------------------------
A probe's accuracy shows that information is *linearly decodable* from the
representation by a supervised read-out, not that the model *uses* that
information, nor that it is computed at that position rather than copied
there.  High accuracy on a random-weights model or on the raw input tokens is
the usual sign that the probe is reading the input rather than the
computation; use :func:`compare_representations` and causal interventions
(patching, ablation) before drawing mechanistic conclusions.

Layout
------
``estimator``
    :class:`LinearProbe`.
``cv``
    :func:`group_kfold_splits`, :func:`cross_validate_probe`, :class:`ProbeScore`.
``controls``
    :func:`majority_baseline`, :func:`shuffle_control`, :func:`control_task_labels`.
``control_types``
    :func:`recurring_types`, :func:`shuffle_within_types`, :func:`control_recurrence`.
``sweep``
    :func:`probe_sweep`, :class:`ProbeSweepResult`, :func:`compare_representations`.
``positions``
    :func:`probe_positions`, :class:`PositionProbeResult`.
``targets``
    :func:`numeric_values`, :func:`bin_values`, :func:`parse_intermediates`, :func:`intermediate_values`.
``_checks``
    Input validation shared by the above.
"""

from __future__ import annotations

from latentprobe.errors import ProbeError
from latentprobe.probing.control_types import control_recurrence, recurring_types, shuffle_within_types
from latentprobe.probing.controls import control_task_labels, majority_baseline, shuffle_control
from latentprobe.probing.cv import ProbeScore, cross_validate_probe, group_kfold_splits
from latentprobe.probing.estimator import LinearProbe
from latentprobe.probing.positions import PositionProbeResult, probe_positions
from latentprobe.probing.sweep import SCORE_COLUMNS, ProbeSweepResult, compare_representations, probe_sweep
from latentprobe.probing.targets import (SHUFFLED, bin_values, intermediate_values, numeric_values,
                                         parse_intermediates, shuffled_types)

__all__ = [
    "ProbeError",
    "LinearProbe",
    "ProbeScore",
    "ProbeSweepResult",
    "SCORE_COLUMNS",
    "group_kfold_splits",
    "cross_validate_probe",
    "majority_baseline",
    "shuffle_control",
    "control_task_labels",
    "shuffle_within_types",
    "recurring_types",
    "control_recurrence",
    "probe_sweep",
    "compare_representations",
    "PositionProbeResult",
    "probe_positions",
    "SHUFFLED",
    "numeric_values",
    "bin_values",
    "parse_intermediates",
    "intermediate_values",
    "shuffled_types",
]
