"""LatentTrace: everything one run recorded about its latents, saved as safetensors + JSON."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from collections import Counter
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from einops import rearrange
from jaxtyping import Float, Int
from torch import Tensor

from latentprobe.display import Summarized, describe, short_list
from latentprobe.errors import InputError, StepOutOfRangeError, TraceFormatError
from latentprobe.schema import LATENT_SELECTION
from latentprobe.spec import LatentSpec
from latentprobe.trace_store import load_trace, save_trace

__all__ = ["Segment", "ExampleTrace", "LatentTrace", "LatentSelection", "modal_latent_count"]


def modal_latent_count(counts: Iterable[int]) -> int | None:
    """The number of latents an analysis keeps: the most common non-zero count, ties to the largest.

    Every analysis that needs examples with equally many latents (``trace.stack`` and
    ``trace.features``, the probes and geometry on them, ``z_to_y``, ``default_interventions``,
    the inter-instance similarity of ``x_to_z``) keeps the examples whose count this returns, so
    they all analyse the same subset.

    Examples with no latents never count (they did not enter latent mode). When several counts are
    equally common the largest wins: more latent steps are then analysed per example, and on
    families whose count varies because generation stops early (an end-token stop, as in Mirage or
    LVR), the largest count is the one closest to the model's full latent budget, not a truncated
    run. The rule depends only on the multiset of counts, never on their order.

    Parameters
    ----------
    counts : iterable of int
        The examples' latent counts (``[e.num_latents for e in trace]``).

    Returns
    -------
    int or None
        The count to keep; ``None`` when no count is positive.

    Examples
    --------
    >>> from latentprobe.trace import modal_latent_count
    >>> modal_latent_count([4, 4, 2, 0, 0, 0])
    4
    >>> modal_latent_count([1, 1, 8, 8])  # a tie: the larger count
    8
    >>> modal_latent_count([0, 0]) is None
    True
    """
    tally = Counter(int(c) for c in counts if int(c) > 0)
    if not tally:
        return None
    best = max(tally.values())
    return max(k for k, v in tally.items() if v == best)


@dataclass(frozen=True)
class LatentSelection:
    """Which examples of a trace an analysis keeps, and why the others were left out.

    Attributes
    ----------
    num_latents : int or None
        The latent count kept (:func:`modal_latent_count` unless one was asked for); ``None`` when
        no example has latents.
    indices : tuple of int
        Positions (in the trace) of the kept examples.
    n_examples, n_no_latents, n_other_count : int
        Examples in the trace; left out because they have no latents; left out because they have
        another positive count.
    rule : str
        ``"modal"`` (the most common positive count, ties to the largest) or ``"given"``.
    """

    num_latents: int | None
    indices: tuple[int, ...]
    n_examples: int
    n_no_latents: int
    n_other_count: int
    rule: str = "modal"

    @property
    def n_kept(self) -> int:
        return len(self.indices)

    @classmethod
    def of(cls, counts: Sequence[int], num_latents: int | None = None) -> "LatentSelection":
        """The selection on examples with latent counts ``counts`` (``num_latents=None``: the modal rule)."""
        counts = [int(c) for c in counts]
        rule = "modal" if num_latents is None else "given"
        k = modal_latent_count(counts) if num_latents is None else int(num_latents)
        kept = tuple(i for i, c in enumerate(counts) if k is not None and c == k)
        zeros = sum(c == 0 for c in counts)
        return cls(k, kept, len(counts), zeros if k != 0 else 0, len(counts) - len(kept) - (zeros if k != 0 else 0), rule)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready counts (no indices), keyed by the :class:`~latentprobe.schema.LATENT_SELECTION`
        columns: the ``kept`` entry of ``z_to_y``'s config."""
        T = LATENT_SELECTION
        return {T.NUM_LATENTS: self.num_latents, T.N_EXAMPLES: self.n_examples, T.N_KEPT: self.n_kept,
                T.N_NO_LATENTS: self.n_no_latents, T.N_OTHER_COUNT: self.n_other_count, T.RULE: self.rule}

    def frame(self) -> pd.DataFrame:
        """The counts as a one-row :class:`~latentprobe.schema.LATENT_SELECTION` table."""
        return LATENT_SELECTION.frame([self.to_dict()])


class Segment:
    """Integer codes for what each position of a sequence is."""

    PAD = -1
    TEXT = 0  # prompt text
    IMAGE = 1  # image placeholder tokens (vision features)
    OPEN = 2  # open marker
    LATENT = 3  # latent slot: a vector is fed instead of a token embedding
    CLOSE = 4  # close marker and tokens forced after it
    GEN = 5  # generated text

    NAMES = {-1: "pad", 0: "text", 1: "image", 2: "open", 3: "latent", 4: "close", 5: "gen"}




@dataclass(frozen=True, eq=False, repr=False)
class ExampleTrace(Summarized):
    """One example's record.

    Layer index convention for ``hidden``: 0 is the input of decoder layer 0 (for GPT-2 this
    includes the learned position embedding), ``i >= 1`` is the output of decoder layer ``i-1``;
    there are ``n_layers + 1`` of them. ``h_src[k]`` is the final-norm output at
    ``latent_positions[k] - 1``, and ``z[k] = f(h_src[k])`` is what was fed at the latent slot.
    """

    index: int
    example_id: str
    input_ids: Int[Tensor, "seq"]
    segments: Int[Tensor, "seq"]
    prompt_len: int
    latent_positions: Int[Tensor, "k"]
    z: Float[Tensor, "k d"]
    h_src: Float[Tensor, "k d"]
    hidden: Float[Tensor, "k layer d"]
    answer_start: int
    answer_ids: Int[Tensor, "a"]
    answer_logprobs: Float[Tensor, "a"]
    answer_text: str
    finished: bool
    first_token_logprobs: Float[Tensor, "vocab"] | None = None
    forced_logprobs: Float[Tensor, "a"] | None = None
    captured_positions: Int[Tensor, "m"] | None = None
    captured_hidden: Float[Tensor, "m layer d"] | None = None
    image_embeds: Float[Tensor, "i d"] | None = None
    image_grid_thw: Int[Tensor, "n 3"] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_latents(self) -> int:
        return int(self.latent_positions.numel())

    @property
    def entered_latent_mode(self) -> bool:
        return self.num_latents > 0

    @property
    def seq_len(self) -> int:
        return int(self.input_ids.numel())

    def positions_of(self, segment: int) -> Int[Tensor, "m"]:
        """Positions whose segment code is ``segment`` (see :class:`Segment`)."""
        return torch.nonzero(self.segments == segment).flatten()

    def check_steps(self, steps: Sequence[int] | None) -> list[int]:
        """Validate latent step indices (None means all) and return them sorted."""
        k = self.num_latents
        if steps is None:
            return list(range(k))
        out = sorted({int(s) for s in steps})
        bad = [s for s in out if s < 0 or s >= k]
        if bad:
            raise StepOutOfRangeError(
                f"example {self.example_id!r} has {k} latent step(s) (0..{k - 1}); steps {bad} are out of range."
            )
        return out

    def replace(self, **changes: Any) -> "ExampleTrace":
        return dataclasses.replace(self, **changes)

    def _summary(self) -> tuple[str, list[tuple[str, str]]]:
        segs = [Segment.NAMES.get(int(s), str(int(s))) for s in self.segments.tolist()]
        counts = {name: segs.count(name) for name in Segment.NAMES.values() if segs.count(name)}
        rows = [
            ("positions", f"{self.seq_len} (prompt {self.prompt_len}; " + ", ".join(f"{k} {v}" for k, v in counts.items()) + ")"),
            ("latents", f"{self.num_latents} at positions {short_list(self.latent_positions.tolist(), 6)}"),
            ("z", describe(self.z)),
            ("hidden", describe(self.hidden) + " (latent step x residual layer x width)"),
            ("answer", describe(self.answer_text) + ("" if self.finished else " (not finished)")),
        ]
        if self.captured_hidden is not None:
            rows.append(("captured", describe(self.captured_hidden)))
        if self.image_embeds is not None:
            rows.append(("image features", describe(self.image_embeds)))
        return f"ExampleTrace {self.example_id!r} (index {self.index})", rows


@dataclass(frozen=True, eq=False, repr=False)
class LatentTrace(Summarized):
    """The traces of a set of examples under one spec and one run configuration."""

    examples: tuple[ExampleTrace, ...]
    spec: LatentSpec
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "examples", tuple(self.examples))
        for name, values in (("example_id", [e.example_id for e in self.examples]),
                             ("index", [e.index for e in self.examples])):
            seen: set[Any] = set()
            clash = sorted({str(v) for v in values if v in seen or seen.add(v)})
            if clash:
                raise TraceFormatError(
                    f"LatentTrace: {name} {', '.join(clash[:5])} appear(s) more than once; every example needs its own "
                    f"{name} (results are matched on them). Combine traces with distinct ids, or re-index with select()."
                )

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self) -> Iterator[ExampleTrace]:
        return iter(self.examples)

    def __getitem__(self, i: int) -> ExampleTrace:
        return self.examples[i]

    @property
    def example_ids(self) -> list[str]:
        return [e.example_id for e in self.examples]

    @property
    def answers(self) -> list[str]:
        return [e.answer_text for e in self.examples]

    @property
    def entered(self) -> list[bool]:
        """Whether each example entered latent mode at least once."""
        return [e.entered_latent_mode for e in self.examples]

    def _summary(self) -> tuple[str, list[tuple[str, str]]]:
        n = len(self.examples)
        counts: dict[int, int] = {}
        for e in self.examples:
            counts[e.num_latents] = counts.get(e.num_latents, 0) + 1
        first = self.examples[0] if n else None
        rows = [
            ("spec", f"{self.spec.name} (open {self.spec.open_mode}, K={self.spec.num_latents}, stop {self.spec.stop})"),
            ("mode", str(self.config.get("mode", "?"))),
            ("latents per example", ", ".join(f"{k}: {c}" for k, c in sorted(counts.items()))),
            ("example ids", short_list(self.example_ids)),
            ("answers", short_list(self.answers)),
        ]
        if first is not None:
            rows += [("z (first example)", describe(first.z)),
                     ("hidden (first example)", describe(first.hidden) + " (step x residual layer x width)")]
        return f"LatentTrace: {n} example(s)", rows

    def latent_selection(self, num_latents: int | None = None) -> LatentSelection:
        """The examples an analysis keeps: those with ``num_latents`` latents (default: the count of
        :func:`modal_latent_count`, the most common non-zero count, ties to the largest), with the
        number left out for having no latents or another count."""
        return LatentSelection.of([e.num_latents for e in self.examples], num_latents)

    def kept_indices(self, num_latents: int | None = None) -> list[int]:
        """Indices of the examples with ``num_latents`` latents (default: :func:`modal_latent_count`).

        Raises
        ------
        StepOutOfRangeError
            With the default, when no example entered latent mode.
        """
        sel = self.latent_selection(num_latents)
        if sel.num_latents is None:
            raise StepOutOfRangeError("no example in this trace entered latent mode; there are no latents.")
        return list(sel.indices)

    def features(self, layers: int | Sequence[int] | None = None, steps: Sequence[int] | None = None, *,
                 what: str = "hidden", num_latents: int | None = None) -> np.ndarray:
        """The float32 array that probes and geometry analyses take.

        Parameters
        ----------
        layers:
            Residual layer(s) for ``what="hidden"`` (0 = the fed vector, ``i`` = output of decoder layer
            ``i-1``; negative indices count from the last). An int gives ``[n, k, d]``; a sequence gives
            ``[n, len(layers), k, d]``. ``None`` means the last layer.
        steps:
            Latent steps to keep (default: all).
        what:
            ``"hidden"``, ``"z"`` (the fed vectors) or ``"h_src"`` (final-norm states the latents come from).
        num_latents:
            Every example with latents must have the same number of them (examples without latents
            are left out); when they differ, name the count to keep (``trace.latent_selection().num_latents``
            is the one :meth:`stack` and the causal analyses keep; ``kept_indices(num_latents)``
            lists which examples it keeps).

        Returns
        -------
        ``[n, k, d]``: latents per instance, the input of the geometry analyses (``X[:, s]`` is the
        ``[n, d]`` design matrix of a probe at step ``s``); or ``[n, L, k, d]``, the input of
        :func:`latentprobe.probing.probe_sweep` (layer x step cells).

        Examples
        --------
        >>> from latentprobe import toy
        >>> tm = toy.load("mediated")
        >>> trace = tm.run(tm.examples("test", 3))
        >>> trace.features(layers=2).shape
        (3, 4, 128)
        >>> trace.features(layers=[0, 4], steps=[0]).shape
        (3, 2, 1, 128)
        """
        if what not in ("hidden", "z", "h_src"):
            raise InputError(f"features(what={what!r}): use 'hidden', 'z' or 'h_src'.")
        counts = sorted({e.num_latents for e in self.examples})
        positive = [c for c in counts if c > 0]
        if num_latents is None and len(positive) > 1:
            raise InputError(
                f"features(): examples have different numbers of latents {positive}; pass num_latents=<one of them> "
                f"(num_latents={modal_latent_count(e.num_latents for e in self.examples)} is the count stack() and "
                "the causal analyses keep; trace.kept_indices(num_latents) lists the examples kept)."
            )
        kept = self.kept_indices(num_latents)
        if not kept:
            raise StepOutOfRangeError(f"features(): no example has num_latents={num_latents}; counts are {counts}.")
        k = self.examples[kept[0]].num_latents
        step_idx = list(range(k)) if steps is None else self.examples[kept[0]].check_steps(steps)
        if what != "hidden":
            if layers is not None:
                raise InputError(f"features(what={what!r}) has no layers; drop layers= or use what='hidden'.")
            arr = torch.stack([getattr(self.examples[i], what)[step_idx] for i in kept])
            return arr.float().numpy()
        n_res = self.examples[kept[0]].hidden.shape[1]
        one = layers is None or isinstance(layers, (int, np.integer))
        wanted = [n_res - 1] if layers is None else ([int(layers)] if one else [int(l) for l in layers])
        bad = [l for l in wanted if not -n_res <= l < n_res]
        if bad or not wanted:
            raise StepOutOfRangeError(
                f"features(layers={layers!r}): traces hold {n_res} residual layers (0..{n_res - 1}); {bad or 'none'} given."
            )
        arr = torch.stack([self.examples[i].hidden[step_idx][:, wanted] for i in kept])  # [n, k, L, d]
        arr = arr[:, :, 0] if one else rearrange(arr, "n k l d -> n l k d")
        return arr.float().numpy()

    def select(self, indices: Sequence[int]) -> "LatentTrace":
        """A trace holding the given examples (re-indexed from 0)."""
        ex = tuple(self.examples[i].replace(index=j) for j, i in enumerate(indices))
        return LatentTrace(ex, self.spec, dict(self.config))

    def stack(self, what: str = "z", *, layer: int | None = None, num_latents: int | None = None
              ) -> tuple[Float[Tensor, "n k d"], list[int]]:
        """Stack per-example latent tensors into ``[n, K, d]``.

        Parameters
        ----------
        what:
            ``"z"`` (fed vectors), ``"h_src"`` or ``"hidden"`` (then ``layer`` is required).
        num_latents:
            Keep examples with exactly this many latents (default: :func:`modal_latent_count`, the
            most common non-zero count, ties to the largest).

        Returns
        -------
        (tensor, kept): the stacked tensor and the indices of the examples it holds. Examples with
        another number of latents (or none) are left out; ``len(kept)`` says how many remain.
        """
        kept = self.kept_indices(num_latents)
        if num_latents is None:
            num_latents = self.examples[kept[0]].num_latents
        rows = []
        for i in kept:
            e = self.examples[i]
            if what == "hidden":
                if layer is None:
                    raise StepOutOfRangeError("stack('hidden') needs layer=<residual layer index>.")
                nl = e.hidden.shape[1]
                if not -nl <= layer < nl:
                    raise StepOutOfRangeError(f"layer {layer} out of range: traces hold {nl} residual layers (0..{nl - 1}).")
                rows.append(e.hidden[:, layer])
            elif what in ("z", "h_src"):
                rows.append(getattr(e, what))
            else:
                raise InputError(f"stack(what={what!r}): use 'z', 'h_src' or 'hidden'.")
        if not rows:
            d = self.examples[0].z.shape[-1] if self.examples else 0
            return torch.zeros(0, num_latents, d), kept
        return torch.stack(rows), kept

    def image_features(self, indices: Sequence[int] | None = None) -> Float[Tensor, "n d"]:
        """Mean-pooled vision-tower output (the merged image features the LM reads) per example,
        a regression target for probes. Examples without an image raise an error."""
        idx = range(len(self)) if indices is None else indices
        rows = []
        for i in idx:
            e = self.examples[i]
            if e.image_embeds is None:
                raise StepOutOfRangeError(f"example {e.example_id!r} has no image features (no image in its prompt).")
            rows.append(e.image_embeds.mean(0))
        return torch.stack(rows)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write ``path/trace.safetensors`` and ``path/trace.json`` (see :mod:`latentprobe.trace_store`)."""
        return save_trace(self, path)

    @classmethod
    def load(cls, path: str | Path) -> "LatentTrace":
        """Read a trace written by :meth:`save`, checking every tensor against its record (nothing is unpickled).

        Raises
        ------
        TraceFormatError
            Naming the file and field of a damaged, edited, truncated or mixed-up trace.
        """
        return load_trace(path, cls, ExampleTrace)
