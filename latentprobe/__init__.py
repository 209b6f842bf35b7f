"""latentprobe: do latent reasoning tokens actually carry the reasoning?"""

__version__ = "0.1.0"
