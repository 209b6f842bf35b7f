"""Simulated coverage of the interval of the cross-instance mean cosine (:func:`across_instances`).

The generating model: instance ``i`` at step ``k`` is ``z_ik = shift * mu_k + L eps_ik`` with a
shared unit direction ``mu_k`` per step, ``eps_ik ~ N(0, I_d)`` independent over instances and
``L = diag(scales)`` with scales decaying geometrically from 1 to ``anisotropy`` (a few strong
directions, as in real hidden states, which makes the pair cosines skewed). The true mean cosine
between two independent instances, ``E[cos(z_1k, z_2k)]``, has no closed form; it is computed by a
large Monte Carlo over independent pairs (its standard error is reported and is far below the
interval widths). Every replication draws ``n`` instances, runs :func:`across_instances` and
records whether each step's interval covers the truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from latentprobe.errors import SimilarityError
from latentprobe.geometry.instances import across_instances
from latentprobe.seeding import numpy_rng
from latentprobe.validate import positive_int

__all__ = ["SimilarityModel", "similarity_coverage"]


@dataclass(frozen=True)
class SimilarityModel:
    """Shared direction plus anisotropic instance noise (see the module docstring).

    Attributes
    ----------
    d : int
        Width of the vectors.
    k : int
        Latent steps (each step has its own shared direction; steps are independent).
    shift : float
        Length of the shared direction relative to the noise's largest scale.
    anisotropy : float
        Smallest noise scale (the largest is 1).
    seed : int
        Seed of the shared directions.
    """

    d: int = 16
    k: int = 2
    shift: float = 1.0
    anisotropy: float = 0.1
    seed: int = 0

    def directions(self) -> np.ndarray:
        """The unit shared directions, shape (k, d)."""
        mu = numpy_rng(self.seed, "directions").standard_normal((self.k, self.d))
        return mu / np.linalg.norm(mu, axis=1, keepdims=True)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` instances, shape (n, k, d)."""
        scales = np.geomspace(1.0, self.anisotropy, self.d)
        return self.shift * self.directions()[None] + rng.standard_normal((n, self.k, self.d)) * scales

    def truth(self, n_pairs: int = 400_000, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Monte Carlo mean cosine of independent pairs per step, and its standard error (each shape (k,))."""
        rng = numpy_rng(seed, "truth")
        sums, sq, done = np.zeros(self.k), np.zeros(self.k), 0
        while done < n_pairs:
            b = min(50_000, n_pairs - done)
            a, c = self.sample(b, rng), self.sample(b, rng)
            cos = (a * c).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(c, axis=-1))
            sums, sq, done = sums + cos.sum(0), sq + (cos ** 2).sum(0), done + b
        mean = sums / done
        return mean, np.sqrt((sq / done - mean ** 2) / done)


def similarity_coverage(
    n: int,
    *,
    interval: str = "jackknife",
    reps: int = 1000,
    level: float = 0.95,
    model: SimilarityModel = SimilarityModel(),
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Coverage of ``across_instances``' interval of ``mean_offdiag`` over simulated data sets.

    Parameters
    ----------
    n : int
        Instances per data set.
    interval : {"jackknife", "bootstrap", "per_instance"}, default "jackknife"
        Passed to :func:`across_instances`.
    reps : int, default 1000
        Replications; coverage is pooled over the model's ``k`` steps (each step is an
        independent replication), so its standard error is about ``sqrt(0.95 * 0.05 / (reps k))``.
    level : float, default 0.95
        Nominal coverage.
    model : SimilarityModel
        The generating model.
    n_boot : int, default 1000
        Resamples of the bootstrap intervals.
    seed : int, default 0
        Seed of the replications.

    Returns
    -------
    pandas.DataFrame
        One row: ``n``, ``interval``, ``level``, ``coverage``, ``coverage_se``, ``mean_width``,
        ``miss_low`` / ``miss_high`` (share of intervals entirely below / above the truth),
        ``truth`` (mean over steps), ``truth_se``, ``reps``.

    Examples
    --------
    >>> from latentprobe.geometry import similarity_coverage
    >>> row = similarity_coverage(24, reps=40).iloc[0]
    >>> bool(0.8 <= row["coverage"] <= 1.0)
    True
    """
    positive_int(n, "n", error=SimilarityError)
    positive_int(reps, "reps", error=SimilarityError)
    truth, truth_se = model.truth()
    rng = numpy_rng(seed, "replications", n)
    low, high = np.empty((reps, model.k)), np.empty((reps, model.k))
    for r in range(reps):
        res = across_instances(model.sample(n, rng), n_boot=n_boot, seed=r, ci=level, interval=interval)
        low[r], high[r] = res.summary["ci_low"].to_numpy(), res.summary["ci_high"].to_numpy()
    cover = (low <= truth) & (truth <= high)
    m = cover.size
    cov = float(cover.mean())
    return pd.DataFrame([{
        "n": int(n), "interval": interval, "level": float(level), "coverage": cov,
        "coverage_se": float(np.sqrt(cov * (1 - cov) / m)), "mean_width": float((high - low).mean()),
        "miss_low": float((high < truth).mean()), "miss_high": float((low > truth).mean()),
        "truth": float(truth.mean()), "truth_se": float(truth_se.max()), "reps": int(reps),
    }])
