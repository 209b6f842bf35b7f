"""Statistics conventions for latentprobe results.

Every effect reported by the toolkit follows the same rules:

* a point estimate together with a 95% percentile bootstrap confidence
  interval computed by resampling *examples* (the unit of replication);
* when two conditions are measured on the same examples, the bootstrap is
  *paired*: the same resampled example indices are used for both conditions,
  so example-to-example variation that is shared by the conditions cancels;
* the number of examples ``n`` is always reported;
* differences in accuracy additionally carry McNemar's exact test p-value;
* samples with fewer than :data:`SMALL_SAMPLE_N` examples carry a note saying
  that the interval is unreliable.

The bootstrap quantifies sampling variability over the examples that were
evaluated. It says nothing about variability over random seeds, prompts
templates, model checkpoints or other design choices that were held fixed,
and a percentile interval from a few dozen examples can be badly
miscalibrated.
"""

from latentprobe.errors import StatsInputError
from latentprobe.stats.bootstrap import (
    bootstrap_ci,
    bootstrap_mean_columns,
    mediation_effects,
    paired_bootstrap_diff,
    resample_indices,
)
from latentprobe.stats.effects import SMALL_SAMPLE_N, Effect, McNemarResult, effects_frame, small_sample_note
from latentprobe.stats.mcnemar import accuracy_difference, binary_outcome_effect, mcnemar_exact
from latentprobe.stats.multiplicity import ADJUSTMENTS, add_adjusted_columns, adjust_pvalues, simultaneous_level
from latentprobe.stats.ustat import jackknife_u_interval, pair_bootstrap_u_interval

__all__ = [
    "SMALL_SAMPLE_N",
    "StatsInputError",
    "Effect",
    "McNemarResult",
    "effects_frame",
    "small_sample_note",
    "bootstrap_ci",
    "paired_bootstrap_diff",
    "bootstrap_mean_columns",
    "resample_indices",
    "mcnemar_exact",
    "accuracy_difference",
    "binary_outcome_effect",
    "mediation_effects",
    "ADJUSTMENTS",
    "adjust_pvalues",
    "simultaneous_level",
    "add_adjusted_columns",
    "jackknife_u_interval",
    "pair_bootstrap_u_interval",
]
