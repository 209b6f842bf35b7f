"""Readouts of a trace's recorded states: what the residuals say through the unembedding.

:func:`lens` reads a trace's per-layer residuals at latent (and chosen other) positions through the
model's final norm and unembedding (the logit lens), optionally through the family's head first.
"""

from latentprobe.readouts.lens import LensResult, lens

__all__ = ["LensResult", "lens"]
