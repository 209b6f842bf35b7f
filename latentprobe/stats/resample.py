"""The one source of bootstrap resamples: :func:`resample_indices`, and how a statistic is applied to them.

Every bootstrap interval of latentprobe resamples examples with
``numpy.random.default_rng(seed).integers(0, n, size=(n_boot, n))`` (drawn in row blocks from the
same generator when ``n_boot * n > 2**24``). For ``n_boot * n <= 2**24`` these are exactly the
resamples :func:`scipy.stats.bootstrap` draws for one sample (or paired samples) with
``rng=numpy.random.default_rng(seed)`` and ``n_resamples=n_boot``.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np

from latentprobe.errors import StatsInputError

__all__ = ["resample_indices"]

# Above this many resampled values the index matrix is drawn in blocks of rows
# to bound memory (at most 128 MiB of int64 indices per block).
_MAX_INDEX_ELEMENTS = 1 << 24

Statistic = Callable[..., Any]

# Statistics that return v exactly for a sample of identical values v.
_LOCATION_STATISTICS = (np.mean, np.median, np.nanmean, np.nanmedian, np.average)


def resample_indices(n: int, n_boot: int, seed: int | None) -> Iterator[np.ndarray]:
    """Yield bootstrap index matrices; rows are resamples of ``range(n)``.

    The one source of resamples of every interval in latentprobe: :func:`latentprobe.stats.bootstrap_ci`,
    :func:`latentprobe.stats.paired_bootstrap_diff`, :func:`latentprobe.stats.bootstrap_mean_columns`,
    :func:`latentprobe.stats.mediation_effects` and
    the proportion mediated of :func:`latentprobe.causal.summarize_mediation` all read it
    (through :func:`latentprobe.stats.paired_difference_ci` and :func:`latentprobe.stats.one_sample_ci`).

    When ``n_boot * n`` is moderate (the usual case) a single matrix
    ``np.random.default_rng(seed).integers(0, n, size=(n_boot, n))`` is
    drawn. Larger problems are drawn in row blocks from the same generator.

    Parameters
    ----------
    n : int
        Examples.
    n_boot : int
        Resamples.
    seed : int | None
        Seed.

    Returns
    -------
    Iterator[np.ndarray]
        Chunks of ``[b, n]`` indices.
    """
    rng = np.random.default_rng(seed)
    if n_boot * n <= _MAX_INDEX_ELEMENTS:
        yield rng.integers(0, n, size=(n_boot, n))
        return
    rows = max(1, _MAX_INDEX_ELEMENTS // n)
    done = 0
    while done < n_boot:
        k = min(rows, n_boot - done)
        yield rng.integers(0, n, size=(k, n))
        done += k


def _apply_statistic(statistic: Statistic, samples: np.ndarray) -> np.ndarray:
    """Apply ``statistic`` to every row of a 2-D array of resamples."""
    out = None
    try:
        out = np.asarray(statistic(samples, axis=1), dtype=np.float64)
    except TypeError:
        out = None
    if out is None or out.shape != (samples.shape[0],):
        out = np.array([float(statistic(row)) for row in samples], dtype=np.float64)
    return out


def _scalar_statistic(statistic: Statistic, values: np.ndarray, arg: str) -> float:
    if statistic in _LOCATION_STATISTICS and np.all(values == values[0]):
        # The mean/median of identical values is that value; avoid summation rounding.
        return float(values[0])
    try:
        val = float(np.asarray(statistic(values)))
    except (TypeError, ValueError) as exc:
        raise StatsInputError(
            f"`statistic` must map a 1-D array to a single number; applying it to "
            f"`{arg}` failed ({exc})."
        ) from exc
    return val
