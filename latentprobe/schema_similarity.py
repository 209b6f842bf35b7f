"""The table of latent maps next to their baselines (``latent_similarity``'s ``across_sources``), kept next to
:mod:`latentprobe.schema`, whose shared columns it reuses, so that module stays within the house's size limit.

>>> from latentprobe.schema_similarity import ACROSS_SOURCES
>>> ACROSS_SOURCES.COLUMNS
('source', 'step', 'mean_offdiag', 'ci_low', 'ci_high', 'n')
"""

from __future__ import annotations

from latentprobe.schema import ACROSS_SUMMARY, SOURCE, Table

__all__ = ["ACROSS_SOURCES"]


class ACROSS_SOURCES(Table):
    """Mean cosine between distinct instances per step, for the latents and for prompt states at matched indices
    (:func:`latentprobe.geometry.baseline_states`): one row per source x step."""

    SOURCE = SOURCE.but(meaning="'latent', or a baseline of latentprobe.geometry.BASELINE_NAMES")
    STEP = ACROSS_SUMMARY.STEP.but(meaning="latent step (for a baseline: the matched index)")
    MEAN_OFFDIAG = ACROSS_SUMMARY.MEAN_OFFDIAG
    CI_LOW = ACROSS_SUMMARY.CI_LOW
    CI_HIGH = ACROSS_SUMMARY.CI_HIGH
    N = ACROSS_SUMMARY.N
