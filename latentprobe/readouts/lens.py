"""The logit lens at latent positions (work in progress)."""

from __future__ import annotations

__all__ = ["LensResult", "lens"]


class LensResult:  # pragma: no cover - replaced below
    """Placeholder."""


def lens(runner, trace, **kwargs):  # pragma: no cover - replaced below
    """Placeholder."""
    raise NotImplementedError
