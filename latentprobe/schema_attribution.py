"""Tables of attribution patching (:func:`latentprobe.causal.attribution_patching`), re-exported by
:mod:`latentprobe.schema` (kept apart so that module stays under the house line limit). The shared columns
``example_id``, ``layer`` and ``step`` come from :mod:`latentprobe.columns`, as :mod:`latentprobe.schema`'s do."""

from __future__ import annotations

from latentprobe.columns import EXAMPLE_ID, LAYER, STEP
from latentprobe.table import Column, Table

__all__ = ["ATTRIBUTION", "ATTRIBUTION_SUMMARY"]



class ATTRIBUTION(Table):
    """``AttributionResult.table`` (:func:`latentprobe.causal.attribution_patching`): example x layer x position."""

    EXAMPLE_ID = EXAMPLE_ID
    LAYER = LAYER
    POSITION_GROUP = Column("position_group", "str", "what the position is: 'text', 'image', 'open', 'latent', 'close' "
                            "or 'gen' (text written before latent mode)")
    POSITION = Column("position", "int64", "position in the example's sequence (0-based, unpadded)")
    STEP = STEP.but(meaning="latent step of a latent position (0-based; -1 at other positions)")
    ATTRIBUTION = Column("attribution", "float64", "first-order estimate of the metric's change when this cell is "
                         "patched from the counterfactual run: (h_cf - h_clean) . dmetric/dh at the clean run")
    CHANGED = Column("changed", "bool", "the counterfactual run's residual differs from the clean one at this cell")
    VERIFIED = Column("verified", "bool", "the cell was checked by exact patching (verify_top)")
    EFFECT = Column("effect", "float64", "exact patching effect on the metric (NaN when not verified)")
    CLEAN_METRIC = Column("clean_metric", "float64", "the metric on the clean run")


class ATTRIBUTION_SUMMARY(Table):
    """``attribution`` analysis summary: agreement of attribution and exact patching, and the map's cost."""

    N_CELLS = Column("n_cells", "int64", "cells in the map")
    N_VERIFIED = Column("n_verified", "int64", "cells checked by exact patching")
    SPEARMAN = Column("spearman", "float64", "Spearman rank correlation of estimate and exact effect (checked cells)")
    SPEARMAN_CHANGED = Column("spearman_changed", "float64", "the same over checked cells the perturbation reaches")
    SPEARMAN_ABS = Column("spearman_abs", "float64", "Spearman rank correlation of |estimate| and |exact effect|")
    MAP_SECONDS = Column("map_seconds", "float64", "wall time of the map (two forwards and one backward per batch)")
    VERIFY_SECONDS = Column("verify_seconds", "float64", "wall time of the exact check")
