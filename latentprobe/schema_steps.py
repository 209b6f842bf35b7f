"""Tables of :func:`latentprobe.causal.step_influence` (kept next to :mod:`latentprobe.schema`, whose shared
columns they reuse, so that module stays within the house's size limit).

>>> from latentprobe.schema_steps import STEP_ROWS
>>> STEP_ROWS.COLUMNS
('example_id', 'condition', 'step', 'target_step', 'metric', 'value')
"""

from __future__ import annotations

from latentprobe.schema import (
    CI_HIGH, CI_LOW, CONDITION, ESTIMATE, EXAMPLE_ID, METHOD, METRIC, N, NOTE, P_VALUE, STEP, Column, Table,
)

__all__ = ["STEP_ROWS", "STEP_SUMMARY", "STEP_CONDITIONS", "STEP_METRICS"]

#: The conditions of :func:`latentprobe.causal.step_influence`, in the order it runs them.
STEP_CONDITIONS = ("clean", "influence", "early_exit", "count", "oracle", "format_only", "no_latents")
#: Its per-example metrics: distances of a latent (``one_minus_cos``, ``rel_l2``) and answer outcomes.
STEP_METRICS = ("one_minus_cos", "rel_l2", "flip", "gold_logprob_change", "correct", "moved", "n_latents")


class STEP_ROWS(Table):
    """``StepResult.table``: one row per example x condition x step x target step x metric (long format)."""

    EXAMPLE_ID = EXAMPLE_ID
    CONDITION = CONDITION.but(meaning="the condition (latentprobe.schema_steps.STEP_CONDITIONS)")
    STEP = STEP.but(meaning="step i intervened on (influence), latents kept k (early_exit), count K' run (count); "
                            "-1 for the other conditions")
    TARGET_STEP = Column("target_step", "int64", "latent step j whose change is measured; -1 for the answer")
    METRIC = METRIC.but(meaning="the per-example metric (latentprobe.schema_steps.STEP_METRICS)")
    VALUE = Column("value", "float64", "the metric's value for this example")


class STEP_SUMMARY(Table):
    """``StepResult.summary``: one row per condition x step x target step x metric, with its calibrated interval
    (``correct`` is summarised as ``accuracy_change``, the paired difference with the clean run)."""

    CONDITION = STEP_ROWS.CONDITION
    STEP = STEP_ROWS.STEP
    TARGET_STEP = STEP_ROWS.TARGET_STEP
    METRIC = METRIC
    ESTIMATE = ESTIMATE
    CI_LOW = CI_LOW
    CI_HIGH = CI_HIGH
    N = N
    P_VALUE = P_VALUE
    METHOD = METHOD
    NOTE = NOTE
