"""Readouts of recorded residuals: lenses through the model's own unembedding."""

from latentprobe.readouts.tuned import TunedLens, TunedLensFit, TunedLensInfo, fit_tuned_lens, lens_kl, tuned_lens_path  # noqa: F401
