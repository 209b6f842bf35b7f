"""Collapse statistics side by side: latent norms against token embeddings, and the collapse table."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import pandas as pd
from jaxtyping import Float

from latentprobe.errors import ShapeError, SimilarityError, TooFewSamplesError
from latentprobe.geometry._arrays import (
    _Array,
    _as_latents,
    _as_matrix,
    _check_chunk_size,
    _instances_per_chunk,
    _iter_vectors,
    _row_ranges,
    _rows,
    _vector_mean,
)
from latentprobe.geometry.cosine import random_matched_norm
from latentprobe.geometry.instances import _mean_offdiag, _within, across_instances
from latentprobe.geometry.spectrum import _effective_rank_from, _participation_ratio_from, _singular_values
from latentprobe.schema import ACROSS_BY_GROUP, ACROSS_SUMMARY, CENTERINGS, COLLAPSE_TABLE, NORM_TABLE, SOURCES

__all__ = ["norm_table", "collapse_table"]


def _norms(arr: np.ndarray, chunk_size: int, name: str) -> np.ndarray:
    """L2 norms along the last axis, shape ``arr.shape[:-1]``."""
    out = np.empty(arr.shape[:-1], dtype=np.float64)
    step = _instances_per_chunk(arr, chunk_size)
    for start, stop in _row_ranges(arr.shape[0], step):
        out[start:stop] = np.linalg.norm(_rows(arr, start, stop, name), axis=-1)
    return out


def norm_table(
    latents: Float[_Array, "n k d"],
    token_embeddings: Float[_Array, "v d"],
    *,
    chunk_size: int = 4096,
) -> pd.DataFrame:
    """L2 norms of latents per step, next to the norms of token embeddings.

    Parameters
    ----------
    latents : array or tensor, shape (n, K, d)
        Latents of ``n`` instances with ``K`` steps.
    token_embeddings : array or tensor, shape (V, d)
        The vocabulary's input-embedding rows (the scale of what the model
        normally receives at an input position).
    chunk_size : int, default 4096
        Approximate number of vectors processed at a time (it bounds the temporary buffers).

    Returns
    -------
    pandas.DataFrame
        One row per step (``source="latent"``, ``step`` = k) and one row for
        the embeddings (``source="token_embedding"``, ``step`` missing, shown
        as ``<NA>``: the column has the nullable ``Int64`` dtype).  Columns:
        ``source``, ``step``, ``mean_norm``, ``std_norm`` (population standard
        deviation), ``ratio_to_embedding`` (``mean_norm`` divided by the
        embeddings' mean norm).

    Notes
    -----
    Latents much larger than token embeddings are out of the input
    distribution, which may matter for how they are read; a large ratio is
    not by itself evidence that they are ignored or harmful.

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe.geometry import norm_table
    >>> rng = np.random.default_rng(0)
    >>> z = 4.0 * rng.normal(size=(20, 2, 16))
    >>> embeddings = rng.normal(size=(100, 16))
    >>> table = norm_table(z, embeddings)
    >>> table["source"].tolist()
    ['latent', 'latent', 'token_embedding']
    >>> bool((table["ratio_to_embedding"].iloc[:2] > 3.0).all())
    True
    """
    chunk_size = _check_chunk_size(chunk_size)
    arr = _as_latents(latents)
    emb = _as_matrix(token_embeddings, "token_embeddings")
    if emb.shape[1] != arr.shape[2]:
        raise ShapeError(
            f"latents have width {arr.shape[2]} but token_embeddings have width "
            f"{emb.shape[1]}; pass the embedding matrix of the same model (V, d)."
        )
    if emb.shape[0] == 0:
        raise TooFewSamplesError("token_embeddings has no rows.")
    latent_norms = _norms(arr, chunk_size, "latents")
    emb_norms = _norms(emb, chunk_size, "token_embeddings")
    emb_mean = float(emb_norms.mean())
    k = arr.shape[1]
    means = latent_norms.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = means / emb_mean if emb_mean > 0 else np.full(k, np.nan)
    T = NORM_TABLE
    return T.frame(
        {
            T.SOURCE: [SOURCES[0]] * k + [SOURCES[2]],
            T.STEP: pd.array(list(range(k)) + [None], dtype="Int64"),
            T.MEAN_NORM: np.append(means, emb_mean),
            T.STD_NORM: np.append(latent_norms.std(axis=0), float(emb_norms.std())),
            T.RATIO_TO_EMBEDDING: np.append(ratios, 1.0 if emb_mean > 0 else np.nan),
        }
    )


_RESERVED_SOURCES = SOURCES[:2]  # "latent", "random_matched_norm"


def _mean_norm(arr: np.ndarray, mean: np.ndarray | None, chunk_size: int) -> float:
    total = 0.0
    count = 0
    for block in _iter_vectors(arr, chunk_size, "latents"):
        if mean is not None:
            block = block - mean.astype(block.dtype)
        total += float(np.sqrt(np.einsum("ij,ij->i", block, block)).sum(dtype=np.float64))
        count += block.shape[0]
    return total / count


def collapse_table(
    latents: Float[_Array, "n k d"],
    *,
    baselines: Mapping[str, Float[_Array, "n k d"]] | None = None,
    groups: Sequence[Hashable] | np.ndarray | None = None,
    seed: int | None = 0,
    chunk_size: int = 4096,
) -> pd.DataFrame:
    """Side-by-side collapse statistics for latents and baselines.

    Parameters
    ----------
    latents : array or tensor, shape (n, K, d)
        Latents of ``n`` instances with ``K`` steps.
    baselines : mapping of name to array, optional
        Reference vectors with the same ``n`` and ``K`` (e.g.
        ``"text_tokens"``: embeddings of the first ``K`` reasoning-text tokens
        per instance; ``"image_tokens"``: ``K`` image-token states).
        ``"random_matched_norm"`` (:func:`random_matched_norm` of the latents)
        is always added.
    groups : sequence of labels, length n, optional
        Task label per instance; adds ``within_group_mean`` and
        ``between_group_mean`` (averaged over steps) columns.
    seed : int or None, default 0
        Seed of the random baseline.
    chunk_size : int, default 4096
        Approximate number of vectors processed at a time (it bounds the temporary buffers).

    Returns
    -------
    pandas.DataFrame
        One row per (source, centering) with source ``"latent"``, each
        baseline name and ``"random_matched_norm"``, centering ``"raw"`` or
        ``"centered"`` (grand mean of that source subtracted).  Columns:

        - ``within_instance_mean``: mean off-diagonal of the step x step
          cosine matrix (NaN when K = 1);
        - ``consecutive_mean``: mean cosine of consecutive steps;
        - ``across_instance_mean``: mean over steps of the mean cosine
          between distinct instances;
        - ``effective_rank``, ``participation_ratio``: of all ``n * K``
          vectors pooled (centred for ``"centered"``);
        - ``mean_norm``: mean L2 norm of the vectors as analysed (after
          centring for ``"centered"``).

    Notes
    -----
    "Collapse" is a comparison, not a threshold: latents look collapsed only
    relative to baselines of the same shape.  Even then, a high cosine after
    centring or a low effective rank is not by itself collapse — small,
    decodable differences can survive — so pair this table with probes and
    interventions.

    Examples
    --------
    >>> import numpy as np
    >>> from latentprobe.geometry import collapse_table
    >>> z = np.random.default_rng(0).normal(size=(20, 3, 16)) + 3.0
    >>> table = collapse_table(z, seed=0)
    >>> table[["source", "centering"]].values.tolist()  # doctest: +NORMALIZE_WHITESPACE
    [['latent', 'raw'], ['latent', 'centered'],
     ['random_matched_norm', 'raw'], ['random_matched_norm', 'centered']]
    >>> raw = table.set_index(["source", "centering"])["across_instance_mean"]
    >>> bool(raw["latent", "raw"] > raw["random_matched_norm", "raw"] + 0.5)  # the shared offset, not collapse
    True
    """
    chunk_size = _check_chunk_size(chunk_size)
    arr = _as_latents(latents)
    n, k, _ = arr.shape
    sources: dict[str, np.ndarray] = {SOURCES[0]: arr}
    for name, value in (baselines or {}).items():
        if name in _RESERVED_SOURCES:
            raise SimilarityError(
                f"baseline name {name!r} is reserved; choose another name."
            )
        base = _as_latents(value, f"baselines[{name!r}]")
        if base.shape[:2] != (n, k):
            raise ShapeError(
                f"baselines[{name!r}] has shape {tuple(base.shape)} but latents have "
                f"(n={n}, k={k}, d); baselines need the same instances and steps."
            )
        sources[name] = base
    sources[SOURCES[1]] = random_matched_norm(arr, seed=seed, chunk_size=chunk_size)

    rows, T = [], COLLAPSE_TABLE
    for name, src in sources.items():
        for centering in CENTERINGS:
            center = centering == CENTERINGS[1]
            mean = _vector_mean(src, chunk_size, name) if center else None
            step_matrix, consecutive = _within(src, mean, chunk_size)
            across = across_instances(
                src, groups=groups, center=center, max_matrix=0, n_boot=0,
                chunk_size=chunk_size,
            )
            s = _singular_values(src, center, chunk_size, name)
            row = {
                T.SOURCE: name,
                T.CENTERING: centering,
                T.WITHIN_INSTANCE_MEAN: _mean_offdiag(step_matrix),
                T.CONSECUTIVE_MEAN: float(consecutive.mean()) if k > 1 else float("nan"),
                T.ACROSS_INSTANCE_MEAN: float(across.summary[ACROSS_SUMMARY.MEAN_OFFDIAG].mean()),
                T.EFFECTIVE_RANK: _effective_rank_from(s),
                T.PARTICIPATION_RATIO: _participation_ratio_from(s),
                T.MEAN_NORM: _mean_norm(src, mean, chunk_size),
            }
            if across.by_group is not None:
                row[T.WITHIN_GROUP_MEAN] = float(across.by_group[ACROSS_BY_GROUP.WITHIN_GROUP_MEAN].mean())
                row[T.BETWEEN_GROUP_MEAN] = float(across.by_group[ACROSS_BY_GROUP.BETWEEN_GROUP_MEAN].mean())
            rows.append(row)
    return T.frame(rows)
