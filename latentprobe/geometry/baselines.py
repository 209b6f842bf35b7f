"""Baselines for the similarity of latents, read from a real run's captures: text-token, image-token and
prompt-last ("inner representation") states at indices matched to the latent steps.

A latent map (the cosine between instances at latent step k) means little alone: prompt states of the same
instances give the reference. :class:`MatchedPositions` is a ``capture_positions`` rule for
:meth:`~latentprobe.engine.LatentRunner.run` that records, of each prompt, ``n`` evenly spaced text
positions, ``n`` evenly spaced image positions and the last prompt position (a few dozen positions, also
for prompts of thousands of image tokens); :func:`baseline_states` turns the captures into arrays shaped
like the latents, ``[n_examples, K, d]``:

* ``text_tokens``: the K-th of K evenly spaced prompt text positions (``numpy.linspace`` over the captured
  text positions, rounded), at residual layer ``token_layer`` (default 0: the vectors fed at those
  positions, as a latent is fed at its slot);
* ``image_tokens``: the same over the image positions (layer 0: the image features the model reads);
* ``prompt_last``: the last prompt position at the last residual layer (the state the model's first
  generated position is computed from), the same vector at every index.

The toy studies capture every image position (``capture_positions="image"``): only ``image_tokens`` is
available there, at the same matched indices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from latentprobe.errors import ShapeError
from latentprobe.trace import LatentTrace, Segment

__all__ = ["BASELINE_NAMES", "MatchedPositions", "baseline_states", "matched_indices"]

#: The baselines :func:`baseline_states` can give, in display order.
BASELINE_NAMES: tuple[str, ...] = ("text_tokens", "image_tokens", "prompt_last")


def matched_indices(n_available: int, k: int) -> np.ndarray:
    """``k`` evenly spaced indices into ``n_available`` items (``numpy.linspace``, rounded), first and last included.

    Parameters
    ----------
    n_available : int
        How many items there are (>= 1).
    k : int
        How many to pick (>= 1); indices repeat when ``k > n_available``.

    Returns
    -------
    numpy.ndarray
        ``[k]`` integer indices.

    Examples
    --------
    >>> matched_indices(10, 4).tolist()
    [0, 3, 6, 9]
    """
    return np.linspace(0, n_available - 1, k).round().astype(int)


@dataclass(frozen=True)
class MatchedPositions:
    """A ``capture_positions`` rule: ``n`` evenly spaced text positions, ``n`` image positions, the last prompt position.

    Parameters
    ----------
    n : int
        Positions per kind (at least the largest latent count you will compare against; default 16).

    Examples
    --------
    >>> import torch
    >>> segs = torch.tensor([0, 0, 1, 1, 1, 1, 0, 0])
    >>> MatchedPositions(2)(torch.zeros(8, dtype=torch.long), segs)
    [0, 2, 5, 7]
    """

    n: int = 16

    def __call__(self, ids: Tensor, segments: Tensor) -> list[int]:
        segs = torch.as_tensor(segments)
        out: set[int] = {int(segs.numel()) - 1}
        for code in (Segment.TEXT, Segment.IMAGE):
            pos = torch.nonzero(segs == code).flatten().tolist()
            if pos:
                k = min(self.n, len(pos))
                out.update(pos[i] for i in matched_indices(len(pos), k))
        return sorted(out)


def _layer_index(trace: LatentTrace, layer: int) -> int:
    layers = trace.config.get("capture_layers", "all")
    if layers == "all":
        return layer
    layers = list(layers)
    want = layers[-1] if layer == -1 else layer
    if want not in layers:
        raise ShapeError(f"baseline_states(): residual layer {layer} was not recorded (capture_layers={layers}); "
                         "run with capture_layers='all' or include it.")
    return layers.index(want)


def baseline_states(trace: LatentTrace, indices: Sequence[int] | None = None, k: int | None = None, *,
                    token_layer: int = 0, inner_layer: int = -1) -> dict[str, np.ndarray]:
    """The baselines of the module docstring for the examples ``indices`` of ``trace``, shaped ``[n, k, d]``.

    Parameters
    ----------
    trace : LatentTrace
        A run with captured prompt positions (``capture_positions=MatchedPositions()``, ``"prompt"`` or
        ``"image"``).
    indices : sequence of int, optional
        Which examples (default: all); e.g. ``trace.stack("z")[1]``, the examples whose latents are compared.
    k : int, optional
        The number of matched indices (default: the latent count of the first example).
    token_layer : int
        Residual layer of the text and image tokens (0: what is fed at those positions).
    inner_layer : int
        Residual layer of ``prompt_last`` (-1: the last).

    Returns
    -------
    dict of str to numpy.ndarray
        Each name of :data:`BASELINE_NAMES` whose positions every chosen example captured, as float32
        ``[n, k, d]``; empty when nothing was captured.

    Raises
    ------
    ShapeError
        A layer that was not recorded, or ``k < 1``.

    Examples
    --------
    On the shipped ``mediated`` toy (K = 4 latents of width 128):

    >>> from latentprobe import toy
    >>> tm = toy.load("mediated")
    >>> ex = tm.examples("test", 3)
    >>> trace = tm.runner().run(tm.prompts(ex), tm.images(ex), max_new_tokens=8, progress=False,
    ...                         capture_positions=MatchedPositions())
    >>> {name: v.shape for name, v in baseline_states(trace).items()}
    {'text_tokens': (3, 4, 128), 'image_tokens': (3, 4, 128), 'prompt_last': (3, 4, 128)}
    """
    idx = list(range(len(trace))) if indices is None else [int(i) for i in indices]
    if not idx:
        return {}
    if k is None:
        k = trace[idx[0]].num_latents
    if k < 1:
        raise ShapeError(f"baseline_states(): k={k}; the baselines are matched to at least one latent step.")
    tok, inner = _layer_index(trace, token_layer), _layer_index(trace, inner_layer)
    found: dict[str, list[np.ndarray]] = {name: [] for name in BASELINE_NAMES}
    for i in idx:
        e = trace[i]
        if e.captured_positions is None or e.captured_hidden is None:
            return {}
        pos = e.captured_positions.tolist()
        kinds = e.segments[e.captured_positions].tolist()
        h = e.captured_hidden.float()
        for name, code in (("text_tokens", Segment.TEXT), ("image_tokens", Segment.IMAGE)):
            rows = [r for r, s in enumerate(kinds) if s == code]
            if rows:
                found[name].append(h[[rows[j] for j in matched_indices(len(rows), k)], tok].numpy())
        if e.prompt_len - 1 in pos:
            found["prompt_last"].append(np.repeat(h[pos.index(e.prompt_len - 1), inner][None].numpy(), k, axis=0))
    return {name: np.stack(v) for name, v in found.items() if len(v) == len(idx)}
