"""The decoding cost of a run: wall-clock time per batch, recorded in each example's ``meta``.

:meth:`latentprobe.engine.LatentRunner.run` starts a :class:`Clock` before each batch's decode and
records, for every example of the batch, ``meta["decode_seconds"]`` (the batch's wall-clock time divided
by its size: examples decoded together share it), ``meta["batch_seconds"]`` and ``meta["batch_size"]``.
On a GPU the clock synchronises the device before reading the time, so queued kernels are counted.
Token counts need no recording: :func:`latentprobe.efficiency.decode_costs` reads them from the trace.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import torch

__all__ = ["Clock", "start", "meta"]


class Clock:
    """Wall-clock seconds since it started, read once (the first read stops it).

    Parameters
    ----------
    model : torch.nn.Module
        The model (its device says whether to synchronise CUDA before reading the time).
    """

    def __init__(self, model: torch.nn.Module) -> None:
        param = next(iter(model.parameters()), None)
        self._cuda = param is not None and param.device.type == "cuda"
        self._sync()
        self._t0 = time.perf_counter()
        self._seconds: float | None = None

    def _sync(self) -> None:
        if self._cuda:
            torch.cuda.synchronize()

    @property
    def seconds(self) -> float:
        """The elapsed seconds (fixed at the first read)."""
        if self._seconds is None:
            self._sync()
            self._seconds = time.perf_counter() - self._t0
        return self._seconds


def start(model: torch.nn.Module) -> Clock:
    """A :class:`Clock` started now.

    Parameters
    ----------
    model : torch.nn.Module
        The model being timed.

    Returns
    -------
    Clock
    """
    return Clock(model)


def meta(row: Any, clock: Clock, batch: Sequence[Any]) -> dict[str, Any]:
    """The cost entries of one example of a timed batch (``row`` is unused: every example shares the batch's time).

    Parameters
    ----------
    row : object
        The example's row.
    clock : Clock
        The batch's clock (read here: the first call stops it).
    batch : sequence
        The batch's rows.

    Returns
    -------
    dict
        ``decode_seconds``, ``batch_seconds``, ``batch_size``.
    """
    n = max(len(batch), 1)
    return {"decode_seconds": clock.seconds / n, "batch_seconds": clock.seconds, "batch_size": n}
