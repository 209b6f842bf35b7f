"""The paper's three experiments, with paired designs and intervals: X -> Z, Z -> Y, mediation.

The study models an input ``X`` (image + question), the latent reasoning tokens ``Z`` and the
answer ``Y``. Three analyses, each returning a frozen result with tidy ``rows`` (one row per
example x condition [x step x layer]), a ``summary`` with 95% bootstrap intervals over examples,
``dropped`` (which examples were left out, and why) and the ``config`` (seeds included):

:func:`x_to_z`
    Does changing the input change the latents? Clean and perturbed inputs (see
    :mod:`latentprobe.perturbations`) are run; latents at the same step and residual layer are
    compared (cosine similarity, relative L2 ``||z' - z|| / ||z||``), next to the same comparison
    for prompt-token states (baselines) and the paper's inter-instance similarity matrix.
:func:`z_to_y`
    Does changing the latents change the answer? The paper's interventions and a wider suite, in
    ``replay``, ``propagate`` and ``redecode`` modes (see :mod:`latentprobe.engine`).
:func:`decompose`
    Total, natural direct and natural indirect effects of an input change on the answer, with the
    latents as mediator.

Conventions
-----------
* **Only examples that entered latent mode count.** An example contributes to an X -> Z or
  mediation comparison only when both runs entered latent mode with the same number of latents
  (step-wise comparisons need it); Z -> Y keeps examples with the trace's most common non-zero
  number of latents, ties to the largest (:func:`latentprobe.trace.modal_latent_count`, the rule
  ``trace.stack`` and ``trace.features`` use too). Every result lists the others in ``dropped``
  (``reason`` column; :meth:`drop_counts` tallies them), and ``config["kept"]`` counts the examples
  kept and left out (:meth:`latentprobe.trace.LatentSelection.to_dict`).
* **References are computed the same way as the intervened runs.** In :func:`z_to_y` every
  intervention is compared with the *no-op control of the same mode* (``intervention="none"``):
  replay teacher-forces, propagate and redecode decode again from a prefix, and each of these
  differs slightly from the original generation (numerics, answer token budget). The control's
  own change from the original run is in the rows (``changed_vs_clean``). In :func:`decompose` all
  four conditions are ``redecode`` runs (the clean and treated ones with their own latents), so
  the effects isolate ``X`` and ``Z``.
* **Answers are scored by a scorer** (``scorer=``: ``"exact"`` by default, ``"choice"``,
  ``"numeric"``, ``"first_word"``, a :class:`~latentprobe.scoring.Scorer` or a function
  ``(answer, gold, example) -> bool | None``; see :func:`latentprobe.scoring.scorer_from_name`).
  Multiple-choice options come per example from the InputSet's ``meta["options"]`` or from
  ``ChoiceScorer(options_by_example=...)``. Rows record ``parsed`` and ``parse_method``; an
  answer the scorer cannot read (empty, a refusal, two options named) keeps ``correct`` NaN.
  **In accuracies and effects on correctness an unreadable answer counts as wrong**, on every
  example with a gold: an intervention that makes the model refuse or babble has destroyed a
  correct answer, and restricting the comparison to examples readable in both conditions would
  hide exactly that (and let the set of compared examples differ between interventions).
  Summaries count those answers in ``n_unparseable``; a large count says the scorer does not
  fit the model's output format. The scorer is part of a sweep's fingerprint: a folder scored
  one way is not resumed another way.
* **Gold log-probability** is the log-probability of the gold answer's *first token* at the first
  answer position (``first_token_logprobs[gold_id]``); it is the answer's log-probability for
  one-token answers such as the toy model's. In replay mode ``recorded_logprob`` additionally
  scores the whole recorded (clean) answer under the intervention (``forced_logprobs``).
* **Results are written as they are computed** when ``out_dir`` is given: examples are processed
  in chunks (``chunk_size``), each (chunk, condition) unit is stored by a
  :class:`~latentprobe.sweep.ResumableSweep`, and a rerun with the same arguments resumes where
  a killed one stopped. Without ``out_dir`` the same store is kept in memory. Summaries are
  recomputed from the stored rows.

Modules: :mod:`~latentprobe.causal.results` (result objects), :mod:`~latentprobe.causal.xz`,
:mod:`~latentprobe.causal.zy`, :mod:`~latentprobe.causal.decompose` (the three analyses) and
:mod:`~latentprobe.causal.common` (shared helpers). The interventions live in
:mod:`latentprobe.interventions`, the bootstrap in :mod:`latentprobe.stats`.
"""

from latentprobe.causal.attribution import AttributionResult, attribution_patching
from latentprobe.causal.common import BASELINE_SOURCES, MODES, PAPER_INTERVENTIONS
from latentprobe.causal.decompose import decompose, summarize_mediation
from latentprobe.causal.patch_stats import PatchResult, summarize_patching
from latentprobe.causal.patching import patch
from latentprobe.causal.results import MediationResult, XZResult, ZYResult
from latentprobe.causal.steps import StepResult, step_influence
from latentprobe.causal.xz import summarize_x_to_z, x_to_z
from latentprobe.causal.zy import default_interventions, summarize_z_to_y, z_to_y
from latentprobe.fingerprint import trace_fingerprint
from latentprobe.stats import bootstrap_mean_columns

__all__ = [
    "XZResult", "ZYResult", "MediationResult",
    "x_to_z", "z_to_y", "decompose",
    "summarize_x_to_z", "summarize_z_to_y", "summarize_mediation",
    "default_interventions", "MODES", "PAPER_INTERVENTIONS", "BASELINE_SOURCES", "bootstrap_mean_columns",
    "trace_fingerprint",
    "StepResult", "step_influence",
    "patch", "PatchResult", "summarize_patching",
    "attribution_patching", "AttributionResult",
]
