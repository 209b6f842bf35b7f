"""The columns that tables declared outside :mod:`latentprobe.schema` share with it.

:mod:`latentprobe.schema` re-exports them; a table module that :mod:`latentprobe.schema` itself imports
(:mod:`latentprobe.schema_attribution`) reads them here, so one name keeps one declaration without an
import cycle.
"""

from __future__ import annotations

from latentprobe.table import Column

__all__ = ["EXAMPLE_ID", "STEP", "LAYER"]

EXAMPLE_ID = Column("example_id", "str", "id of the example (InputSet / trace)")
STEP = Column("step", "int64", "latent step (0-based; -1 for prompt-token baselines)")
LAYER = Column("layer", "int64", "residual layer (0 = the fed input embedding)")
