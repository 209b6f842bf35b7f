"""Tables of :mod:`latentprobe.efficiency` (kept next to :mod:`latentprobe.schema`, whose shared columns they
reuse, so that module stays within the house's size limit).

>>> from latentprobe.schema_efficiency import DECODE_COST_SUMMARY
>>> DECODE_COST_SUMMARY.COLUMNS
('model', 'metric', 'mean', 'ci_low', 'ci_high', 'n', 'method')
"""

from __future__ import annotations

from latentprobe.schema import CI_HIGH, CI_LOW, EXAMPLE_ID, MEAN, METHOD, METRIC, N, Column, Table

__all__ = ["DECODE_COSTS", "DECODE_COST_SUMMARY", "COST_METRICS"]

MODEL = Column("model", "str", "the model the row is about (the preset's name, or the study's label)")


class DECODE_COSTS(Table):
    """:func:`latentprobe.efficiency.decode_costs`: one row per example of a run."""

    EXAMPLE_ID = EXAMPLE_ID
    MODEL = MODEL
    PROMPT_TOKENS = Column("prompt_tokens", "int64", "positions of the prompt (image tokens included)")
    GENERATED_TOKENS = Column("generated_tokens", "int64", "positions decoded after the prompt: text, markers and "
                                                           "latent steps (each latent step is one forward position)")
    LATENT_STEPS = Column("latent_steps", "int64", "latent positions among them")
    TEXT_TOKENS = Column("text_tokens", "int64", "generated positions that are not latent steps (markers and text)")
    ANSWER_TOKENS = Column("answer_tokens", "int64", "tokens of the answer after the last latent segment")
    DECODE_SECONDS = Column("decode_seconds", "float64", "wall-clock seconds of the example's batch divided by the "
                                                         "batch size (NaN: the run recorded no time)")
    BATCH_SIZE = Column("batch_size", "int64", "examples decoded together with this one (0: unknown)")


#: ``metric`` values of :class:`DECODE_COST_SUMMARY`, in display order.
COST_METRICS: tuple[str, ...] = ("decode_seconds", "generated_tokens", "latent_steps", "text_tokens", "answer_tokens")


class DECODE_COST_SUMMARY(Table):
    """:func:`latentprobe.efficiency.cost_summary`: one row per model x metric (mean over examples, 95% interval)."""

    MODEL = MODEL
    METRIC = METRIC.but(meaning="the per-example cost (latentprobe.schema_efficiency.COST_METRICS)")
    MEAN = MEAN.but(meaning="mean over examples")
    CI_LOW = CI_LOW
    CI_HIGH = CI_HIGH
    N = N
    METHOD = METHOD
