"""Readouts of a trace's recorded states: what the latents say and where they look.

:func:`lens` reads a trace's per-layer residuals at latent (and chosen other) positions through the
model's final norm and unembedding (the logit lens), optionally through the family's head first;
its tables are declared in :mod:`latentprobe.readouts.tables`. :func:`attention` gives the attention
mass from chosen query positions to regions of the sequence, computed only for the selected rows.
"""

from latentprobe.readouts.attention import attention
from latentprobe.readouts.lens import LensResult, lens, lens_logprobs

__all__ = ["LensResult", "attention", "lens", "lens_logprobs"]
