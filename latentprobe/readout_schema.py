"""Columns and dtypes of the readout tables (attention flow), declared as :mod:`latentprobe.schema` declares
the others and sharing its columns (``example_id``, ``step``); kept apart only so that no module passes the
house limit of 500 lines.

>>> from latentprobe.readout_schema import ATTENTION_MASS
>>> [str(c) for c in ATTENTION_MASS.COLUMNS]
['example_id', 'query_group', 'step', 'layer', 'head', 'region', 'mass']
"""

from __future__ import annotations

from latentprobe.schema import EXAMPLE_ID, STEP
from latentprobe.table import Column, Table

__all__ = ["ATTENTION_MASS", "ATTENTION_ENTROPY", "ATTENTION_TOP", "QUERY_GROUP", "HEAD", "ATTENTION_LAYER"]

QUERY_GROUP = Column("query_group", "str", "query rows: 'latents', 'open', 'close', 'answer' or 'last_prompt'")
QUERY_STEP = STEP.but(meaning="index in the query group: latent step, the marker's segment, answer position")
ATTENTION_LAYER = Column("layer", "int64", "decoder layer (0-based); it reads residual layer `layer`")
HEAD = Column("head", "int64", "query head (-1: the mean over the kept heads)")
REGION = Column("region", "str", "where the keys are: first (position 0), system, question, image, markers, latents, "
                "generated, self")


class ATTENTION_MASS(Table):
    """:func:`latentprobe.readouts.attention`: attention mass per query row, layer, head and region."""

    EXAMPLE_ID = EXAMPLE_ID
    QUERY_GROUP = QUERY_GROUP
    STEP = QUERY_STEP
    LAYER = ATTENTION_LAYER
    HEAD = HEAD
    REGION = REGION
    MASS = Column("mass", "float64", "summed attention probability of the region's keys (a row sums to 1)")


class ATTENTION_ENTROPY(Table):
    """:func:`latentprobe.readouts.attention`: the entropy of each attention row."""

    EXAMPLE_ID = EXAMPLE_ID
    QUERY_GROUP = QUERY_GROUP
    STEP = QUERY_STEP
    LAYER = ATTENTION_LAYER
    HEAD = HEAD
    POSITION = Column("position", "int64", "the query's position in the sequence")
    ENTROPY = Column("entropy", "float64", "entropy of the attention row (nats)")


class ATTENTION_TOP(Table):
    """:func:`latentprobe.readouts.attention`: the most attended positions of each attention row."""

    EXAMPLE_ID = EXAMPLE_ID
    QUERY_GROUP = QUERY_GROUP
    STEP = QUERY_STEP
    LAYER = ATTENTION_LAYER
    HEAD = HEAD
    RANK = Column("rank", "int64", "0 = the most attended position")
    KEY_POSITION = Column("key_position", "int64", "the attended position")
    TOKEN = Column("token", "str", "its token (latent slots: '<latent k>')")
    REGION = REGION.but(meaning="its region (as in ATTENTION_MASS)")
    WEIGHT = Column("weight", "float64", "its attention probability")
