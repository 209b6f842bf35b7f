"""Readouts of a trace's recorded states: what the residuals say through the unembedding.

:func:`lens` reads a trace's per-layer residuals at latent (and chosen other) positions through the
model's final norm and unembedding (the logit lens), optionally through the family's head first;
its tables are declared in :mod:`latentprobe.readouts.tables`.
"""

from latentprobe.readouts.lens import LensResult, lens, lens_logprobs

__all__ = ["LensResult", "lens", "lens_logprobs"]
