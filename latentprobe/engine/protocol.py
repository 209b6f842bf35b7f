"""The latent-reasoning protocol as a pure state machine, driven by a :class:`~latentprobe.spec.ResolvedSpec`.

At every position the decode loop asks :func:`step` what one sequence feeds next. The answer is a
typed action:

* :class:`FeedToken` ``(token_id, segment)``: an ordinary token (a marker, a forced prompt token,
  generated text);
* :class:`FeedLatent` ``(slot_id)``: the latent ``f(h_{p-1})``, with ``slot_id`` recorded at its slot;
* :class:`FeedTextLatent` ``(token_id)``: explicit text imagination (``mediator="text"``): the
  sampled token's embedding is fed and recorded like a latent;
* :class:`End` ``(reason)``: the sequence is finished.

The state (:class:`ProtocolState`) is small and immutable; only :func:`step` makes a new one. What
the model proposes at the position comes in a :class:`Decision` (the
chosen token when :func:`needs_sample` says one is read, the token budget left, whether the
previous output is near a learned end embedding).
Nothing here touches a model, so every preset's protocol is testable with scripted tokens.

Example
-------
>>> from latentprobe.spec import ResolvedSpec
>>> from latentprobe.presets import get_preset
>>> rs = ResolvedSpec(get_preset("codi"), open_id=10, close_id=11, slot_id=None, after_close_ids=(),
...                   placeholder_id=0, pad_id=0, eos_id=1)
>>> start = initial_state(rs, [5, 6], [0, 0])
>>> start.ids, start.state.mode
([5, 6, 10], <ProtocolMode.LATENT: 'latent'>)
>>> action, state = step(rs, start.state, Decision(budget_left=5))
>>> action
FeedLatent(slot_id=0)
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Sequence, Union

from latentprobe.errors import InputError
from latentprobe.spec import LatentSpec, ResolvedSpec
from latentprobe.trace import Segment

__all__ = [
    "ProtocolMode", "EndReason", "FeedToken", "FeedLatent", "FeedTextLatent", "End", "Action", "Decision",
    "ProtocolState", "ProtocolStart", "initial_state", "resume_at_latent", "resume_at_answer", "needs_sample",
    "step",
]


class ProtocolMode(enum.Enum):
    """Whether a sequence decodes text or sits inside a latent segment."""

    TEXT = "text"
    LATENT = "latent"


class EndReason(enum.Enum):
    """Why a sequence stopped."""

    EOS = "eos"  # the model chose the end-of-sequence token
    BUDGET = "budget"  # max_new_tokens positions after the prompt are used


@dataclass(frozen=True)
class FeedToken:
    """Feed an ordinary token; ``segment`` is its :class:`~latentprobe.trace.Segment` code.

    Parameters
    ----------
    token_id : int
        The token to feed.
    segment : int
        Its :class:`~latentprobe.trace.Segment` code.
    """

    token_id: int
    segment: int


@dataclass(frozen=True)
class FeedLatent:
    """Feed the latent ``f(h_{p-1})``; ``slot_id`` is the id recorded at its slot.

    Parameters
    ----------
    slot_id : int
        The token id recorded at the latent slot.
    """

    slot_id: int


@dataclass(frozen=True)
class FeedTextLatent:
    """Feed the embedding of the sampled ``token_id`` in a latent slot (``mediator="text"``).

    Parameters
    ----------
    token_id : int
        The sampled token whose embedding is fed.
    """

    token_id: int


@dataclass(frozen=True)
class End:
    """The sequence is finished.

    Parameters
    ----------
    reason : EndReason
        Why the sequence stopped.
    """

    reason: EndReason


Action = Union[FeedToken, FeedLatent, FeedTextLatent, End]
_Forced = Union[FeedToken, FeedLatent]


@dataclass(frozen=True)
class Decision:
    """What the model proposes at the current position.

    Parameters
    ----------
    token:
        The chosen token: the logits processor applied, then greedy or sampled with the run's
        settings, exactly as for any text token. Required exactly when :func:`needs_sample` is true;
        the close decision inside latent mode, the id of a ``slot_policy="sampled"`` slot and the
        token fed after a ``"quota"``/``"similarity"`` exit are all this token.
    budget_left:
        Positions still allowed after the prompt (``max_new_tokens`` minus those used).
    near_end:
        ``stop="similarity"``: whether the previous step's output lies within the spec's threshold of
        the learned end embedding.
    """

    token: int | None = None
    budget_left: int = 1
    near_end: bool = False


@dataclass(frozen=True)
class ProtocolState:
    """One sequence's protocol state.

    Parameters
    ----------
    mode:
        Text decoding or inside a latent segment.
    in_segment:
        Latents fed in the current segment.
    total:
        Latents fed in all segments (the next latent's step index).
    segments_done:
        Closed latent segments (prompt-mode specs count their prompt segment).
    pending:
        Forced inputs still to feed, in order (a prompt's slots and tail, tokens after a close).
    can_open:
        Whether an emitted open marker may start a new segment (false when only the answer is decoded).
    """

    mode: ProtocolMode = ProtocolMode.TEXT
    in_segment: int = 0
    total: int = 0
    segments_done: int = 0
    pending: tuple[_Forced, ...] = ()
    can_open: bool = True


@dataclass(frozen=True)
class ProtocolStart:
    """The prefix fed in the prefill and the state the loop starts from.

    Parameters
    ----------
    ids : list[int]
        The prefix's token ids (the prompt, and a forced open marker where the spec forces one).
    segments : list[int]
        One :class:`~latentprobe.trace.Segment` code per id.
    prompt_len : int
        Length of the prompt itself.
    state : ProtocolState
        The state after the prefix.
    """

    ids: list[int]
    segments: list[int]
    prompt_len: int
    state: ProtocolState


def initial_state(rspec: ResolvedSpec, ids: Sequence[int], segments: Sequence[int], *,
                  example_id: str = "?") -> ProtocolStart:
    """Where a fresh generation starts, by the spec's open mode.

    ``"emitted"``: the whole prompt, text mode. ``"appended"``: the open marker is appended and the
    loop starts in latent mode. ``"prompt"``: the prefix stops at the prompt's open marker; its latent
    slots and the rest of the prompt (the close marker and what follows) become forced inputs.

    Parameters
    ----------
    rspec : ResolvedSpec
        The family's spec with its token ids resolved.
    ids : Sequence[int]
        The prompt's token ids.
    segments : Sequence[int]
        One segment code per prompt id.
    example_id : str
        Named in error messages.

    Returns
    -------
    ProtocolStart
    """
    spec = rspec.spec
    ids, segs = list(ids), list(segments)
    if spec.open_mode == "appended":
        return ProtocolStart(ids + [rspec.open_id], segs + [Segment.OPEN], len(ids) + 1,
                             ProtocolState(mode=ProtocolMode.LATENT))
    if spec.open_mode == "emitted":
        return ProtocolStart(ids, segs, len(ids), ProtocolState())
    if spec.open_mode == "none":  # no protocol: the first generated tokens are the recorded span
        return ProtocolStart(ids, segs, len(ids), ProtocolState(mode=ProtocolMode.LATENT))
    try:
        o = ids.index(rspec.open_id)
    except ValueError:
        raise InputError(
            f"example {example_id!r}: spec {spec.name!r} expects the open marker {spec.open_token!r} "
            "and latent slots in the prompt, but the prompt has no open marker."
        ) from None
    j = o + 1
    while j < len(ids) and ids[j] == rspec.slot_id:
        j += 1
    if j == o + 1:
        raise InputError(
            f"example {example_id!r}: no {spec.slot_token!r} slots follow the open marker in the prompt."
        )
    pending: list[_Forced] = [FeedLatent(int(rspec.slot_id)) for _ in range(j - o - 1)]
    closed = False
    for t in ids[j:]:
        is_close = t == rspec.close_id and not closed
        closed = closed or is_close
        pending.append(FeedToken(t, Segment.CLOSE if is_close else Segment.TEXT))
    segs[o] = Segment.OPEN
    return ProtocolStart(ids[: o + 1], segs[: o + 1], len(ids),
                         ProtocolState(segments_done=1, pending=tuple(pending)))


def resume_at_latent(rspec: ResolvedSpec, ids: Sequence[int], segments: Sequence[int], prompt_len: int,
                     upto: int) -> ProtocolState:
    """The state "about to feed the latent at position ``upto``" of a recorded sequence (propagate).

    ``ids``/``segments`` are the recorded sequence; positions ``[0, upto)`` are the resumed prefix.

    Parameters
    ----------
    rspec : ResolvedSpec
        The family's spec with its token ids resolved.
    ids : Sequence[int]
        The recorded sequence's ids.
    segments : Sequence[int]
        Its segment codes.
    prompt_len : int
        Length of its prompt.
    upto : int
        Position of the latent about to be fed.

    Returns
    -------
    ProtocolState
    """
    segs = list(segments)
    in_segment = 0
    p = upto - 1
    while p >= 0 and segs[p] == Segment.LATENT:
        in_segment += 1
        p -= 1
    total = sum(1 for q in range(upto) if segs[q] == Segment.LATENT)
    if rspec.spec.open_mode == "prompt":
        # the rest of the prompt region is still forced: its latent slots, then its tail
        pending = tuple(FeedLatent(int(rspec.slot_id)) if segs[q] == Segment.LATENT else FeedToken(int(ids[q]), segs[q])
                        for q in range(upto, prompt_len))
        return ProtocolState(ProtocolMode.TEXT, in_segment, total, 1, pending)
    # closed segments before the current one: latent runs that ended, and empty segments (an open marker
    # followed by no latent); the current run (or open marker) reaches upto - 1
    done = sum(1 for q in range(upto - 1)
               if segs[q] in (Segment.LATENT, Segment.OPEN) and segs[q + 1] != Segment.LATENT)
    return ProtocolState(ProtocolMode.LATENT, in_segment, total, done)


def resume_at_answer(total: int, *, can_open: bool) -> ProtocolState:
    """The state at the answer start after ``total`` latents (redecode: ``can_open=False``).

    Parameters
    ----------
    total : int
        Latents fed so far.
    can_open : bool
        Whether a new latent segment may open.

    Returns
    -------
    ProtocolState
    """
    return ProtocolState(total=total, can_open=can_open)


def _segments_left(spec: LatentSpec, state: ProtocolState) -> bool:
    return spec.max_segments is None or state.segments_done < spec.max_segments


def _exits(spec: LatentSpec, state: ProtocolState, near_end: bool) -> bool:
    """``"quota"``/``"similarity"``: whether latent mode is left at this position (the chosen token is fed)."""
    if spec.stop == "quota":
        return state.in_segment >= spec.num_latents
    if spec.stop == "similarity":
        return state.in_segment >= spec.num_latents or (near_end and state.in_segment >= spec.min_latents)
    return False


def _budget_ends(spec: LatentSpec, state: ProtocolState, budget_left: int) -> bool:
    """Whether the budget ends the sequence at a position inside latent mode (:attr:`LatentSpec.latent_budget`)."""
    if budget_left > 0 or spec.latent_budget == "complete":
        return False
    return spec.latent_budget == "stop" or state.in_segment == 0


def needs_sample(rspec: ResolvedSpec, state: ProtocolState, budget_left: int, near_end: bool = False) -> bool:
    """Whether :func:`step` will read :attr:`Decision.token` (a token is chosen, and a processor called, only then).

    Parameters
    ----------
    rspec : ResolvedSpec
        The family's spec with its token ids resolved.
    state : ProtocolState
        The sequence's state.
    budget_left : int
        Positions still allowed after the prompt.
    near_end : bool
        As :attr:`Decision.near_end`.

    Returns
    -------
    bool
    """
    spec = rspec.spec
    if state.pending:
        return False
    if state.mode is ProtocolMode.LATENT:
        if _budget_ends(spec, state, budget_left):
            return False
        k = state.in_segment
        if spec.mediator == "text":
            return k < spec.num_latents or spec.open_mode == "none"
        if spec.first_offset == 0 and k == 0:  # resumed before the open marker's own latent slot
            return False
        if spec.stop in ("quota", "similarity"):
            return _exits(spec, state, near_end) or spec.slot_policy == "sampled"
        if k >= spec.num_latents:  # the close is forced
            return False
        return spec.slot_policy == "sampled" or (spec.stop == "end_token" and k >= spec.min_latents)
    return budget_left > 0


def _fed_latent(state: ProtocolState, **changes: object) -> ProtocolState:
    return dataclasses.replace(state, in_segment=state.in_segment + 1, total=state.total + 1, **changes)


def _close(rspec: ResolvedSpec, state: ProtocolState) -> tuple[Action, ProtocolState]:
    after = tuple(FeedToken(t, Segment.CLOSE) for t in rspec.after_close_ids)
    new = dataclasses.replace(state, mode=ProtocolMode.TEXT, in_segment=0, segments_done=state.segments_done + 1,
                              pending=state.pending + after)
    return FeedToken(int(rspec.close_id), Segment.CLOSE), new  # type: ignore[arg-type]


def _slot_id(rspec: ResolvedSpec, d: Decision, state: ProtocolState) -> int:
    policy = rspec.spec.slot_policy
    if policy == "sampled":
        return _token(d, state)
    if policy == "placeholder":
        return int(rspec.slot_id)  # type: ignore[arg-type]
    return rspec.pad_id


def _token(d: Decision, state: ProtocolState) -> int:
    if d.token is None:
        raise InputError(f"protocol state {state} needs a chosen token, but the decision carries none "
                         "(call needs_sample() first and choose a token when it is true).")
    return int(d.token)


def _text(rspec: ResolvedSpec, state: ProtocolState, tok: int) -> tuple[Action, ProtocolState]:
    """A chosen token in text mode: end, open a segment, or generated text."""
    spec = rspec.spec
    if rspec.is_eos(tok):
        return End(EndReason.EOS), state
    if spec.open_mode == "emitted" and tok == rspec.open_id and state.can_open and _segments_left(spec, state):
        opened = dataclasses.replace(state, mode=ProtocolMode.LATENT, in_segment=0)
        if spec.first_offset == 0:
            return FeedLatent(rspec.open_id), _fed_latent(opened)
        return FeedToken(rspec.open_id, Segment.OPEN), opened
    return FeedToken(tok, Segment.GEN), state


def step(rspec: ResolvedSpec, state: ProtocolState, d: Decision) -> tuple[Action, ProtocolState]:
    """The next input of one sequence and the state after it.

    Parameters
    ----------
    rspec : ResolvedSpec
        The family's spec with its token ids resolved.
    state : ProtocolState
        The sequence's state.
    d : Decision
        What the model proposes at this position.

    Returns
    -------
    tuple[Action, ProtocolState]
        What to feed next, and the new state.
    """
    spec = rspec.spec
    if state.pending:
        action, rest = state.pending[0], state.pending[1:]
        if isinstance(action, FeedLatent):
            return action, _fed_latent(state, pending=rest)
        return action, dataclasses.replace(state, pending=rest)
    if state.mode is ProtocolMode.LATENT:
        k = state.in_segment
        if _budget_ends(spec, state, d.budget_left):  # the authors' stopping check ends the sequence here
            return End(EndReason.BUDGET), state
        if spec.mediator == "text":
            if spec.open_mode == "none" and k >= spec.num_latents:  # no close marker: the rest is ordinary text
                left = dataclasses.replace(state, mode=ProtocolMode.TEXT, in_segment=0, segments_done=1)
                return _text(rspec, left, _token(d, state))
            if k < spec.num_latents:
                tok = _token(d, state)
                if spec.latent_eos == "end" and rspec.is_eos(tok):  # plain generate: an eos ends it anywhere
                    return End(EndReason.EOS), state
                if not (tok == rspec.close_id and k >= spec.min_latents):
                    return FeedTextLatent(tok), _fed_latent(state)
            return _close(rspec, state)
        if spec.first_offset == 0 and k == 0:  # Monet: latent 0 sits on the emitted open marker's own slot
            return FeedLatent(rspec.open_id), _fed_latent(state)
        if spec.stop in ("quota", "similarity"):
            if _exits(spec, state, d.near_end):
                # no close marker: the token chosen from the last latent's output is fed as text (it may
                # end the sequence or open the next segment); the budget does not cut it off, but past the
                # budget it opens nothing (HF appends it, then its stopping check ends the sequence), so a
                # model that keeps choosing the open marker cannot run past max_new_tokens forever
                left = dataclasses.replace(state, mode=ProtocolMode.TEXT, in_segment=0,
                                           segments_done=state.segments_done + 1)
                tok = _token(d, state)
                if d.budget_left <= 0 and tok == rspec.open_id:
                    return FeedToken(tok, Segment.GEN), left
                return _text(rspec, left, tok)
        elif k >= spec.num_latents:
            return _close(rspec, state)
        elif spec.stop == "end_token" and k >= spec.min_latents and _token(d, state) == rspec.close_id:
            return _close(rspec, state)
        if spec.latent_eos == "end" and d.token is not None and rspec.is_eos(int(d.token)):
            return End(EndReason.EOS), state  # Monet under vLLM: the stop check reads the slot's sampled id
        return FeedLatent(_slot_id(rspec, d, state)), _fed_latent(state)
    # free text; the budget counts every position after the prompt (HF max_new_tokens semantics)
    if d.budget_left <= 0:
        return End(EndReason.BUDGET), state
    return _text(rspec, state, _token(d, state))
