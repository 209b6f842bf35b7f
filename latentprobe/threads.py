"""CPU threads: what results depend on, recorded and pinned.

On the CPU, the thread count decides how a matrix product splits its sums, so the same model gives
floats that differ in the last digits with 1 or 2 threads (and between machines whose default counts
differ), while a fixed count gives the same bits in every process. Measured on a 2-core CPU (torch
2.13, float32): the shipped toys' latents and hidden states are identical at 1, 2 and 4 threads (their
products are too small to be split); SmolLM2-135M's last-position hidden states differ between 1 and 2
threads by up to 2.4e-4 (on activations up to 603), 1.1e-6 relative to each vector's norm, and are
identical at 2 and 4 threads. Such a difference moves a discrete outcome only where a value lies that
close to a boundary (a probe's prediction on a tiny, nearly degenerate model; two logits tied to six
digits); docs/performance.md has the table.

A study therefore runs with a fixed count (``[study] threads``, default 1) for torch's intra-op pool and
the BLAS and OpenMP pools of numpy, scipy and scikit-learn (:func:`pinned_threads`), and records what ran
(:func:`thread_settings`) in ``study.json``; a trace records torch's count in ``trace.config["threads"]``.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator

import torch

from latentprobe.validate import positive_int

__all__ = ["ENV_VARS", "thread_settings", "pinned_threads"]

#: Environment variables that set the BLAS and OpenMP pools' sizes (recorded as they are).
ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "BLIS_NUM_THREADS",
            "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def thread_settings() -> dict[str, Any]:
    """The thread settings in force: torch's intra-op and inter-op counts, each BLAS/OpenMP pool that
    :mod:`threadpoolctl` finds, the environment variables of :data:`ENV_VARS` and whether torch's
    deterministic algorithms are on.

    Returns
    -------
    dict
        JSON-ready: ``{"torch": int, "torch_interop": int, "pools": [{"api", "library", "threads"}, ...],
        "env": {name: value or None}, "deterministic_algorithms": bool}``.

    Examples
    --------
    >>> from latentprobe.threads import pinned_threads, thread_settings
    >>> with pinned_threads(1):
    ...     s = thread_settings()
    >>> s["torch"], {p["threads"] for p in s["pools"]} <= {1}
    (1, True)
    """
    from threadpoolctl import threadpool_info

    pools = sorted({(p.get("user_api", ""), p.get("internal_api", ""), int(p.get("num_threads", 0)))
                    for p in threadpool_info()})
    return {"torch": torch.get_num_threads(), "torch_interop": torch.get_num_interop_threads(),
            "pools": [{"api": a, "library": lib, "threads": n} for a, lib, n in pools],
            "env": {k: os.environ.get(k) for k in ENV_VARS},
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled()}


@contextmanager
def pinned_threads(threads: int) -> Iterator[dict[str, Any]]:
    """Run a block with ``threads`` threads in torch's intra-op pool and in every BLAS/OpenMP pool
    (numpy, scipy, scikit-learn); the previous counts come back after it.

    Parameters
    ----------
    threads : int
        The count (at least 1).

    Yields
    ------
    dict
        :func:`thread_settings` inside the block.

    Raises
    ------
    InputError
        If ``threads`` is not a positive integer.
    """
    from threadpoolctl import threadpool_limits

    positive_int(threads, "pinned_threads: threads")
    old = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    limits = threadpool_limits(limits=int(threads))
    try:
        yield thread_settings()
    finally:
        limits.unregister()
        torch.set_num_threads(old)
