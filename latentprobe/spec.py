"""Latent-reasoning protocols: how a model family opens, fills and closes latent mode.

Every supported model computes, at a latent position ``p``::

    z_p = f(h_{p-1})     # h: last-layer output after the final norm (what lm_head reads)

and feeds ``z_p`` in place of the token embedding at ``p``. A :class:`LatentSpec` records
everything else that differs between families: how latent mode opens, where the first latent
goes, when it stops, what id is stored at latent slots and what ``f`` is. Markers are named by
string (read from the tokenizer) or by id (CODI's have no strings); see :meth:`LatentSpec.resolve`.
Each preset's ``notes`` name the repository, commit and file its loop follows
(``docs/published-protocols.md`` holds the line-level citations).

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
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Mapping, Union

from latentprobe.errors import SpecError, SpecTokenError
from latentprobe.conventions import CHECKPOINT_SETTINGS, DecodingSettings, PromptConventions
from latentprobe.resolved_spec import ResolvedSpec
from latentprobe.validate import integer, positive_int

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "LatentSpec",
    "ResolvedSpec",
    "DecodingSettings",
    "PromptConventions",
    "CHECKPOINT_SETTINGS",
]

OpenMode = Literal["emitted", "prompt", "appended", "none"]
StopRule = Literal["fixed", "end_token", "quota", "similarity"]
LatentBudget = Literal["complete", "stop", "complete_started"]
LatentEos = Literal["ignore", "end"]
SlotPolicy = Literal["sampled", "placeholder", "none"]
ProjectionKind = Literal["identity", "module"]
Mediator = Literal["latent", "text"]
HeadRule = Literal["none", "latent", "open_and_latent"]
Distance = Literal["mse", "mae", "cosine"]
Marker = Union[str, int]

_STOPS = ("fixed", "end_token", "quota", "similarity")
def _bad(spec: str, field_: str, value: Any, fix: str) -> SpecError:
    return SpecError(f"LatentSpec {spec!r}: {field_}={value!r}; {fix}")


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
        ``"none"``: no latent protocol (preset ``plain``): with ``mediator="text"`` the first
        ``num_latents`` generated tokens are recorded as the span (a text chain of thought read like
        latents), then generation goes on as ordinary text; no markers (``open_token`` and
        ``close_token`` may be ``None``), and the answer is the whole generated text.
    open_token, close_token:
        Marker tokens: a token string, or an id (``int``). A negative id counts from the end of the
        model's vocabulary (``-1`` is its last row): CODI's ``<bot>``/``<eot>`` have no strings and are
        the rows ``V+1``, ``V+2`` of a model resized to ``V+3``, i.e. ``-2`` and ``-1``.
        ``close_token`` is fed after the last latent (forced, or chosen with ``stop="end_token"``);
        the ``"quota"`` and ``"similarity"`` rules feed no close marker and may leave it ``None``.
    num_latents:
        K for ``stop="fixed"`` and ``"quota"``; the cap for ``"end_token"`` and ``"similarity"``. >= 1.
    first_offset:
        0: the first latent replaces the open marker's own slot (Monet). 1: the open marker is an
        ordinary token and the first latent follows it.
    stop:
        When a latent segment ends. At every position inside the segment the model's next token is
        chosen exactly like a text token (sampling settings and logits processor included) whenever the
        rule reads it.

        * ``"fixed"``: exactly K latents, then the close marker is forced (Coconut, CODI).
        * ``"end_token"``: before each latent, once ``min_latents`` are fed, a chosen ``close_token``
          closes the segment; at K the close is forced (Monet, Mirage).
        * ``"quota"``: exactly K latents, then the token chosen from the last latent's output is fed as
          ordinary text; no close marker (LVR "steps" decoding). The model may open again.
        * ``"similarity"``: after each latent (once ``min_latents`` are fed) the previous step's
          output, i.e. the latent just fed (at entry: the output that chose the open marker), is compared
          with a learned end embedding; below ``end_threshold`` (or at K) the chosen token is fed as text
          (LVR "latent" decoding; the runner takes the embedding as ``end_embedding=``).
    min_latents:
        Latents fed before a chosen close (or a similarity exit) is taken; 0 allows an empty segment.
    slot_policy:
        The id recorded at latent slots. ``"sampled"``: the token chosen at the previous position (what
        Monet and LVR leave in their sequences); ``"placeholder"``: ``slot_token``; ``"none"``: no
        token of its own (CODI); the pad id is recorded. Before any replay every latent slot id is
        normalised to :attr:`ResolvedSpec.placeholder_id`, because Qwen2.5-VL derives its rotary
        positions from ``input_ids``.
    slot_token:
        Placeholder token (``"<|latent_pad|>"``, ``"<|latent|>"``), required for
        ``slot_policy="placeholder"`` and for ``open_mode="prompt"`` (it marks the slots).
    after_close:
        Tokens forced after the close marker (rarely needed).
    projection:
        ``"identity"``: ``f(h) = h``. ``"module"``: ``f`` is a module given to the runner
        (e.g. :class:`latentprobe.engine.heads.CodiProjection`).
    max_segments:
        How many ``open -> latents -> close`` segments one generation may hold (``"emitted"`` only);
        ``None``: unlimited. Past the limit an emitted open marker is ordinary text.
    mediator:
        ``"latent"``: vectors are fed at the slots. ``"text"``: explicit text imagination
        (CapImagine-style): between the markers the model writes ordinary tokens, chosen like any
        text token, until it emits ``close_token`` (or reaches ``num_latents`` tokens). The span is
        recorded exactly like latents (``z`` = the fed token embeddings), so every analysis runs on
        both and can compare them.
    head:
        A module applied to the final-norm output of chosen positions, whose output ``lm_head`` reads
        and the next latent takes (LVR's ``lvr_head``; the runner takes it as ``head=``, e.g.
        :class:`latentprobe.engine.lvr.LvrHead`). ``"latent"``: at every position holding a latent
        (LVR inference: latents 2..K and the token after the last one read it). ``"open_and_latent"``:
        also at the open marker's position (LVR training). ``"none"``: no head.
    end_distance, end_threshold:
        ``stop="similarity"``: the distance (``"mse"``, ``"mae"``: means over the hidden size;
        ``"cosine"``: 1 - cosine) and the threshold below which the segment ends.
    suppress:
        Tokens never chosen (strings or ids, negative ids from the end of the vocabulary): CODI
        decodes over ``logits[:, :vocab-1]``, i.e. ``suppress=(-1,)`` excludes ``<eot>``.
    latent_budget:
        What ``max_new_tokens`` does inside a latent segment (every position counts, latents included).
        ``"complete"``: a segment that has opened always completes (its close included), then the budget
        ends the sequence. ``"stop"``: the budget ends the sequence at any position, inside a segment or
        right after an open marker (Hugging Face ``generate``'s stopping check: Mirage; vLLM's
        ``max_tokens``: Monet). ``"complete_started"``: an open marker fed as the last budgeted position
        ends the sequence, but once a latent is fed the segment completes (LVR keeps a sequence in latent
        mode unfinished).
    latent_eos:
        A chosen end-of-sequence id at a latent step: ``"ignore"`` (it is only the slot's id, or replaced
        by the placeholder: LVR, Mirage) or ``"end"`` (the sequence ends: Monet under vLLM, whose stop check
        reads every sampled id).
    published_generation:
        The family's published decoding settings (see :class:`DecodingSettings`).
    prompt:
        The family's prompt conventions (see :class:`PromptConventions`).
    base, notes:
        Informative: the base architecture(s), and the sources the preset follows.
    checkpoint:
        What the family's published checkpoints hold. ``"model"``: a whole Hugging Face model
        (:func:`latentprobe.load`). ``"adapter"``: adapter (LoRA) and projection weights only, loaded
        onto the base model they were trained on (CODI: :func:`latentprobe.engine.load_codi`; a study
        file then needs ``[model] base``).
    """

    name: str
    open_mode: OpenMode
    open_token: Marker
    close_token: Marker | None
    num_latents: int
    first_offset: int = 1
    stop: StopRule = "fixed"
    min_latents: int = 1
    slot_policy: SlotPolicy = "none"
    slot_token: Marker | None = None
    after_close: tuple[Marker, ...] = ()
    projection: ProjectionKind = "identity"
    max_segments: int | None = 1
    mediator: Mediator = "latent"
    head: HeadRule = "none"
    end_distance: Distance = "mse"
    end_threshold: float = 0.02
    suppress: tuple[Marker, ...] = ()
    latent_budget: LatentBudget = "complete"
    latent_eos: LatentEos = "ignore"
    published_generation: DecodingSettings | None = None
    prompt: PromptConventions | None = None
    base: str = ""
    notes: str = ""
    checkpoint: Literal["model", "adapter"] = "model"

    def __new__(cls, *args: Any, **kwargs: Any) -> "LatentSpec":
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(kwargs) - set(names))
        if unknown:
            raise SpecError(f"LatentSpec: unknown field(s) {unknown}; the fields are {names} "
                            "(check the spelling, or start from a preset: latentprobe.get_preset(name)).")
        if len(args) > len(names):
            raise SpecError(f"LatentSpec takes at most {len(names)} fields, {len(args)} given positionally.")
        given = set(names[:len(args)]) | set(kwargs)
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in given
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing and (args or kwargs):  # copy and pickle call __new__ with no arguments
            raise SpecError(f"LatentSpec: missing required field(s) {missing}; give them, or start from a preset "
                            "(latentprobe.get_preset(name)) and change it with dataclasses.replace.")
        return super().__new__(cls)

    def __post_init__(self) -> None:
        n = self.name
        if self.open_mode not in ("emitted", "prompt", "appended", "none"):
            raise _bad(n, "open_mode", self.open_mode, "use 'emitted', 'prompt', 'appended' or 'none'.")
        plain = self.open_mode == "none"
        if plain and (self.mediator != "text" or self.open_token is not None or self.close_token is not None):
            raise _bad(n, "open_mode", "none", "no latent protocol records the first num_latents generated tokens: "
                       "use mediator='text' and no markers (open_token=None, close_token=None).")
        where = f"LatentSpec {n!r}"
        positive_int(self.num_latents, "num_latents", where=where, error=SpecError,
                     hint="K, the number of latents, or their cap with stop='end_token' or 'similarity'")
        if self.first_offset not in (0, 1) or isinstance(self.first_offset, bool):
            raise _bad(n, "first_offset", self.first_offset, "use 0 (latent on the open marker's slot) or 1.")
        if self.first_offset == 0 and self.open_mode != "emitted":
            raise _bad(n, "first_offset", 0, "latent on the open marker's slot needs open_mode='emitted'.")
        if self.stop not in _STOPS:
            raise _bad(n, "stop", self.stop, f"use one of {', '.join(map(repr, _STOPS))}.")
        needs_close = self.stop in ("fixed", "end_token") or self.mediator == "text"
        if needs_close and self.close_token is None and not plain:
            raise _bad(n, "close_token", None, f"stop={self.stop!r} (mediator={self.mediator!r}) feeds a close "
                       "marker; name it, or use stop='quota' / 'similarity', which feed none.")
        for fname in ("open_token", "close_token", "slot_token"):
            _check_marker(n, fname, getattr(self, fname), optional=fname != "open_token" or plain)
        for fname in ("after_close", "suppress"):
            v = getattr(self, fname)
            if not isinstance(v, tuple):
                raise _bad(n, fname, v, "give a tuple of token strings or ids.")
            for i, t in enumerate(v):
                _check_marker(n, f"{fname}[{i}]", t, optional=False)
        integer(self.min_latents, "min_latents", minimum=0, maximum=self.num_latents, where=where, error=SpecError,
                hint=f"at most num_latents={self.num_latents}")
        if self.slot_policy not in ("sampled", "placeholder", "none"):
            raise _bad(n, "slot_policy", self.slot_policy, "use 'sampled', 'placeholder' or 'none'.")
        if self.slot_policy == "placeholder" and self.slot_token is None:
            raise _bad(n, "slot_token", None, "slot_policy='placeholder' needs slot_token.")
        if self.open_mode == "prompt" and self.slot_token is None:
            raise _bad(n, "slot_token", None, "open_mode='prompt' needs slot_token, the token marking latent "
                       "slots in the prompt.")
        if self.projection not in ("identity", "module"):
            raise _bad(n, "projection", self.projection, "use 'identity' or 'module'.")
        if self.mediator not in ("latent", "text"):
            raise _bad(n, "mediator", self.mediator, "use 'latent' or 'text'.")
        if self.mediator == "text" and self.stop not in ("fixed", "end_token"):
            raise _bad(n, "stop", self.stop, "mediator='text' ends its span with close_token: use 'end_token'.")
        positive_int(self.max_segments, "max_segments", allow_none=True, where=where, hint="None: unlimited",
                     error=SpecError)
        if self.head not in ("none", "latent", "open_and_latent"):
            raise _bad(n, "head", self.head, "use 'none', 'latent' or 'open_and_latent'.")
        if self.head != "none" and self.mediator == "text":
            raise _bad(n, "head", self.head, "a head applies to latents; mediator='text' feeds token embeddings.")
        if self.end_distance not in ("mse", "mae", "cosine"):
            raise _bad(n, "end_distance", self.end_distance, "use 'mse', 'mae' or 'cosine'.")
        if not isinstance(self.end_threshold, (int, float)) or not math.isfinite(self.end_threshold) \
                or self.end_threshold <= 0:
            raise _bad(n, "end_threshold", self.end_threshold, "use a finite positive number (LVR: 0.02).")
        if self.latent_budget not in ("complete", "stop", "complete_started"):
            raise _bad(n, "latent_budget", self.latent_budget, "use 'complete', 'stop' or 'complete_started'.")
        if self.latent_eos not in ("ignore", "end"):
            raise _bad(n, "latent_eos", self.latent_eos, "use 'ignore' or 'end'.")
        if self.published_generation is not None and not isinstance(self.published_generation, DecodingSettings):
            raise _bad(n, "published_generation", self.published_generation, "give a DecodingSettings or None.")
        if self.prompt is not None and not isinstance(self.prompt, PromptConventions):
            raise _bad(n, "prompt", self.prompt, "give a PromptConventions or None.")
        if self.checkpoint not in ("model", "adapter"):
            raise _bad(n, "checkpoint", self.checkpoint, "use 'model' (a whole checkpoint) or 'adapter' (weights "
                       "loaded onto a base model).")

    def replace(self, **changes: Any) -> "LatentSpec":
        """A copy with some fields changed (validated again).

        Returns
        -------
        LatentSpec
        """
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise SpecError(f"LatentSpec {self.name!r}: unknown field(s) {unknown}; fields are "
                            f"{[f.name for f in dataclasses.fields(self)]}.")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (tuples as lists); :meth:`from_dict` reads it back.

        Returns
        -------
        dict[str, Any]
        """
        d = dataclasses.asdict(self)
        d["after_close"] = list(self.after_close)
        d["suppress"] = list(self.suppress)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LatentSpec":
        """The spec :meth:`to_dict` wrote.

        Parameters
        ----------
        d : dict[str, Any]
            What :meth:`to_dict` returned (or its JSON).

        Returns
        -------
        LatentSpec

        Raises
        ------
        SpecError
            ``d`` is not a mapping (a JSON string: ``from_dict(json.loads(text))``), or holds unknown fields.
        """
        if not isinstance(d, Mapping):
            raise SpecError(f"LatentSpec.from_dict({d!r:.60}): give the dict LatentSpec.to_dict() wrote (a "
                            f"{type(d).__name__} is not one; for its JSON text: "
                            "LatentSpec.from_dict(json.loads(text))).")
        d = dict(d)
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise SpecError(f"LatentSpec.from_dict: unknown field(s) {unknown}; the dict was not written by "
                            "LatentSpec.to_dict of this version.")
        d["after_close"] = tuple(d.get("after_close", ()))
        d["suppress"] = tuple(d.get("suppress", ()))
        if isinstance(d.get("published_generation"), dict):
            d["published_generation"] = DecodingSettings(**d["published_generation"])
        if isinstance(d.get("prompt"), dict):
            p = dict(d["prompt"])
            if p.get("pre_resize") is not None:
                p["pre_resize"] = tuple(p["pre_resize"])
            d["prompt"] = PromptConventions(**p)
        return cls(**d)

    def tokens(self) -> dict[str, Marker]:
        """Every marker the spec needs, by role.

        Returns
        -------
        dict[str, str | int]
            Role (``"open_token"``, ``"after_close[0]"``, ...) -> marker.
        """
        out: dict[str, Marker] = {} if self.open_token is None else {"open_token": self.open_token}
        if self.close_token is not None:
            out["close_token"] = self.close_token
        if self.slot_token is not None:
            out["slot_token"] = self.slot_token
        for i, t in enumerate(self.after_close):
            out[f"after_close[{i}]"] = t
        for i, t in enumerate(self.suppress):
            out[f"suppress[{i}]"] = t
        return out

    def resolve(self, tokenizer: PreTrainedTokenizerBase, *, vocab_size: int | None = None) -> "ResolvedSpec":
        """Read every marker id from ``tokenizer`` (markers named by string) or ``vocab_size`` (by id).

        ``vocab_size`` is the model's vocabulary (rows of its LM head); it is needed for negative ids
        and checks the others. The runner passes it.

        Parameters
        ----------
        tokenizer : PreTrainedTokenizerBase
            The checkpoint's tokenizer.
        vocab_size : int | None
            The model's vocabulary size (default ``len(tokenizer)``).

        Returns
        -------
        ResolvedSpec

        Raises
        ------
        SpecTokenError
            If a marker is not a single known token of the tokenizer, or an id is out of range.
        """
        vocab = tokenizer.get_vocab()
        unk = getattr(tokenizer, "unk_token_id", None)
        ids: dict[str, int] = {}
        missing = []
        for role, tok in self.tokens().items():
            if isinstance(tok, int):
                tid = tok + vocab_size if (tok < 0 and vocab_size is not None) else tok
                if tok < 0 and vocab_size is None:
                    raise SpecTokenError(
                        f"LatentSpec {self.name!r}: {role}={tok} counts from the end of the model's vocabulary; "
                        "pass vocab_size= (the LM head's rows) to resolve(), as the runner does.")
                if tid < 0 or (vocab_size is not None and tid >= vocab_size):
                    raise SpecTokenError(
                        f"LatentSpec {self.name!r}: {role}={tok} is outside the model's vocabulary of "
                        f"{vocab_size} ids; resize the embeddings or fix the id.")
                ids[role] = int(tid)
                continue
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
            open_id=ids.get("open_token", -1),  # -1: no open marker (open_mode="none"); no token has it
            close_id=ids.get("close_token"),
            slot_id=ids.get("slot_token"),
            after_close_ids=tuple(ids[f"after_close[{i}]"] for i in range(len(self.after_close))),
            placeholder_id=int(placeholder),
            pad_id=int(pad),
            eos_id=None if tokenizer.eos_token_id is None else int(tokenizer.eos_token_id),
            suppress_ids=tuple(ids[f"suppress[{i}]"] for i in range(len(self.suppress))),
        )



def _check_marker(spec: str, field_: str, v: Any, *, optional: bool) -> None:
    if v is None and optional:
        return
    if isinstance(v, bool) or not isinstance(v, (str, int)) or (isinstance(v, str) and not v):
        raise _bad(spec, field_, v, "name a token by its string, or by its id (an int; negative ids count from "
                   "the end of the model's vocabulary).")
