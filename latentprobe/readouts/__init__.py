"""Readouts of a trace's recorded states: what the latents say and where they look.

:func:`lens` reads a trace's per-layer residuals at latent (and chosen other) positions through the
model's final norm and unembedding (the logit lens), optionally through the family's head first;
its tables are declared in :mod:`latentprobe.readouts.tables`. :func:`fit_tuned_lens` fits a tuned
lens (one affine translator per layer) and :func:`lens_kl` compares its held-out KL with the logit
lens. :func:`attention` gives the attention mass from chosen query positions to regions of the
sequence, computed only for the selected rows. :func:`position_features` gathers the residuals of the latents
and of the positions downstream of them (markers, first answer token, image, question) for probes and geometry.
"""

from latentprobe.readouts.attention import attention
from latentprobe.readouts.lens import LensResult, lens, lens_logprobs
from latentprobe.readouts.positions import PROBE_POSITION_GROUPS, PositionFeatures, position_features
from latentprobe.readouts.tuned import TunedLens, TunedLensFit, TunedLensInfo, fit_tuned_lens, lens_kl, tuned_lens_path

__all__ = ["LensResult", "TunedLens", "TunedLensFit", "TunedLensInfo", "attention", "fit_tuned_lens", "lens",
           "lens_kl", "lens_logprobs", "tuned_lens_path",
           "PROBE_POSITION_GROUPS", "PositionFeatures", "position_features"]
