"""Geometry of latent reasoning tokens: similarity, CKA, spectrum and collapse.

This module works on arrays only: numpy arrays or torch tensors of captured
latents, baselines (text or image token embeddings) and features.  It never
runs a model.  float32 input (and float16/bfloat16) is computed in float32
without a float64 copy: blocks of rows are views of the input, and every sum
over many rows (means, Gram and second-moment matrices, pair sums) is
accumulated in float64.  float64 and integer input is computed in float64.
The spectrum (:func:`effective_rank`, :func:`participation_ratio`) multiplies
in float64 whatever the input, because its small eigenvalues sit below
float32's rounding floor.  float32 results agree with the float64 computation
to about 1e-6 relative.  Every pass over the data is chunked over rows so that
large captures (for example 100,000 vectors of width 3,584) can be analysed
with bounded extra memory: the largest temporary buffers are ``chunk_size x d``
blocks and ``d x d`` second-moment matrices.

Shape conventions
-----------------
``x: "n d"``
    ``n`` vectors of width ``d`` (one row per vector).
``latents: "n k d"``
    latents of ``n`` instances, ``K`` latent steps each, width ``d``.

Centring
--------
Several functions take ``center``.  Raw cosine similarities of hidden states
are dominated by a few large shared directions (a common offset), so most
vectors look alike whatever they encode.  Centring removes that shared offset
before comparing.  Neither view alone establishes "collapse": compare both,
and compare against baselines such as :func:`random_matched_norm` and real
token embeddings (see :func:`collapse_table`).

Zero vectors
------------
A row whose norm is zero (after centring: a row equal to the mean, up to a
relative tolerance of ``1e-12``) has no direction; its cosine with anything,
itself included, is reported as ``0``.

Layout
------
``cosine``
    :func:`cosine_matrix`, :func:`random_matched_norm`.
``instances``
    :func:`within_instance`, :func:`across_instances` and their result classes.
``positions``
    :func:`position_similarity`: across-instance cosine and spread at position groups (latents vs downstream).
``similarity_coverage``
    :func:`similarity_coverage`: simulated coverage of the across-instance interval.
``cka``
    :func:`linear_cka`, :func:`cka_matrix`, :func:`cka_against`.
``spectrum``
    :func:`effective_rank`, :func:`participation_ratio`.
``collapse``
    :func:`norm_table`, :func:`collapse_table`.
``_arrays``
    Validation and chunked iteration shared by the above.
"""

from __future__ import annotations

from latentprobe.errors import DTypeError, NonFiniteError, ShapeError, SimilarityError, TooFewSamplesError
from latentprobe.geometry.baselines import BASELINE_NAMES, MatchedPositions, baseline_states, matched_indices
from latentprobe.geometry.cka import cka_against, cka_matrix, linear_cka
from latentprobe.geometry.collapse import collapse_table, norm_table
from latentprobe.geometry.cosine import cosine_matrix, random_matched_norm
from latentprobe.geometry.instances import AcrossInstancesResult, WithinInstanceResult, across_instances, within_instance
from latentprobe.geometry.positions import PositionSimilarityResult, position_similarity
from latentprobe.geometry.similarity_coverage import SimilarityModel, similarity_coverage
from latentprobe.geometry.spectrum import effective_rank, participation_ratio

__all__ = [
    "SimilarityError",
    "ShapeError",
    "TooFewSamplesError",
    "NonFiniteError",
    "DTypeError",
    "WithinInstanceResult",
    "AcrossInstancesResult",
    "cosine_matrix",
    "within_instance",
    "across_instances",
    "random_matched_norm",
    "collapse_table",
    "linear_cka",
    "cka_matrix",
    "cka_against",
    "effective_rank",
    "participation_ratio",
    "norm_table",
    "SimilarityModel",
    "similarity_coverage",
    "BASELINE_NAMES",
    "MatchedPositions",
    "baseline_states",
    "matched_indices",
    "PositionSimilarityResult",
    "position_similarity",
]
