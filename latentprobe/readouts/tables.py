"""Columns and dtypes of the lens readout's tables (:func:`latentprobe.readouts.lens`, ``[analyses.lens]``).

They follow :mod:`latentprobe.schema` (shared columns are reused from there; one name means one thing);
they live beside the readouts so that :mod:`latentprobe.schema` stays within the house size limit.

>>> LENS_ROWS.COLUMNS[:7]
('example_id', 'position_group', 'step', 'layer', 'token_id', 'logprob', 'rank')
"""

from __future__ import annotations

from latentprobe.schema import EXAMPLE_ID, LAYER, N
from latentprobe.table import Column, Table

__all__ = ["LENS_ROWS", "LENS_CELLS", "LENS_COMMITMENT", "LENS_TRAJECTORY", "TOP"]

#: The ``target`` of a row that is one of the cell's top-k tokens (other rows name the target they score).
TOP = "top"

POSITION_GROUP = Column("position_group", "str", "which positions: 'latents', 'open', 'close', 'first_answer', "
                        "'answer' or 'last_prompt'")
LENS_STEP = Column("step", "int64", "latent step for 'latents'; the answer token's index for 'answer' and "
                   "'first_answer'; the marker's index for 'open'/'close'; -1 for 'last_prompt'")
POSITION = Column("position", "int64", "position in the example's sequence (the readout predicts position + 1)")
TOKEN_ID = Column("token_id", "int64", "vocabulary id of the token read out")
TOKEN = Column("token", "str", "the token's text (tokenizer.decode of the one id)")
LOGPROB = Column("logprob", "float64", "log-probability the lens gives the token at this cell (float32 readout)")
RANK = Column("rank", "int64", "1 + the number of tokens with a higher lens log-probability (1 = top-1)")
TARGET = Column("target", "str", "'top' for the cell's top-k tokens; else the target scored: 'answer' (the run's "
                "own answer's first token), 'gold' (the gold answer's first token) or a user-given name")


class LENS_ROWS(Table):
    """Long table of :func:`latentprobe.readouts.lens`: per cell, its top-k tokens and its targets' tokens."""

    EXAMPLE_ID = EXAMPLE_ID
    POSITION_GROUP = POSITION_GROUP
    STEP = LENS_STEP
    LAYER = LAYER
    TOKEN_ID = TOKEN_ID
    LOGPROB = LOGPROB
    RANK = RANK
    TARGET = TARGET
    POSITION = POSITION
    TOKEN = TOKEN


class LENS_CELLS(Table):
    """One row per (example, position, layer): the readout's entropy, top-1 and the run's own next token."""

    EXAMPLE_ID = EXAMPLE_ID
    POSITION_GROUP = POSITION_GROUP
    STEP = LENS_STEP
    LAYER = LAYER
    POSITION = POSITION
    ENTROPY = Column("entropy", "float64", "entropy of the lens distribution, in nats")
    TOP1_TOKEN_ID = Column("top1_token_id", "int64", "the lens's most likely token")
    TOP1_LOGPROB = Column("top1_logprob", "float64", "its log-probability")
    NEXT_TOKEN_ID = Column("next_token_id", "int64", "id the run had at position + 1 (-1: none; latent slots hold "
                           "their slot id, not the fed vector)")
    NEXT_LOGPROB = Column("next_logprob", "float64", "lens log-probability of next_token_id (NaN when none)")
    KL_TO_LAST = Column("kl_to_last", "float64", "KL(last layer's readout || this layer's readout) at the same "
                        "position, nats (0 at the last layer; NaN unless the last layer was read)")


class LENS_COMMITMENT(Table):
    """Early commitment: the first latent (step, layer) whose lens top-1 is the run's own answer's first token."""

    EXAMPLE_ID = EXAMPLE_ID
    ANSWER_TOKEN_ID = Column("answer_token_id", "int64", "first token of the run's own answer (-1: empty answer)")
    COMMITTED = Column("committed", "bool", "whether some latent (step, layer) read out the answer token as top-1")
    FIRST_STEP = Column("first_step", "int64", "the earliest such latent step (-1: none)")
    FIRST_LAYER = Column("first_layer", "int64", "the earliest layer at that step (-1: none)")
    N_LATENTS = Column("n_latents", "int64", "latent steps of the example")


class LENS_TRAJECTORY(Table):
    """Per (position group, target, step, layer) over examples: the target's median rank and mean log-prob."""

    POSITION_GROUP = POSITION_GROUP
    TARGET = TARGET
    STEP = LENS_STEP
    LAYER = LAYER
    MEDIAN_RANK = Column("median_rank", "float64", "median over examples of the target's rank")
    MEAN_LOGPROB = Column("mean_logprob", "float64", "mean over examples of the target's log-probability")
    TOP1_RATE = Column("top1_rate", "float64", "share of examples whose lens top-1 is the target")
    N = N
