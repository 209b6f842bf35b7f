"""Readouts at latent positions: what the latents say and where they look."""

from latentprobe.readouts.attention import attention  # noqa: F401
