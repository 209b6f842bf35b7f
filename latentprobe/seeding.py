"""The one seeded random source: every random draw in latentprobe is keyed, never streamed globally.

A draw is identified by a seed and a tuple of keys (an example id, a latent step, a layer, the name
of what draws), so the same keys give the same numbers whatever ran before, in any batch order.

Examples
--------
>>> from latentprobe.seeding import torch_generator
>>> a = torch.randn(3, generator=torch_generator(0, "ex-1", 2, 0))
>>> b = torch.randn(3, generator=torch_generator(0, "ex-1", 2, 0))
>>> bool((a == b).all())
True
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

__all__ = ["key_hash", "numpy_rng", "torch_generator"]


def key_hash(*keys: object) -> int:
    """A stable 32-bit hash of ``keys`` joined by ``|`` (CRC-32; identical across processes).

    Parameters
    ----------
    *keys
        Anything with a stable ``str`` (seeds, example ids, steps, layers).

    Returns
    -------
    int
    """
    return zlib.crc32("|".join(str(k) for k in keys).encode())


def torch_generator(seed: int, *keys: object) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from ``seed`` and ``keys``.

    Parameters
    ----------
    seed : int
        The seed.
    *keys
        Further keys (example id, step, layer, ...) that select an independent stream.

    Returns
    -------
    torch.Generator
    """
    g = torch.Generator()
    g.manual_seed((int(seed) * 1_000_003 + key_hash(*keys)) % (2**63))
    return g


def numpy_rng(seed: int, *keys: object) -> np.random.Generator:
    """A numpy ``Generator`` seeded from ``seed`` and ``keys`` (``default_rng(seed)`` when no keys).

    Parameters
    ----------
    seed : int
        The seed.
    *keys
        Further keys (example id, step, layer, ...) that select an independent stream.

    Returns
    -------
    numpy.random.Generator
    """
    if not keys:
        return np.random.default_rng(seed)
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, key_hash(*keys)])
