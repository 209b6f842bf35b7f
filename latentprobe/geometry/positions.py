"""Across-instance similarity and spread at position groups: are the latents as instance-specific as the image
positions, the close marker or the first answer token?

The input is :class:`latentprobe.readouts.PositionFeatures` (or the same mapping of arrays): residuals of the
same instances at several position groups and layers. Per layer and group, :func:`position_similarity` gives the
mean cosine between distinct instances (a U-statistic with the instance jackknife interval, as
:func:`latentprobe.geometry.across_instances`), the spread of the instances around their mean (its share of the
second moment, effective rank and participation ratio, as :func:`latentprobe.geometry.collapse_table`), and per
group the reference group's cosine minus the group's with a paired interval over instances.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from latentprobe.display import SummarizedResult
from latentprobe.errors import ShapeError, SimilarityError
from latentprobe.geometry._arrays import _check_chunk_size
from latentprobe.geometry.instances import across_instances
from latentprobe.geometry.spectrum import _effective_rank_from, _participation_ratio_from, _singular_values
from latentprobe.schema_similarity import POSITION_SIMILARITY, POSITION_SIMILARITY_GAP
from latentprobe.stats import jackknife_u_interval

__all__ = ["PositionSimilarityResult", "position_similarity"]

#: Below this share of the second moment the instances are treated as one vector (no spread, rank 0).
_SPREAD_FLOOR = 1e-10


@dataclass(frozen=True, eq=False, repr=False)
class PositionSimilarityResult(SummarizedResult):
    """Across-instance similarity and spread per layer and position group.

    Attributes
    ----------
    table : pandas.DataFrame
        :class:`~latentprobe.schema_similarity.POSITION_SIMILARITY`: one row per position group x layer.
    gap : pandas.DataFrame
        :class:`~latentprobe.schema_similarity.POSITION_SIMILARITY_GAP`: per layer and group other than the
        reference, the reference's mean cosine minus the group's, with a paired jackknife interval.
    per_instance : dict str -> numpy.ndarray
        Per group ``[n, L]``: each instance's mean cosine to the other instances (latents: mean over steps);
        ``table.mean_offdiag`` is its column mean.
    layers : tuple of int
        The layers of the ``L`` axis.
    """

    table: pd.DataFrame
    gap: pd.DataFrame
    per_instance: dict[str, np.ndarray]
    layers: tuple[int, ...]


def _arrays(features: Any, reference: str,
            steps: Sequence[int] | None) -> tuple[dict[str, np.ndarray], tuple[int, ...] | None]:
    """Every group as ``[n, L, K, d]`` (K = 1 outside the latents), and the layer names a PositionFeatures holds."""
    layers = None
    if hasattr(features, "features") and hasattr(features, "layers"):
        layers = tuple(int(x) for x in features.layers)
        features = features.features
    if not isinstance(features, Mapping) or not features:
        raise SimilarityError("position_similarity: features must be a PositionFeatures "
                              "(latentprobe.readouts.position_features) or a non-empty mapping group -> array.")
    if reference not in features:
        raise SimilarityError(f"position_similarity: the reference group {reference!r} is not among the features "
                              f"({sorted(features)}); pass reference= one of them, or read it with position_features.")
    out: dict[str, np.ndarray] = {}
    for name, value in features.items():
        arr = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)
        if arr.ndim == 3:
            arr = arr[:, :, None, :]
        elif arr.ndim != 4:
            raise ShapeError(f"position_similarity: group {name!r} has shape {arr.shape}; expected [n, L, d] "
                             "(one position per instance) or [n, L, K, d] (latent steps).")
        elif steps is not None:
            bad = [s for s in steps if not -arr.shape[2] <= s < arr.shape[2]]
            if bad:
                raise SimilarityError(f"position_similarity: steps {bad} out of range for group {name!r} with "
                                      f"{arr.shape[2]} steps.")
            arr = arr[:, :, list(steps)]
        if not np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(np.float64)
        out[str(name)] = arr
    shapes = {name: (a.shape[0], a.shape[1], a.shape[3]) for name, a in out.items()}
    if len(set(shapes.values())) > 1:
        raise ShapeError(f"position_similarity: the groups disagree on (instances, layers, width): {shapes}; pass "
                         "features of the same instances and layers (one position_features call).")
    return out, layers


def _spread(arr: np.ndarray, chunk_size: int, name: str) -> tuple[float, float, float]:
    """Share of the second moment off the mean, effective rank and participation ratio of ``[n, d]`` vectors."""
    x = arr.astype(np.float64, copy=False)
    second = float(np.einsum("ij,ij->", x, x)) / x.shape[0]
    centred = x - x.mean(axis=0)
    share = float(np.einsum("ij,ij->", centred, centred)) / x.shape[0] / second if second > 0 else 0.0
    if share <= _SPREAD_FLOOR:
        return 0.0, 0.0, 0.0
    s = _singular_values(arr, True, chunk_size, name)
    return share, _effective_rank_from(s), _participation_ratio_from(s)


def position_similarity(features: Any, *, reference: str = "latents", layers: Sequence[int] | None = None,
                        steps: Sequence[int] | None = None, ci: float = 0.95,
                        chunk_size: int = 4096) -> PositionSimilarityResult:
    """Across-instance cosine and spread per layer and position group, and the reference's difference to each group.

    Parameters
    ----------
    features : PositionFeatures or mapping str -> array
        :func:`latentprobe.readouts.position_features`, or a mapping group -> ``[n, L, d]`` (one vector per
        instance) or ``[n, L, K, d]`` (latent steps), the same ``n`` instances in the same order in every group.
    reference : str, default "latents"
        The group every other group is compared with.
    layers : sequence of int, optional
        Names of the ``L`` axis (default a PositionFeatures' layers, else ``0..L-1``).
    steps : sequence of int, optional
        The steps of ``[n, L, K, d]`` groups kept (default all).
    ci : float, default 0.95
        Coverage of the intervals.
    chunk_size : int, default 4096
        Approximate number of vectors processed at a time.

    Returns
    -------
    PositionSimilarityResult

    Raises
    ------
    SimilarityError
        No features, an unknown reference, steps out of range, or a mismatched ``layers``.
    ShapeError
        Groups of other instances, layers or widths, or arrays that are not 3-D or 4-D.
    TooFewSamplesError
        Fewer than two instances.

    Notes
    -----
    The cosines are raw: subtracting a group's mean from one vector per instance forces the mean cosine towards
    ``-1/(n-1)`` whatever the data, so the shared direction's weight is reported instead as ``spread``, the share of
    the vectors' second moment off their mean (0: every instance has the same vector). For the latents, the cosine
    of instances ``i`` and ``j`` is the mean over steps of their step-``k`` cosines (still a U-statistic over
    instances), and ``spread``, effective rank and participation ratio are means over steps of the per-step values,
    so every group's measures come from ``n`` vectors.

    The difference of two groups' mean cosines is itself a mean over pairs of instances (of the difference of their
    cosines), so its jackknife interval (:func:`latentprobe.stats.jackknife_u_interval` on the difference of the
    per-instance means) is paired: it keeps the correlation between the groups. Instances must be independent
    units. Lower cosine means the group's vectors differ more between instances; it does not say what they encode
    (probe that with :func:`latentprobe.probing.probe_positions`) nor that the model uses it.

    Examples
    --------
    >>> from latentprobe import geometry, readouts, toy
    >>> tm = toy.load("blind")
    >>> ex = tm.examples("test", 12)
    >>> runner = tm.runner()
    >>> trace = runner.run([tm.prompts(ex)[0]] * 12, tm.images(ex), progress=False)  # one question, 12 images
    >>> pf = readouts.position_features(runner, trace, ("latents", "close", "image"), layers=[4])
    >>> res = geometry.position_similarity(pf)
    >>> res.table[["position_group", "layer", "n"]].values.tolist()
    [['latents', 4, 12], ['close', 4, 12], ['image', 4, 12]]
    >>> row = res.table.set_index("position_group").loc["latents"]  # blind latents never see the image
    >>> round(float(row.mean_offdiag), 4), float(row.spread)
    (1.0, 0.0)
    """
    from latentprobe.validate import probability

    chunk_size = _check_chunk_size(chunk_size)
    probability(ci, "ci", where="position_similarity")
    arrays, named = _arrays(features, reference, steps)
    n, n_layers = arrays[reference].shape[:2]
    names = tuple(int(x) for x in (layers if layers is not None else named if named is not None else range(n_layers)))
    if len(names) != n_layers:
        raise SimilarityError(f"position_similarity: layers {list(names)} name {len(names)} layers but the features "
                              f"have {n_layers}; pass one name per layer.")
    T, G = POSITION_SIMILARITY, POSITION_SIMILARITY_GAP
    per_instance = {g: np.empty((n, n_layers), dtype=np.float64) for g in arrays}
    rows = []
    for g, arr in arrays.items():
        k = arr.shape[2]
        for j, layer in enumerate(names):
            block = arr[:, j]
            r = across_instances(block, max_matrix=0, n_boot=0, chunk_size=chunk_size).per_instance.mean(axis=1)
            per_instance[g][:, j] = r
            est, low, high, _ = jackknife_u_interval(r, level=ci)
            spread = np.array([_spread(block[:, s], chunk_size, g) for s in range(k)]).mean(axis=0)
            rows.append({T.POSITION_GROUP: g, T.LAYER: layer, T.STEPS: k, T.MEAN_OFFDIAG: float(est),
                         T.CI_LOW: float(np.clip(low, -1, 1)), T.CI_HIGH: float(np.clip(high, -1, 1)),
                         T.SPREAD: spread[0], T.EFFECTIVE_RANK: spread[1], T.PARTICIPATION_RATIO: spread[2],
                         T.MEAN_NORM: float(np.linalg.norm(block.astype(np.float64), axis=-1).mean()), T.N: n})
    gaps = []
    for g in arrays:
        if g == reference:
            continue
        for j, layer in enumerate(names):
            ref, other = per_instance[reference][:, j], per_instance[g][:, j]
            est, low, high, _ = jackknife_u_interval(ref - other, level=ci)
            gaps.append({G.LAYER: layer, G.REFERENCE: reference, G.POSITION_GROUP: g,
                         G.REFERENCE_MEAN: float(ref.mean()), G.MEAN_OFFDIAG: float(other.mean()),
                         G.DIFFERENCE: float(est), G.CI_LOW: float(low), G.CI_HIGH: float(high), G.N: n})
    return PositionSimilarityResult(T.frame(rows), G.frame(gaps), per_instance, names)
