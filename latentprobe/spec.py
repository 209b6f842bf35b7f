"""Latent-reasoning protocols: how a model family opens, fills and closes latent mode.

Every supported model computes, at a latent position ``p``::

    z_p = f(h_{p-1})     # h: last-layer output after the final norm (what lm_head reads)

and feeds ``z_p`` in place of the token embedding at ``p``. A :class:`LatentSpec` records
everything else that differs between families: how latent mode opens, where the first latent
goes, when it stops, what id is stored at latent slots and what ``f`` is. Token *strings* live
in the spec; ids are always read from the tokenizer (:meth:`LatentSpec.resolve`).

Example
-------
A spec for a new family takes a few lines::

    >>> from latentprobe import LatentSpec
    >>> spec = LatentSpec(
    ...     name="my-model", open_mode="emitted", open_token="<think_start>",
    ...     close_token="<think_end>", num_latents=5, first_offset=1,
    ...     slot_policy="placeholder", slot_token="<think_pad>")
    >>> spec.num_latents
    5
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from latentprobe.errors import SpecError, SpecTokenError

__all__ = [
    "LatentSpec",
    "ResolvedSpec",
    "get_preset",
    "list_presets",
    "register_preset",
]

OpenMode = Literal["emitted", "prompt", "appended"]
StopRule = Literal["fixed", "end_token"]
SlotPolicy = Literal["sampled", "placeholder", "none"]
ProjectionKind = Literal["identity", "module"]
Mediator = Literal["latent", "text"]


@dataclass(frozen=True)
class LatentSpec:
    """How one model family runs its latent loop.

    Parameters
    ----------
    name:
        Family name, e.g. ``"mirage"``.
    open_mode:
        ``"emitted"``: the model itself emits ``open_token`` while decoding (Monet, LVR, Mirage).
        ``"prompt"``: the prompt already holds ``open_token`` followed by latent slot tokens
        (Coconut). ``"appended"``: the runner appends ``open_token`` to every prompt (CODI).
    open_token, close_token:
        Marker strings. ``close_token`` is fed after the last latent (forced, or sampled when the
        stop rule is ``"end_token"``).
    num_latents:
        K for ``stop="fixed"``; the cap for ``stop="end_token"``. Must be >= 1.
    first_offset:
        0: the first latent replaces the open marker's own slot (Monet). 1: the open marker is an
        ordinary token and the first latent follows it.
    stop:
        ``"fixed"``: exactly K latents, then the close marker is forced. ``"end_token"``: before
        each latent the model's greedy next token is read from ``h_{p-1}``; if it is
        ``close_token`` latent mode ends (a sampled close), otherwise a latent is fed; at the cap
        the close is forced.
    min_latents:
        With ``stop="end_token"``, the number of latents fed before the end token is looked for.
    slot_policy:
        The id recorded at latent slots. ``"sampled"``: the greedy token read from ``h_{p-1}`` (what
        Monet and LVR leave in their sequences); ``"placeholder"``: ``slot_token``; ``"none"``: no
        token of its own (CODI); the pad id is recorded. Before any replay every latent slot id is
        normalised to :attr:`ResolvedSpec.placeholder_id`, because Qwen2.5-VL derives its rotary
        positions from ``input_ids``.
    slot_token:
        Placeholder string (``"<|latent_pad|>"``, ``"<|latent|>"``), required for
        ``slot_policy="placeholder"`` and for ``open_mode="prompt"`` (it marks the slots).
    after_close:
        Tokens forced after the close marker (rarely needed).
    projection:
        ``"identity"``: ``f(h) = h``. ``"module"``: ``f`` is a module given to the runner
        (e.g. :class:`latentprobe.engine.heads.CodiProjection`).
    max_segments:
        How many ``open -> latents -> close`` segments one generation may hold (``"emitted"`` only).
    mediator:
        ``"latent"``: vectors are fed at the slots. ``"text"``: explicit text imagination
        (CapImagine-style): between the markers the model writes ordinary tokens, chosen like any
        text token, until it emits ``close_token`` (or reaches ``num_latents`` tokens). The span is
        recorded exactly like latents (``z`` = the fed token embeddings), so every analysis runs on
        both and can compare them.
    base:
        Informative: the base architecture(s) the family is built on.
    """

    name: str
    open_mode: OpenMode
    open_token: str
    close_token: str | None
    num_latents: int
    first_offset: int = 1
    stop: StopRule = "fixed"
    min_latents: int = 1
    slot_policy: SlotPolicy = "none"
    slot_token: str | None = None
    after_close: tuple[str, ...] = ()
    projection: ProjectionKind = "identity"
    max_segments: int = 1
    mediator: Mediator = "latent"
    base: str = ""
    notes: str = ""

    def __post_init__(self) -> None:
        if self.open_mode not in ("emitted", "prompt", "appended"):
            raise SpecError(
                f"LatentSpec {self.name!r}: open_mode={self.open_mode!r}; use 'emitted', 'prompt' or 'appended'."
            )
        if not isinstance(self.num_latents, int) or self.num_latents <= 0:
            raise SpecError(
                f"LatentSpec {self.name!r}: num_latents={self.num_latents!r}; K must be a positive integer "
                "(the number of latents, or their cap with stop='end_token')."
            )
        if self.first_offset not in (0, 1):
            raise SpecError(f"LatentSpec {self.name!r}: first_offset must be 0 or 1, got {self.first_offset!r}.")
        if self.first_offset == 0 and self.open_mode != "emitted":
            raise SpecError(
                f"LatentSpec {self.name!r}: first_offset=0 (latent on the open marker's slot) needs open_mode='emitted'."
            )
        if self.stop not in ("fixed", "end_token"):
            raise SpecError(f"LatentSpec {self.name!r}: stop must be 'fixed' or 'end_token', got {self.stop!r}.")
        if self.stop == "end_token" and self.close_token is None:
            raise SpecError(f"LatentSpec {self.name!r}: stop='end_token' needs close_token (the end token).")
        if not 0 <= self.min_latents <= self.num_latents:
            raise SpecError(
                f"LatentSpec {self.name!r}: min_latents={self.min_latents} must lie in [0, num_latents={self.num_latents}]."
            )
        if self.slot_policy not in ("sampled", "placeholder", "none"):
            raise SpecError(f"LatentSpec {self.name!r}: unknown slot_policy {self.slot_policy!r}.")
        if self.slot_policy == "placeholder" and self.slot_token is None:
            raise SpecError(f"LatentSpec {self.name!r}: slot_policy='placeholder' needs slot_token.")
        if self.open_mode == "prompt" and self.slot_token is None:
            raise SpecError(
                f"LatentSpec {self.name!r}: open_mode='prompt' needs slot_token, the token marking latent slots in the prompt."
            )
        if self.projection not in ("identity", "module"):
            raise SpecError(f"LatentSpec {self.name!r}: projection must be 'identity' or 'module'.")
        if self.mediator not in ("latent", "text"):
            raise SpecError(f"LatentSpec {self.name!r}: mediator must be 'latent' or 'text', got {self.mediator!r}.")
        if self.mediator == "text" and self.close_token is None:
            raise SpecError(f"LatentSpec {self.name!r}: mediator='text' needs close_token to end the span.")
        if self.max_segments < 1:
            raise SpecError(f"LatentSpec {self.name!r}: max_segments must be >= 1.")

    def replace(self, **changes: Any) -> "LatentSpec":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["after_close"] = list(self.after_close)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LatentSpec":
        d = dict(d)
        d["after_close"] = tuple(d.get("after_close", ()))
        return cls(**d)

    def tokens(self) -> dict[str, str]:
        """Every marker string the spec needs, by role."""
        out = {"open_token": self.open_token}
        if self.close_token is not None:
            out["close_token"] = self.close_token
        if self.slot_token is not None:
            out["slot_token"] = self.slot_token
        for i, t in enumerate(self.after_close):
            out[f"after_close[{i}]"] = t
        return out

    def resolve(self, tokenizer: Any) -> "ResolvedSpec":
        """Read every marker id from ``tokenizer``.

        Raises
        ------
        SpecTokenError
            If a marker is not a single known token of the tokenizer.
        """
        vocab = tokenizer.get_vocab()
        unk = getattr(tokenizer, "unk_token_id", None)
        ids: dict[str, int] = {}
        missing = []
        for role, tok in self.tokens().items():
            tid = vocab.get(tok)
            if tid is None or (unk is not None and tid == unk and tok != getattr(tokenizer, "unk_token", None)):
                missing.append(f"{role}={tok!r}")
            else:
                ids[role] = int(tid)
        if missing:
            raise SpecTokenError(
                f"LatentSpec {self.name!r}: token(s) {', '.join(missing)} not in the tokenizer's vocabulary. "
                "Load the checkpoint's own tokenizer, or add them with tokenizer.add_special_tokens(...) and "
                "resize the model's embeddings."
            )
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id
        if pad is None:
            raise SpecTokenError(
                f"LatentSpec {self.name!r}: the tokenizer has neither pad_token nor eos_token; set tokenizer.pad_token."
            )
        placeholder = ids.get("slot_token", int(pad))
        return ResolvedSpec(
            spec=self,
            open_id=ids["open_token"],
            close_id=ids.get("close_token"),
            slot_id=ids.get("slot_token"),
            after_close_ids=tuple(ids[f"after_close[{i}]"] for i in range(len(self.after_close))),
            placeholder_id=int(placeholder),
            pad_id=int(pad),
            eos_id=None if tokenizer.eos_token_id is None else int(tokenizer.eos_token_id),
        )


@dataclass(frozen=True)
class ResolvedSpec:
    """A :class:`LatentSpec` with every token id read from one tokenizer."""

    spec: LatentSpec
    open_id: int
    close_id: int | None
    slot_id: int | None
    after_close_ids: tuple[int, ...]
    placeholder_id: int
    pad_id: int
    eos_id: int | None


_PRESETS: dict[str, LatentSpec] = {}


def register_preset(spec: LatentSpec, *, overwrite: bool = False) -> LatentSpec:
    """Make ``spec`` available by name through :func:`get_preset`."""
    if spec.name in _PRESETS and not overwrite:
        raise SpecError(f"a preset named {spec.name!r} exists; pass overwrite=True to replace it.")
    _PRESETS[spec.name] = spec
    return spec


def list_presets() -> list[str]:
    """Names of the registered presets, sorted."""
    return sorted(_PRESETS)


def get_preset(name: str, **overrides: Any) -> LatentSpec:
    """The preset called ``name``, optionally with some fields changed (e.g. ``num_latents=16``)."""
    try:
        spec = _PRESETS[name]
    except KeyError:
        raise SpecError(f"no preset named {name!r}; known presets: {', '.join(list_presets())}.") from None
    return spec.replace(**overrides) if overrides else spec


register_preset(LatentSpec(
    name="monet", base="Qwen2.5-VL", open_mode="emitted", open_token="<abs_vis_token>",
    close_token="</abs_vis_token>", num_latents=10, first_offset=0, stop="fixed",
    slot_policy="sampled", projection="identity", max_segments=4,
    notes="The first latent replaces the emitted open marker's own input; close forced after 10.",
))
register_preset(LatentSpec(
    name="lvr", base="Qwen2.5-VL", open_mode="emitted", open_token="<|lvr_start|>",
    close_token="<|lvr_end|>", num_latents=8, first_offset=1, stop="fixed",
    slot_policy="sampled", projection="identity",
    notes="K is fixed per checkpoint (4, 8 or 16); an optional MLP head can be passed as projection.",
))
register_preset(LatentSpec(
    name="mirage", base="Qwen2.5-VL", open_mode="emitted", open_token="<|latent_start|>",
    close_token="<|latent_end|>", num_latents=8, first_offset=1, stop="end_token", min_latents=1,
    slot_policy="placeholder", slot_token="<|latent_pad|>", projection="identity",
    notes="Stops when the model predicts <|latent_end|>; cap 8 (trained with 4).",
))
register_preset(LatentSpec(
    name="coconut", base="GPT-2 / Llama", open_mode="prompt", open_token="<|start-latent|>",
    close_token="<|end-latent|>", num_latents=6, first_offset=1, stop="fixed",
    slot_policy="placeholder", slot_token="<|latent|>", projection="identity",
    notes="Markers and <|latent|> slots are already in the prompt; K is the number of slots.",
))
register_preset(LatentSpec(
    name="codi", base="GPT-2 / Llama", open_mode="appended", open_token="<bot>", close_token="<eot>",
    num_latents=6, first_offset=1, stop="fixed", slot_policy="none", projection="module",
    notes="<bot> is appended to the prompt, 6 latents f(h) with f an MLP + LayerNorm, then <eot>.",
))
register_preset(LatentSpec(
    name="toy", base="Qwen2.5-VL (tiny, shipped)", open_mode="emitted", open_token="<|latent_start|>",
    close_token="<|latent_end|>", num_latents=4, first_offset=1, stop="fixed",
    slot_policy="placeholder", slot_token="<|latent_pad|>", projection="identity",
    notes="The embedded default's protocol (Mirage-like, fixed K=4, close forced).",
))
register_preset(LatentSpec(
    name="toy-text", base="Qwen2.5-VL (tiny, shipped)", open_mode="emitted", open_token="<|caption|>",
    close_token="<|caption_end|>", num_latents=10, first_offset=1, stop="end_token", min_latents=1,
    slot_policy="none", projection="identity", mediator="text",
    notes="Explicit text imagination: a short caption of the queried object between markers.",
))
