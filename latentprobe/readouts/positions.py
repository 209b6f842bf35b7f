"""Residuals at position groups (latents and the positions downstream of them), the input of
:func:`latentprobe.probing.probe_positions` and of the geometry analyses.

What a trace records: every latent slot at every recorded residual layer (``ExampleTrace.hidden``) and, when
the run was given ``capture_positions``, the chosen prompt positions (``captured_hidden``; the toys' studies
capture the image positions). Everything else (the markers, the first answer token, the last prompt token,
the question text) is read here from one teacher-forced forward through the runner's own engine with the
recorded latents fed (the replay prefill of :mod:`latentprobe.readouts.lens`), so nothing is generated.

Memory: groups of many positions (``"image"``, ``"question"``) are mean-pooled per example, and at most
``max_pooled`` of their positions (evenly spaced, first and last included) are read: a 7B model's thousands of
image tokens are never held at every layer at once. Pooling loses which position held what; probe a
subset with a ``capture_positions`` callable and :func:`~latentprobe.probing.probe_sweep` for that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from latentprobe.display import SummarizedResult
from latentprobe.errors import InputError
from latentprobe.readouts.lens import _check_layers, _positions, _recorded_layers, _teacher_forced
from latentprobe.trace import ExampleTrace, LatentTrace, Segment

__all__ = ["PositionFeatures", "position_features", "PROBE_POSITION_GROUPS"]

#: Position groups :func:`position_features` reads (``image`` and ``question`` are mean-pooled).
PROBE_POSITION_GROUPS = ("latents", "open", "close", "first_answer", "last_prompt", "image", "question")
_POOLED = ("image", "question")


@dataclass(frozen=True, eq=False, repr=False)
class PositionFeatures(SummarizedResult):
    """Residuals per position group of the same examples.

    Attributes
    ----------
    features : dict str -> numpy.ndarray
        ``"latents"``: ``[n, L, K, d]`` (every latent step); every other group ``[n, L, d]`` (the first marker,
        the single position, or the mean over the pooled positions). float32.
    layers : tuple of int
        The residual layers of the ``L`` axis (0 = the fed vector, ``i`` = output of decoder layer ``i-1``).
    kept : tuple of int
        The trace's examples behind the ``n`` rows (those with the modal latent count and every group present).
    source : str
        ``"trace"`` when everything was recorded, else where the rest came from.
    dropped : dict
        Example id -> the group it lacks (no close marker, an empty answer), or its latent count.
    """

    features: dict[str, np.ndarray]
    layers: tuple[int, ...]
    kept: tuple[int, ...]
    source: str
    dropped: dict[str, str] = field(default_factory=dict)


def _group_positions(e: ExampleTrace, group: str, max_pooled: int) -> list[int]:
    """Positions of one group in one example (empty: the example lacks it)."""
    if group in _POOLED:
        seg = Segment.IMAGE if group == "image" else Segment.TEXT
        ps = [p for p, s in enumerate(e.segments.tolist()[: e.prompt_len]) if s == seg]
        if len(ps) > max_pooled:
            ps = [ps[i] for i in np.linspace(0, len(ps) - 1, max_pooled).round().astype(int)]
        return ps
    pairs = _positions(e, group)
    if group in ("open", "close"):
        pairs = pairs[:1]  # the first marker
    return [p for _, p in pairs]


def _read(runner: Any, trace: LatentTrace, kept: list[int], want: list[list[int]], layers: list[int],
          batch_size: int) -> tuple[list[dict[int, Tensor]], bool]:
    """``[len(layers), d]`` residuals at the wanted positions of every kept example, and whether any forward ran."""
    n_res = runner.n_layers + 1
    recorded = _recorded_layers(trace, n_res)
    have = all(l in recorded for l in layers)
    idx = [recorded.index(l) for l in layers] if have else []
    got: list[dict[int, Tensor]] = []
    missing: list[list[int]] = []
    for i, ps in zip(kept, want):
        e = trace[i]
        mine: dict[int, Tensor] = {}
        if have:
            lat = e.latent_positions.tolist()
            caps = e.captured_positions.tolist() if e.captured_positions is not None else []
            for p in ps:
                if p in lat:
                    mine[p] = e.hidden[lat.index(p), idx]
                elif p in caps and e.captured_hidden is not None:
                    mine[p] = e.captured_hidden[caps.index(p), idx]
        got.append(mine)
        missing.append([p for p in ps if p not in mine])
    ran = False
    for prompt in (True, False):  # prompt positions from the prompts' prefill, the rest from the whole sequence
        part = [[p for p in m if (p < trace[i].prompt_len) == prompt] for m, i in zip(missing, kept)]
        todo = [j for j, m in enumerate(part) if m]
        if todo:
            ran = True
            res = _teacher_forced(runner, [trace[kept[j]] for j in todo], [part[j] for j in todo], layers, batch_size,
                                  prompt_only=prompt)
            for j, r in zip(todo, res):
                got[j].update(r)
    return got, ran


def position_features(runner: Any, trace: LatentTrace, groups: Sequence[str] = ("latents", "close", "first_answer"),
                      *, layers: Sequence[int] | None = None, num_latents: int | None = None, max_pooled: int = 64,
                      batch_size: int = 8) -> PositionFeatures:
    """Residuals of the latents and of positions downstream of them, per group, for probes and geometry.

    Parameters
    ----------
    runner : LatentRunner
        The runner that recorded ``trace`` (or one on the same model and spec).
    trace : LatentTrace
        The run.
    groups : sequence of str
        Some of :data:`PROBE_POSITION_GROUPS`: ``"latents"`` (every latent step), ``"open"`` / ``"close"`` (the
        first marker), ``"first_answer"`` (the answer's first token), ``"last_prompt"``, ``"image"`` (the prompt's
        image positions, mean-pooled) and ``"question"`` (the prompt's text positions, mean-pooled).
    layers : sequence of int, optional
        Residual layers (default the layers the trace recorded).
    num_latents : int, optional
        The latent count kept (default the modal count, as :meth:`LatentTrace.stack`).
    max_pooled : int
        At most this many positions of a pooled group are read per example (evenly spaced).
    batch_size : int
        Sequences per teacher-forced forward.

    Returns
    -------
    PositionFeatures

    Raises
    ------
    InputError
        An unknown group, or no example with every group present.

    Examples
    --------
    >>> from latentprobe import readouts, toy
    >>> tm = toy.load("blind")
    >>> ex = tm.examples("test", 4)
    >>> runner = tm.runner()
    >>> trace = runner.run(tm.prompts(ex), tm.images(ex), progress=False)
    >>> pf = readouts.position_features(runner, trace, ("latents", "close", "image"), layers=[0, 4])
    >>> pf.features["latents"].shape, pf.features["image"].shape, pf.layers
    ((4, 2, 4, 128), (4, 2, 128), (0, 4))
    """
    from latentprobe.validate import positive_int

    positive_int(max_pooled, "max_pooled", where="position_features")
    positive_int(batch_size, "batch_size", where="position_features")
    groups = [groups] if isinstance(groups, str) else list(dict.fromkeys(groups))
    bad = [g for g in groups if g not in PROBE_POSITION_GROUPS]
    if bad or not groups:
        raise InputError(f"position_features: groups {bad or '[]'}: use some of {', '.join(PROBE_POSITION_GROUPS)}.")
    n_res = runner.n_layers + 1
    layers = _check_layers(layers, _recorded_layers(trace, n_res), n_res)
    k_kept = set(trace.kept_indices(num_latents)) if "latents" in groups else set(range(len(trace)))
    kept, want, dropped = [], [], {}
    for i, e in enumerate(trace):
        if i not in k_kept:
            dropped[e.example_id] = f"{e.num_latents} latents"
            continue
        per = {g: _group_positions(e, g, max_pooled) for g in groups}
        lacking = [g for g, ps in per.items() if not ps]
        if lacking:
            dropped[e.example_id] = f"no {lacking[0]} position"
            continue
        kept.append(i)
        want.append(sorted({p for ps in per.values() for p in ps}))
    if not kept:
        raise InputError(f"position_features: no example has every group {groups} (dropped: "
                         f"{dict(list(dropped.items())[:3])}).")
    got, ran = _read(runner, trace, kept, want, layers, batch_size)
    out: dict[str, list[np.ndarray]] = {g: [] for g in groups}
    for i, res in zip(kept, got):
        e = trace[i]
        for g in groups:
            h = torch.stack([res[p].float() for p in _group_positions(e, g, max_pooled)])  # [m, L, d]
            if g == "latents":
                out[g].append(h.transpose(0, 1).numpy())  # [L, K, d]
            elif g in _POOLED:
                out[g].append(h.mean(0).numpy())
            else:
                out[g].append(h[0].numpy())
    source = "trace + teacher-forced forward" if ran else "trace"
    return PositionFeatures({g: np.stack(v).astype(np.float32) for g, v in out.items()}, tuple(layers), tuple(kept),
                            source, dropped)
