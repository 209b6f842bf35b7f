"""Tables of ``latent_similarity`` beside :mod:`latentprobe.schema` (whose shared columns they reuse, so that
module stays within the house's size limit): the latent maps next to their baselines (``across_sources``), and
the across-instance similarity at position groups (:func:`latentprobe.geometry.position_similarity`).

>>> from latentprobe.schema_similarity import ACROSS_SOURCES, POSITION_SIMILARITY_GAP
>>> ACROSS_SOURCES.COLUMNS
('source', 'step', 'mean_offdiag', 'ci_low', 'ci_high', 'n')
>>> POSITION_SIMILARITY_GAP.COLUMNS[:4]
('layer', 'reference', 'position_group', 'reference_mean')
"""

from __future__ import annotations

from latentprobe.schema import ACROSS_SUMMARY, COLLAPSE_TABLE, SOURCE, Column, Table
from latentprobe.schema_probing import POSITION_GROUP

__all__ = ["ACROSS_SOURCES", "POSITION_SIMILARITY", "POSITION_SIMILARITY_GAP"]

_LAYER = Column("layer", "int64", "residual layer (0 = the fed vector, i = output of decoder layer i-1)")


class ACROSS_SOURCES(Table):
    """Mean cosine between distinct instances per step, for the latents and for prompt states at matched indices
    (:func:`latentprobe.geometry.baseline_states`): one row per source x step."""

    SOURCE = SOURCE.but(meaning="'latent', or a baseline of latentprobe.geometry.BASELINE_NAMES")
    STEP = ACROSS_SUMMARY.STEP.but(meaning="latent step (for a baseline: the matched index)")
    MEAN_OFFDIAG = ACROSS_SUMMARY.MEAN_OFFDIAG
    CI_LOW = ACROSS_SUMMARY.CI_LOW
    CI_HIGH = ACROSS_SUMMARY.CI_HIGH
    N = ACROSS_SUMMARY.N


class POSITION_SIMILARITY(Table):
    """``PositionSimilarityResult.table``: across-instance cosine and spread per position group x layer."""

    POSITION_GROUP = POSITION_GROUP
    LAYER = _LAYER
    STEPS = Column("steps", "int64", "vectors per instance averaged over (latent steps; 1 for other groups)")
    MEAN_OFFDIAG = ACROSS_SUMMARY.MEAN_OFFDIAG.but(meaning="mean cosine over pairs of distinct instances (raw; "
                                                           "latents: mean over steps of the step's cosine)")
    CI_LOW = ACROSS_SUMMARY.CI_LOW.but(meaning="lower bound of the instance-jackknife t interval of mean_offdiag")
    CI_HIGH = ACROSS_SUMMARY.CI_HIGH.but(meaning="upper bound of that interval")
    SPREAD = Column("spread", "float64", "share of the vectors' second moment off their mean over instances (0: one "
                    "vector for every instance; latents: mean over steps)")
    EFFECTIVE_RANK = COLLAPSE_TABLE.EFFECTIVE_RANK.but(meaning="effective rank of the n instances' centred vectors "
                                                               "(latents: mean over steps); 0 without spread")
    PARTICIPATION_RATIO = COLLAPSE_TABLE.PARTICIPATION_RATIO.but(meaning="participation ratio of the n instances' "
                                                                         "centred vectors (latents: mean over steps)")
    MEAN_NORM = COLLAPSE_TABLE.MEAN_NORM
    N = ACROSS_SUMMARY.N


class POSITION_SIMILARITY_GAP(Table):
    """``PositionSimilarityResult.gap``: per layer x position group, the reference group's mean cosine between
    instances minus the group's, with a paired instance-jackknife interval."""

    LAYER = _LAYER
    REFERENCE = Column("reference", "str", "the position group the others are compared with (usually 'latents')")
    POSITION_GROUP = POSITION_GROUP
    REFERENCE_MEAN = Column("reference_mean", "float64", "mean cosine between instances of the reference group")
    MEAN_OFFDIAG = POSITION_SIMILARITY.MEAN_OFFDIAG.but(meaning="mean cosine between instances of the position group")
    DIFFERENCE = Column("difference", "float64", "reference_mean - mean_offdiag: > 0 where the reference's vectors "
                        "are more alike across instances (less instance-specific) than the group's")
    CI_LOW = Column("ci_low", "float64", "lower bound of the paired instance-jackknife t interval of the difference")
    CI_HIGH = Column("ci_high", "float64", "upper bound of that interval")
    N = ACROSS_SUMMARY.N
