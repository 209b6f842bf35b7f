"""Tables of :func:`latentprobe.probing.probe_positions`: probes at several position groups and the
decodability gap between the latents and the positions downstream (kept next to :mod:`latentprobe.schema`,
whose probe columns they reuse, so that module stays within the house's size limit).

>>> from latentprobe.schema_probing import PROBE_GAP
>>> PROBE_GAP.COLUMNS[:5]
('target', 'layer', 'reference', 'position_group', 'task')
"""

from __future__ import annotations

from latentprobe.schema import N, P_BH, P_HOLM, PROBE_SCORES, SCORE, TARGET, TASK, Column, Table

__all__ = ["PROBE_POSITIONS", "PROBE_GAP", "POSITION_GROUP"]

POSITION_GROUP = Column("position_group", "str", "the probed positions: 'latents', 'open', 'close', 'first_answer', "
                        "'last_prompt', 'image' (image positions, mean-pooled) or 'question' (prompt text, mean-pooled)")


class PROBE_POSITIONS(Table):
    """``PositionProbeResult.scores``: target x position group x layer x step (step: the latent step, the
    marker's index, or 0 for pooled and single positions), with the columns of
    :class:`latentprobe.schema.PROBE_SCORES`; all cells of the table are one family."""

    POSITION_GROUP = POSITION_GROUP
    TARGET = TARGET
    LAYER = PROBE_SCORES.LAYER
    STEP = PROBE_SCORES.STEP
    TASK = TASK
    SCORE = SCORE
    CI_LOW = PROBE_SCORES.CI_LOW
    CI_HIGH = PROBE_SCORES.CI_HIGH
    N = N
    N_GROUPS = PROBE_SCORES.N_GROUPS
    MAJORITY = PROBE_SCORES.MAJORITY
    SHUFFLE = PROBE_SCORES.SHUFFLE
    CONTROL = PROBE_SCORES.CONTROL
    SELECTIVITY = PROBE_SCORES.SELECTIVITY
    SELECTIVITY_LOW = PROBE_SCORES.SELECTIVITY_LOW
    SELECTIVITY_HIGH = PROBE_SCORES.SELECTIVITY_HIGH
    CONTROL_RECUR = PROBE_SCORES.CONTROL_RECUR
    CHANCE = PROBE_SCORES.CHANCE
    P_VALUE, P_HOLM, P_BH = PROBE_SCORES.P_VALUE, P_HOLM, P_BH
    CI_LOW_SIMULTANEOUS, CI_HIGH_SIMULTANEOUS = PROBE_SCORES.CI_LOW_SIMULTANEOUS, PROBE_SCORES.CI_HIGH_SIMULTANEOUS


class PROBE_GAP(Table):
    """``PositionProbeResult.gap``: the decodability gap per target x layer x position group, the reference
    group's score minus the group's, each group's steps mean-pooled, on the same folds."""

    TARGET = TARGET
    LAYER = PROBE_SCORES.LAYER.but(also=())
    REFERENCE = Column("reference", "str", "the position group the others are compared with (usually 'latents')")
    POSITION_GROUP = POSITION_GROUP
    TASK = TASK
    REFERENCE_SCORE = Column("reference_score", "float64", "held-out score of the reference group (steps mean-pooled)")
    SCORE = SCORE.but(meaning="held-out score of the position group (steps mean-pooled)")
    GAP = Column("gap", "float64", "reference_score - score: > 0 where the reference decodes the target better "
                 "(decodable in the latents, not downstream), < 0 where downstream positions decode it better")
    GAP_LOW = Column("gap_ci_low", "float64", "lower bound of the 95% paired group-bootstrap interval of the gap "
                     "(held-out groups resampled within each fold; fitted probes held fixed)")
    GAP_HIGH = Column("gap_ci_high", "float64", "upper bound of that interval")
    N = N
    N_GROUPS = PROBE_SCORES.N_GROUPS
    CHANCE = PROBE_SCORES.CHANCE
