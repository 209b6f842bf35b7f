"""Tables of activation patching (:func:`latentprobe.causal.patch`).

They live here rather than in :mod:`latentprobe.schema` (which is at the house limit of 500 lines);
they are built from the same :class:`~latentprobe.table.Column` and :class:`~latentprobe.table.Table`
and reuse its shared columns, so one name still means one thing.
"""

from __future__ import annotations

from latentprobe import schema as S
from latentprobe.table import Column, Table

__all__ = ["PATCH_ROWS", "PATCH_SUMMARY", "PATCH_METRICS"]

#: The metrics of :class:`PATCH_SUMMARY`.
PATCH_METRICS = ("flip_rate", "to_source_rate", "accuracy_change", "clean_logprob_change", "source_logprob_change",
                 "kl")


class PATCH_ROWS(Table):
    """``PatchResult.table``: one row per example x mode x position group x layer (and the controls)."""

    EXAMPLE_ID = S.EXAMPLE_ID
    SOURCE_ID = Column("source_id", "str", "id of the counterfactual example the patched states come from")
    MODE = Column("mode", "str", "'replay', 'propagate' or 'redecode'")
    POSITION_GROUP = Column("position_group", "str", "patched positions: 'image', 'question', 'markers', 'latents', "
                            "'answer', a route ('image|latents_frozen', 'latents|image_frozen') or 'none' (control)")
    LAYER = Column("layer", "int64", "residual layer patched (i = output of decoder layer i-1; 0 = the fed latent; "
                   "-1 for the control)")
    N_POSITIONS = Column("n_positions", "int64", "positions patched")
    ANSWER = S.ANSWER
    REF_ANSWER = Column("ref_answer", "str", "answer of the same mode's unpatched control")
    SOURCE_ANSWER = Column("source_answer", "str", "answer of the counterfactual (source) run")
    GOLD = S.GOLD
    CORRECT = Column("correct", "float64", "1.0 when the answer equals the gold answer (exact, stripped), NaN without gold")
    REF_CORRECT = Column("ref_correct", "float64", "the same for the control's answer")
    FLIP = Column("flip", "bool", "the answer differs from the control's")
    TO_SOURCE = Column("to_source", "bool", "the answer became the source run's answer (and differs from the control's)")
    CLEAN_LOGPROB = Column("clean_logprob", "float64", "log-probability of the control's first answer token at the first "
                           "answer position")
    REF_CLEAN_LOGPROB = Column("ref_clean_logprob", "float64", "the same under the control")
    SOURCE_LOGPROB = Column("source_logprob", "float64", "log-probability of the source run's first answer token")
    REF_SOURCE_LOGPROB = Column("ref_source_logprob", "float64", "the same under the control")
    KL = Column("kl", "float64", "KL(control first-token distribution || patched), nats")


class PATCH_SUMMARY(Table):
    """``PatchResult.summary``: one row per mode x position group x layer x metric (:data:`PATCH_METRICS`)."""

    MODE = PATCH_ROWS.MODE
    POSITION_GROUP = PATCH_ROWS.POSITION_GROUP
    LAYER = PATCH_ROWS.LAYER
    METRIC = S.METRIC
    ESTIMATE = S.ESTIMATE
    CI_LOW = S.CI_LOW
    CI_HIGH = S.CI_HIGH
    N = S.N
    P_VALUE = S.P_VALUE
    P_HOLM = Column("p_holm", "float64", "Holm-adjusted p-value over the cells of the same metric (NaN without a test)")
    P_BH = Column("p_bh", "float64", "Benjamini-Hochberg-adjusted p-value over the cells of the same metric")
    METHOD = S.METHOD
    NOTE = S.NOTE
