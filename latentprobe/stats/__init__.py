"""Statistics conventions for latentprobe results.

Every effect reported by the toolkit follows the same rules:

* a point estimate with a 95% confidence interval over *examples* (the unit of replication),
  from a method calibrated for the kind of outcome and checked by simulation with known
  truths (:mod:`latentprobe.stats.coverage`, ``benchmarks/stats_coverage.py``):

  - a paired difference of 0/1 outcomes (an accuracy change): Tango's score interval for
    paired proportions, with the p-value of the score test it inverts (McNemar's asymptotic
    test), so the interval excludes 0 exactly when ``p < 0.05``; McNemar's exact p is kept
    in the method text. Never of zero width;
  - a proportion (an accuracy, a flip rate): Wilson's score interval, never of zero width;
  - the mean of a continuous outcome, or of paired per-example differences (a log-probability
    change; TE, NDE, NIE): the studentised bootstrap (bootstrap-t), with the p-value of the
    bootstrap-t test it inverts;
  - any other statistic: BCa;

  :func:`paired_difference_ci` and :func:`one_sample_ci` make the choice (``method="auto"``);
* when two conditions are measured on the same examples the interval is *paired*: it is
  built from per-example pairs (the discordant counts, or the per-example differences), so
  example-to-example variation shared by the conditions cancels;
* every bootstrap resamples examples through :func:`resample_indices`
  (``default_rng(seed).integers(0, n, size=(n_boot, n))``), so an interval is reproduced by its seed;
* the number of examples ``n`` is always reported;
* samples with fewer than :data:`SMALL_SAMPLE_N` examples carry a note saying that the
  interval is unreliable, and paired 0/1 outcomes with fewer than 10 discordant pairs a note
  that the interval is conservative and the test has little power; a constant continuous
  sample gets the point ``[v, v]`` with a note.

The intervals quantify sampling variability over the examples that were evaluated. They say
nothing about variability over random seeds, prompt templates, model checkpoints or other
design choices that were held fixed, and they correct for no multiple comparisons. The
percentile bootstrap used before under-covered (0.605 for a -0.02 accuracy change from one-way rare flips
at n = 48, with ``[0, 0]`` intervals); it remains available as ``method="percentile"`` only for
comparison.
"""

from latentprobe.errors import StatsInputError
from latentprobe.stats.bootstrap import (
    bootstrap_ci,
    bootstrap_mean_columns,
    mediation_effects,
    paired_bootstrap_diff,
)
from latentprobe.stats.effects import SMALL_SAMPLE_N, Effect, McNemarResult, effects_frame, small_sample_note
from latentprobe.stats.mcnemar import accuracy_difference, binary_outcome_effect, mcnemar_exact
from latentprobe.stats.multiplicity import ADJUSTMENTS, add_adjusted_columns, adjust_pvalues, simultaneous_level
from latentprobe.stats.ustat import jackknife_u_interval, pair_bootstrap_u_interval
from latentprobe.stats.paired import Interval, one_sample_ci, paired_difference_ci
from latentprobe.stats.resample import resample_indices

__all__ = [
    "SMALL_SAMPLE_N",
    "StatsInputError",
    "Effect",
    "McNemarResult",
    "Interval",
    "effects_frame",
    "small_sample_note",
    "paired_difference_ci",
    "one_sample_ci",
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
