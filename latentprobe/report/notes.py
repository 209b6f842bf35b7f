"""Notes a report adds where they apply: texts only (Markdown), for :meth:`Report.add_note`.

* :data:`PROPAGATE_REDECODE_NOTE`: why ``propagate`` and ``redecode`` give the same rows when every
  latent step is intervened on with an intervention that does not read the latent it replaces.
* :data:`SMALL_SAMPLE_NOTE`: probes fit on few examples (below :data:`SMALL_SAMPLE_N`), a
  ``str.format`` template over ``{n}`` (examples) and ``{n_groups}`` (groups the folds keep whole).

Examples
--------
>>> from latentprobe.report import Report
>>> from latentprobe.report.notes import SMALL_SAMPLE_N, SMALL_SAMPLE_NOTE
>>> n = 6
>>> rep = Report("probes")
>>> if n < SMALL_SAMPLE_N:
...     _ = rep.add_note(SMALL_SAMPLE_NOTE.format(n=n, n_groups=6), kind="warning", title="Few examples")
>>> "Few examples: 6 (6 groups)" in rep.to_html()
True
"""

from __future__ import annotations

__all__ = ["INDEPENDENT_INTERVENTIONS", "PROPAGATE_REDECODE_NOTE", "SMALL_SAMPLE_N", "SMALL_SAMPLE_NOTE"]

#: The interventions of :func:`latentprobe.causal.default_interventions` whose output does not read the latent
#: they replace (one shared vector, Gaussian noise of a fixed scale, zeros, the per-step mean, this example's
#: recorded first latent, another example's recorded latent). With every step intervened on, their propagate
#: and redecode rows coincide. ``add_noise``, ``near_zero`` (a scaling), ``random_direction`` (the latent's norm)
#: and ``swap_placebo`` (the swap's distance from the latent) read it, so their rows differ.
INDEPENDENT_INTERVENTIONS: tuple[str, ...] = ("shared_tensor", "replace_noise", "zero", "mean_ablate",
                                              "repeat_first", "swap")

PROPAGATE_REDECODE_NOTE = (
    "**Why propagate and redecode agree here.** Both modes intervene on every latent step, and then "
    "generate. *Redecode* feeds the intervened recorded latents and decodes the answer; *propagate* "
    "regenerates each latent from the state before it and intervenes on it as it is produced. When the "
    "intervention writes a value that does not depend on the latent it replaces (zeros, a fixed or random "
    "vector, the mean latent, another example's latent), every latent position receives the same vector "
    "in both modes, the model sees the same inputs, and the answers are the same token for token "
    "(draws are keyed by example and position; log-probabilities agree to float precision). The rows are "
    "then one measurement reported twice, not two agreeing results. They differ only for interventions "
    "that read the latent (`add_noise`, `near_zero`, `random_direction`, `swap_placebo`), when fewer than "
    "all steps are intervened on, or when the model itself decides how many latents to produce. To ask "
    "whether changing one latent changes the later ones, intervene on one step (`steps = [k]`) in "
    "propagate mode."
)

#: Below this many examples a probe section gets :data:`SMALL_SAMPLE_NOTE`.
SMALL_SAMPLE_N: int = 50

SMALL_SAMPLE_NOTE = (
    "**Few examples: {n} ({n_groups} groups).** Each probe score is a held-out accuracy over folds of a "
    "few examples each, so one example moves it by a large step and its interval is wide; the majority, "
    "shuffled-label and control-task baselines are just as noisy. With this many examples a high score "
    "across many layers and steps is expected by chance somewhere (cells are not corrected for multiple "
    "comparisons), and a high-dimensional latent can separate few examples whatever their labels. Read "
    "these probes as a smoke test of the pipeline, not as evidence of what the latents encode; run the "
    "study on a few hundred examples for that."
)
