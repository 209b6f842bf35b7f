"""LatentTrace: everything one run recorded about its latents, saved as safetensors + JSON."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from jaxtyping import Float, Int
from safetensors.torch import load_file, save_file
from torch import Tensor

from latentprobe.errors import StepOutOfRangeError, TraceFormatError
from latentprobe.spec import LatentSpec

__all__ = ["Segment", "ExampleTrace", "LatentTrace"]

FORMAT_VERSION = 1


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


_TENSOR_FIELDS = (
    "input_ids", "segments", "latent_positions", "z", "h_src", "hidden", "captured_positions",
    "captured_hidden", "answer_ids", "answer_logprobs", "first_token_logprobs", "forced_logprobs",
    "image_embeds", "image_grid_thw",
)


@dataclass(frozen=True, eq=False)
class ExampleTrace:
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


@dataclass(frozen=True, eq=False)
class LatentTrace:
    """The traces of a set of examples under one spec and one run configuration."""

    examples: tuple[ExampleTrace, ...]
    spec: LatentSpec
    config: dict[str, Any] = field(default_factory=dict)

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
            Keep examples with exactly this many latents (default: the most common count).

        Returns
        -------
        (tensor, kept): the stacked tensor and the indices of the examples it holds. Examples with
        another number of latents (or none) are left out; ``len(kept)`` says how many remain.
        """
        counts = [e.num_latents for e in self.examples]
        if num_latents is None:
            nz = [c for c in counts if c > 0]
            if not nz:
                raise StepOutOfRangeError("no example in this trace entered latent mode; nothing to stack.")
            num_latents = max(set(nz), key=nz.count)
        kept = [i for i, c in enumerate(counts) if c == num_latents]
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
                raise ValueError(f"stack(what={what!r}): use 'z', 'h_src' or 'hidden'.")
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
        """Write ``path/trace.safetensors`` and ``path/trace.json``; returns the folder."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tensors: dict[str, Tensor] = {}
        records = []
        for e in self.examples:
            rec: dict[str, Any] = {}
            for f in dataclasses.fields(e):
                v = getattr(e, f.name)
                if f.name in _TENSOR_FIELDS:
                    if v is not None:
                        tensors[f"{e.index}.{f.name}"] = v.detach().contiguous().cpu()
                    rec[f.name] = v is not None
                else:
                    rec[f.name] = v
            records.append(rec)
        save_file(tensors, str(path / "trace.safetensors"))
        meta = {"format_version": FORMAT_VERSION, "spec": self.spec.to_dict(), "config": self.config,
                "examples": records}
        (path / "trace.json").write_text(json.dumps(meta, indent=1, default=_json_default))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "LatentTrace":
        """Read a trace written by :meth:`save` (safetensors only: nothing is unpickled)."""
        path = Path(path)
        jf, tf = path / "trace.json", path / "trace.safetensors"
        if not jf.exists() or not tf.exists():
            raise TraceFormatError(f"{path} does not hold trace.json and trace.safetensors; was it written by LatentTrace.save?")
        meta = json.loads(jf.read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise TraceFormatError(f"{path}: trace format {meta.get('format_version')!r}, this version reads {FORMAT_VERSION}.")
        tensors = load_file(str(tf))
        examples = []
        for rec in meta["examples"]:
            kw = {}
            for k, v in rec.items():
                if k in _TENSOR_FIELDS:
                    kw[k] = tensors[f"{rec['index']}.{k}"] if v else None
                else:
                    kw[k] = v
            examples.append(ExampleTrace(**kw))
        return cls(tuple(examples), LatentSpec.from_dict(meta["spec"]), meta.get("config", {}))


def _json_default(o: Any) -> Any:
    if isinstance(o, Tensor):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    if dataclasses.is_dataclass(o):
        return dataclasses.asdict(o)
    return str(o)
