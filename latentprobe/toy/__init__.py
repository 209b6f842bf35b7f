"""The embedded default: synthetic shapes data and tiny latent-reasoning VLMs."""
