"""LatentTrace: everything one run recorded about its latents, saved as safetensors + JSON."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from einops import rearrange
from jaxtyping import Float, Int
from torch import Tensor

from latentprobe.display import Summarized, describe, short_list
from latentprobe.errors import InputError, StepOutOfRangeError, TraceFormatError
from latentprobe.selection import LatentSelection, modal_latent_count
from latentprobe.spec import LatentSpec
from latentprobe.trace_store import load_trace, save_trace

__all__ = ["Segment", "ExampleTrace", "LatentTrace", "LatentSelection", "modal_latent_count"]


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

    Parameters
    ----------
    index, example_id : int, str
        Position in the trace, and the example's id.
    input_ids, segments : Tensor
        ``[seq]`` ids fed (prompt, markers, latent slots, answer) and their :class:`Segment` codes.
    prompt_len, answer_start : int
        Length of the prompt; position of the answer's first token.
    latent_positions, z, h_src, hidden : Tensor
        ``[k]`` latent slots; ``[k, d]`` fed latents and their sources; ``[k, layer, d]`` residuals there.
    answer_ids, answer_logprobs, answer_text : Tensor, Tensor, str
        The answer's ids, their log-probabilities and its decoded text.
    finished : bool
        Whether the sequence ended with an eos token (not the budget).
    first_token_logprobs, forced_logprobs : Tensor, optional
        The first answer position's full distribution; a replay's log-probabilities of the recorded answer.
    captured_positions, captured_hidden : Tensor, optional
        Prompt positions captured at every layer (``capture_positions``) and their ``[m, layer, d]`` residuals.
    image_embeds, image_grid_thw : Tensor, optional
        The image features the language model read, and their ``[n, 3]`` grids.
    meta : dict
        Anything else the run recorded (mode, end reason, ...).
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
        """Positions whose segment code is ``segment`` (see :class:`Segment`).

        Parameters
        ----------
        segment : int
            A :class:`Segment` code.

        Returns
        -------
        Tensor
        """
        return torch.nonzero(self.segments == segment).flatten()

    def check_steps(self, steps: Sequence[int] | None) -> list[int]:
        """Validate latent step indices (None means all) and return them sorted.

        Parameters
        ----------
        steps : sequence of int, optional
            Latent steps.

        Returns
        -------
        list of int

        Raises
        ------
        StepOutOfRangeError
            A step outside ``0..num_latents-1``, or an empty list (which would change nothing: pass ``None`` for
            every step).
        """
        k = self.num_latents
        if steps is None:
            return list(range(k))
        out = sorted({int(s) for s in steps})
        if not out:
            raise StepOutOfRangeError(f"steps=[] names no latent step, so nothing would change (example "
                                      f"{self.example_id!r} has {k}); give steps to change, or None for all of them.")
        bad = [s for s in out if s < 0 or s >= k]
        if bad:
            raise StepOutOfRangeError(
                f"example {self.example_id!r} has {k} latent step(s) (0..{k - 1}); steps {bad} are out of range."
            )
        return out

    def replace(self, **changes: Any) -> "ExampleTrace":
        """A copy with some fields changed.

        Returns
        -------
        ExampleTrace
        """
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
    """The traces of a set of examples under one spec and one run configuration.

    Parameters
    ----------
    examples : tuple of ExampleTrace
        One record per example, in run order.
    spec : LatentSpec
        The family's protocol.
    config : dict
        The run's settings (mode, generation, intervention, ...).
    """

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
        number left out for having no latents or another count.

        Parameters
        ----------
        num_latents : int, optional
            The count to keep (default the modal rule).

        Returns
        -------
        LatentSelection
        """
        return LatentSelection.of([e.num_latents for e in self.examples], num_latents)

    def kept_indices(self, num_latents: int | None = None) -> list[int]:
        """Indices of the examples with ``num_latents`` latents (default: :func:`modal_latent_count`).

        Parameters
        ----------
        num_latents : int, optional
            The count to keep.

        Returns
        -------
        list of int

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
        """A trace holding the given examples (re-indexed from 0).

        Parameters
        ----------
        indices : sequence of int
            Examples to keep, in the new order.

        Returns
        -------
        LatentTrace
        """
        ex = tuple(self.examples[i].replace(index=j) for j, i in enumerate(indices))
        return LatentTrace(ex, self.spec, dict(self.config))

    def stack(self, what: str = "z", *, layer: int | None = None, num_latents: int | None = None
              ) -> tuple[Float[Tensor, "n k d"], list[int]]:
        """Stack per-example latent tensors into ``[n, K, d]``.

        Parameters
        ----------
        what:
            ``"z"`` (fed vectors), ``"h_src"`` or ``"hidden"`` (then ``layer`` is required).
        layer:
            Residual layer, for ``what="hidden"``.
        num_latents:
            Keep examples with exactly this many latents (default: :func:`modal_latent_count`, the
            most common non-zero count, ties to the largest).

        Returns
        -------
        tuple[Tensor, list[int]]
            The stacked tensor and the indices of the examples it holds. Examples with another number of
            latents (or none) are left out; ``len(kept)`` says how many remain.
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
        a regression target for probes. Examples without an image raise an error.

        Parameters
        ----------
        indices : sequence of int, optional
            Examples (default all).

        Returns
        -------
        Tensor
            ``[n, d]``.
        """
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
        """Write ``path/trace.safetensors`` and ``path/trace.json`` (see :mod:`latentprobe.trace_store`).

        Parameters
        ----------
        path : str or Path
            The folder.

        Returns
        -------
        Path
        """
        return save_trace(self, path)

    @classmethod
    def load(cls, path: str | Path) -> "LatentTrace":
        """Read a trace written by :meth:`save`, checking every tensor against its record (nothing is unpickled).

        Parameters
        ----------
        path : str or Path
            The folder :meth:`save` wrote.

        Returns
        -------
        LatentTrace

        Raises
        ------
        TraceFormatError
            Naming the file and field of a damaged, edited, truncated or mixed-up trace.
        """
        return load_trace(path, cls, ExampleTrace)
