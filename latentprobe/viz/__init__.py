"""Plotly figures for latentprobe results.

Every figure function takes the result object an analysis returns (or its tidy table) and returns
a :class:`plotly.graph_objects.Figure`.  Nothing is shown or written: call ``fig.show()``,
``fig.write_html(...)`` or add the figure to a :class:`latentprobe.report.Report`.

=========================  ====================================================================
figure                     takes
=========================  ====================================================================
:func:`xz_lines`           ``XZResult`` (:func:`latentprobe.causal.x_to_z`) or its summary
:func:`zy_bars`            ``ZYResult`` (:func:`latentprobe.causal.z_to_y`) or its summary
:func:`decomposition_bars` ``MediationResult`` (:func:`latentprobe.causal.decompose`)
:func:`effects_forest`     ``MediationResult``, :class:`~latentprobe.stats.Effect` objects
:func:`probe_heatmap`      ``ProbeSweepResult`` (:func:`latentprobe.probing.probe_sweep`)
:func:`probe_controls`     :func:`~latentprobe.probing.compare_representations` table, a sweep
:func:`similarity_heatmap` ``WithinInstanceResult``, ``AcrossInstancesResult``, a square matrix
:func:`consecutive_similarity`  ``WithinInstanceResult`` (or several, in a mapping)
:func:`across_instance_summary` ``AcrossInstancesResult`` or ``XZResult`` (its ``across``)
:func:`collapse_bars`      :func:`~latentprobe.geometry.collapse_table`
:func:`norm_profile`       :func:`~latentprobe.geometry.norm_table`
:func:`position_similarity_lines` :func:`~latentprobe.geometry.position_similarity` (or its table)
:func:`attention_regions`  ``AttentionResult`` (:func:`latentprobe.readouts.attention`)
:func:`attention_heatmap`  ``AttentionResult`` (:func:`latentprobe.readouts.attention`)
:func:`lens_rank_heatmap`  ``LensResult`` (:func:`latentprobe.readouts.lens`) or its trajectory
:func:`influence_heatmap`  ``StepResult`` (:func:`latentprobe.causal.step_influence`) or its ``matrix()``
=========================  ====================================================================

Conventions
-----------
* Column names are read from :mod:`latentprobe.schema`, the one place that names what every
  analysis emits.
* Template ``"plotly_white"`` and the Okabe-Ito colour-blind-safe palette (:data:`PALETTE`);
  signed matrices use a diverging scale centred at zero, unsigned ones Viridis.  Sources with
  fixed meaning always get the same colour (``latent`` blue, ``random_matched_norm`` grey).
* Wherever the table has ``ci_low``/``ci_high`` the figure shows them, as a shaded band around
  lines or as whiskers on points and bars.  Rows with NaN bounds (e.g. ``n_boot=0``) are drawn
  without an interval.  The intervals are whatever the analysis computed (a 95% interval over
  examples calibrated for the outcome, :mod:`latentprobe.stats`); a figure does not make them more than that.
* Every figure stores its kind and a caption (what it shows, what it does not prove) in
  ``fig.layout.meta``; :func:`caption_for` reads it, :data:`CAPTIONS` lists them.  Axis ranges
  follow what each metric can take (:func:`metric_range`: cosine within [-1, 1], relative L2,
  KL and flip rate from 0, accuracy within [0, 1]); effect axes say their direction and unit.
* A wrong input raises :class:`~latentprobe.errors.VizInputError` naming the function, the
  missing column(s) and what to pass instead.
"""

from latentprobe.errors import VizInputError
from latentprobe.viz._common import PALETTE, TEMPLATE
from latentprobe.viz.captions import AXIS_TITLES, CAPTIONS, caption_for, metric_bounds, metric_range
from latentprobe.viz.attribution import attribution_heatmap
from latentprobe.viz.causal import decomposition_bars, effects_forest, xz_lines, zy_bars
from latentprobe.viz.geometry import (
    across_instance_summary, collapse_bars, consecutive_similarity, norm_profile, similarity_heatmap,
)
from latentprobe.viz.probing import probe_controls, probe_heatmap
from latentprobe.viz.attention import attention_heatmap, attention_regions
from latentprobe.viz.readouts import lens_rank_heatmap
from latentprobe.viz.steps import influence_heatmap
from latentprobe.viz.efficiency import efficiency_bars
from latentprobe.viz.patching import patching_heatmap
from latentprobe.viz.positions import position_similarity_lines

__all__ = [
    "PALETTE",
    "TEMPLATE",
    "VizInputError",
    "CAPTIONS",
    "AXIS_TITLES",
    "caption_for",
    "metric_bounds",
    "metric_range",
    "similarity_heatmap",
    "consecutive_similarity",
    "across_instance_summary",
    "collapse_bars",
    "norm_profile",
    "probe_heatmap",
    "probe_controls",
    "effects_forest",
    "decomposition_bars",
    "xz_lines",
    "zy_bars",
    "attention_regions",
    "attention_heatmap",
    "lens_rank_heatmap",
    "influence_heatmap",
    "patching_heatmap",
    "attribution_heatmap",
    "efficiency_bars",
    "position_similarity_lines",
]
