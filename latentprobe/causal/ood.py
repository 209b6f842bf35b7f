"""How far intervened latents are from the clean ones: the out-of-distribution score of Z -> Y
(:class:`OODReference`, :func:`ood_reference`, :func:`flag_ood`, :data:`NN_THRESHOLD`, :data:`NORM_BAND`).

An intervention that writes a vector the model never produces at a latent position asks the model
about an input it was not trained on: a flip under it shows sensitivity to *that* input, not that
the latents' content matters. Each intervened latent ``z'`` (example ``i``, step ``k``) is scored
against the clean latents of the same step:

* **nearest-neighbour ratio** ``min_{j != i} ||z' - z_{j,k}|| / s_k``: the distance to the closest
  clean latent of *another* example at step ``k``, over ``s_k``, the median over clean latents
  ``z_{i,k}`` of their own leave-one-out distance ``min_{j != i} ||z_{i,k} - z_{j,k}||``. A clean
  latent scores about 1 (the no-op control's median is 1 by construction), another example's
  clean latent (``swap``) 0.
* **norm ratio** ``||z'|| / m_k``, ``m_k`` the median norm of the clean latents at step ``k``.

Same step, not all steps pooled: a latent is judged against the latents the model feeds at that
position (``repeat_first`` writes step 0's latent at every step; pooled over steps it would look
clean). Example ``i``'s own clean latents are always left out, so a condition that returns the
clean latent scores like a held-out clean latent. Steps beyond the clean run's count have no clean
latents to compare with and score NaN.

A condition is flagged (:func:`flag_ood`) when its median nearest-neighbour ratio exceeds
:data:`NN_THRESHOLD` or its median norm ratio leaves :data:`NORM_BAND`. The thresholds were set from
measurements on the shipped toys and on SmolLM2-135M-Instruct's real weights (``docs/howto/interventions.md``,
"Which interventions stay in distribution", lists every figure): clean latents held out score a median 1
(95th percentile about 4 on the toys at 32 examples, 2.3 on SmolLM2), ``swap`` 0, ``repeat_first`` below
2 on the toys; ``zero``, ``near_zero``, ``shared_tensor``, ``replace_noise``, ``random_direction`` and
``add_noise`` score 3.2-14 on the toys (16-64 examples; more examples, larger ratios) and 31-44 on
SmolLM2 (48 examples), and ``zero`` / ``near_zero`` leave the band. Below about 16 examples the clean
nearest-neighbour distance is too coarse for the ratio to separate them (8 toy examples: 1.1-2.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from jaxtyping import Float

from latentprobe.errors import InputError

__all__ = ["NN_THRESHOLD", "NORM_BAND", "OODReference", "ood_reference", "flag_ood", "changed_steps"]

#: A condition whose median nearest-neighbour ratio is above this is out of distribution.
NN_THRESHOLD: float = 3.0
#: A condition whose median norm ratio ``||z'|| / median clean norm`` is outside this band is out of distribution.
NORM_BAND: tuple[float, float] = (0.5, 2.0)

_BLOCK = 256  # query latents per distance block (bounds memory at _BLOCK x n x d)
_SAME = 1e-10  # squared distances below this share of the squared norms are copies (rounding of the expansion)


def _nn_dist(queries: np.ndarray, pool: np.ndarray, exclude: np.ndarray | None, distinct: bool = False) -> np.ndarray:
    """``min_j ||queries[q] - pool[j]||`` over ``j != exclude[q]`` (float64, exact differences); with
    ``distinct``, exact copies of the query (distance 0 up to rounding) are skipped too (NaN when none is left)."""
    out = np.empty(len(queries))
    pn = (pool * pool).sum(-1)
    for a in range(0, len(queries), _BLOCK):
        q = queries[a:a + _BLOCK]
        qn = (q * q).sum(-1)[:, None]
        d2 = qn + pn[None, :] - 2.0 * q @ pool.T
        d2 = np.maximum(d2, 0.0)
        if distinct:
            d2[d2 <= _SAME * (qn + pn[None, :])] = np.inf
        if exclude is not None:
            ex = exclude[a:a + _BLOCK]
            ok = ex >= 0
            d2[np.flatnonzero(ok), ex[ok]] = np.inf
        j = np.argmin(d2, axis=1)
        # the nearest by the expansion, measured again as a plain difference (no cancellation)
        out[a:a + _BLOCK] = np.linalg.norm(q - pool[j], axis=-1)
        none = ~np.isfinite(d2[np.arange(len(q)), j])
        out[a:a + _BLOCK][none] = np.nan
    return out


@dataclass(frozen=True, eq=False)
class OODReference:
    """The clean latents of a run and their scales, to score intervened latents against.

    Build it with :func:`ood_reference`.

    Attributes
    ----------
    clean : ndarray
        ``[n, K, d]`` clean latents (float64), one row per kept example.
    nn_scale : ndarray
        ``[K]`` median leave-one-out nearest-neighbour distance of the clean latents at each step (to the nearest
        latent of another example that is not an exact copy; NaN when all latents of the step are copies).
    norm_scale : ndarray
        ``[K]`` median norm of the clean latents at each step.
    clean_nn_ratio : ndarray
        ``[n, K]`` each clean latent's own leave-one-out ratio (the no-op control's scores).
    """

    clean: np.ndarray
    nn_scale: np.ndarray
    norm_scale: np.ndarray
    clean_nn_ratio: np.ndarray

    @property
    def num_latents(self) -> int:
        """K, the clean latents per example."""
        return int(self.clean.shape[1])

    def score(self, z: Float[np.ndarray, "k d"], example: int) -> tuple[np.ndarray, np.ndarray]:
        """Nearest-neighbour and norm ratios of one example's intervened latents.

        Parameters
        ----------
        z : array ``[k, d]``
            The latents fed at the example's latent positions (``k`` may differ from K; steps
            ``>= K`` score NaN).
        example : int
            The example's row in :attr:`clean` (its own clean latents are left out), or ``-1`` for
            latents of no clean example (nothing is left out).

        Returns
        -------
        (nn_ratio, norm_ratio) : two ``[k]`` float64 arrays
        """
        z = np.asarray(z, dtype=np.float64)
        if z.ndim != 2 or (z.shape[0] and z.shape[1] != self.clean.shape[2]):
            raise InputError(f"OODReference.score: latents of shape {tuple(z.shape)}; expected [k, "
                             f"{self.clean.shape[2]}] (the clean latents' width).")
        if not -1 <= example < self.clean.shape[0]:
            raise InputError(f"OODReference.score: example={example} is not a row of the {self.clean.shape[0]} "
                             "clean examples (or -1).")
        k = z.shape[0]
        nn, nr = np.full(k, np.nan), np.full(k, np.nan)
        for s in range(min(k, self.num_latents)):
            pool = self.clean[:, s]
            d = _nn_dist(z[s:s + 1], pool, None if example < 0 else np.array([example]))[0]
            nn[s] = d / self.nn_scale[s] if self.nn_scale[s] > 0 else np.nan  # NaN scale stays NaN
            nr[s] = np.linalg.norm(z[s]) / self.norm_scale[s] if self.norm_scale[s] > 0 else np.nan
        return nn, nr


def ood_reference(clean: Float[np.ndarray, "n k d"]) -> OODReference:
    """The reference of :meth:`OODReference.score` from clean latents (at least 2 examples).

    Parameters
    ----------
    clean : array ``[n, K, d]``
        Clean latents of ``n >= 2`` examples with the same K (the fed vectors ``z``).

    Returns
    -------
    OODReference

    Raises
    ------
    InputError
        Fewer than 2 examples (no leave-one-out neighbour), or not a 3-D array.

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe.causal.ood import ood_reference
    >>> rng = np.random.default_rng(0)
    >>> ref = ood_reference(rng.normal(size=(20, 2, 8)))
    >>> float(np.median(ref.clean_nn_ratio[:, 0]))
    1.0
    >>> nn, norm = ref.score(np.zeros((2, 8)), example=0)
    >>> bool(norm.max() == 0.0)
    True
    """
    x = np.asarray(clean, dtype=np.float64)
    if x.ndim != 3:
        raise InputError(f"ood_reference: clean latents of shape {tuple(x.shape)}; give [n, K, d].")
    n, k, _ = x.shape
    if n < 2:
        raise InputError(f"ood_reference: {n} clean example(s); the leave-one-out distance needs at least 2.")
    own = np.arange(n)
    loo = np.stack([_nn_dist(x[:, s], x[:, s], own) for s in range(k)], axis=1) if k else np.zeros((n, 0))
    # the scale: distances to the nearest *distinct* latent (copies, from inputs the latents do not read, left out)
    spread = np.stack([_nn_dist(x[:, s], x[:, s], own, distinct=True) for s in range(k)], axis=1) if k else loo
    nn_scale = np.array([np.median(c[np.isfinite(c)]) if np.isfinite(c).any() else np.nan for c in spread.T])
    norm_scale = np.median(np.linalg.norm(x, axis=-1), axis=0) if k else np.zeros(0)
    ok = np.isfinite(nn_scale) & (nn_scale > 0)
    ratio = np.where(ok, loo / np.where(ok, nn_scale, 1.0), np.nan)
    return OODReference(clean=x, nn_scale=nn_scale, norm_scale=norm_scale, clean_nn_ratio=ratio)


def flag_ood(nn_ratio: float, norm_ratio: float) -> bool:
    """Whether a condition with these median ratios is out of distribution.

    Parameters
    ----------
    nn_ratio, norm_ratio : float
        The condition's median nearest-neighbour and norm ratios (NaN: not measured, not flagged).

    Returns
    -------
    bool
        ``nn_ratio > NN_THRESHOLD`` or ``norm_ratio`` outside :data:`NORM_BAND`.

    Examples
    --------
    >>> from latentprobe.causal.ood import flag_ood
    >>> flag_ood(1.0, 1.0), flag_ood(12.0, 1.0), flag_ood(1.0, 0.0)
    (False, True, True)
    """
    lo, hi = NORM_BAND
    return bool((np.isfinite(nn_ratio) and nn_ratio > NN_THRESHOLD)
                or (np.isfinite(norm_ratio) and not lo <= norm_ratio <= hi))


def changed_steps(mode: str, steps: Sequence[int] | None, k: int) -> list[int]:
    """The latent steps an intervention changes by construction: the intervened steps (all by default),
    and in ``propagate`` mode every step after the first intervened one (they are recomputed).

    Parameters
    ----------
    mode : str
        ``"replay"``, ``"propagate"`` or ``"redecode"``.
    steps : sequence of int or None
        The intervened steps (``None``: all).
    k : int
        Latent steps of the intervened run.

    Returns
    -------
    list[int]
    """
    if steps is None:
        return list(range(k))
    chosen = sorted({int(s) for s in steps if 0 <= int(s) < k})
    if mode == "propagate" and chosen:
        return list(range(chosen[0], k))
    return chosen
