"""One sequence of a batch while the loop runs: its prefix, its protocol state and what it records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from jaxtyping import Float
from torch import Tensor

from latentprobe.engine.patching import Patch
from latentprobe.engine.protocol import End, ProtocolState
from latentprobe.trace import ExampleTrace

__all__ = ["Row", "Records", "Gathered"]


@dataclass
class Records:
    """What the loop records for one sequence.

    Parameters
    ----------
    lat_pos : list[int]
        Latent positions.
    lat_z : list[Tensor]
        The vectors fed there.
    lat_h : list[Tensor]
        Their sources ``h_{p-1}`` (final-norm outputs).
    lat_hidden : list[Tensor]
        ``[L+1, d]`` residuals at each latent.
    text_lp : dict[int, float]
        Position -> log-probability of the free token there.
    dist_at : dict[int, Tensor]
        Answer-start position -> the full log-probability vector.
    captured_positions : Tensor | None
        Prompt positions captured at every layer, if asked.
    captured_hidden : Tensor | None
        Their ``[m, L+1, d]`` residuals.
    """

    lat_pos: list[int] = field(default_factory=list)  # latent positions
    lat_z: list[Tensor] = field(default_factory=list)  # fed vectors
    lat_h: list[Tensor] = field(default_factory=list)  # sources h_{p-1}
    lat_hidden: list[Tensor] = field(default_factory=list)  # [L+1, d] residuals at each latent
    text_lp: dict[int, float] = field(default_factory=dict)  # position -> logprob of the free token there
    dist_at: dict[int, Tensor] = field(default_factory=dict)  # answer-start position -> full logprobs
    captured_positions: Tensor | None = None
    captured_hidden: Tensor | None = None


@dataclass
class Row:
    """A sequence being built: ``ids``/``segs`` grow by one position per step.

    ``z_at`` holds the vectors fed at the prefix's latent slots; ``budget_offset`` counts positions
    after the prompt that a redecode with ``drop_latents`` removed (they still count against the
    budget); ``answer_reset`` makes the next free token's distribution the answer's first one;
    ``source`` is the recorded example a resumed row comes from (what interventions see).

    Parameters
    ----------
    index : int
        The example's index in the run.
    example_id : str
        Its id.
    ids : list[int]
        Token ids so far.
    segs : list[int]
        One :class:`~latentprobe.trace.Segment` code per id.
    prompt_len : int
        Length of the prompt.
    state : ProtocolState
        The protocol state.
    z_at : dict[int, Tensor]
        Vectors fed at the prefix's latent slots, by position.
    image_embeds : Tensor | None
        Image features, for a vision-language model.
    grid_thw : Tensor | None
        Their ``[n, 3]`` image grids.
    budget_offset : int
        Positions a ``drop_latents`` redecode removed (still counted against the budget).
    answer_reset : bool
        Make the next free token's distribution the answer's first one.
    patches : dict[int, Patch]
        Latent step -> the patch applied there.
    position_patches : dict[int, dict[int, Tensor]]
        Residual layer ``>= 1`` -> ``{prefix position: vector written there}`` (activation patching).
    prefix_cut : int | None
        The shared prefill stops at this position at the latest (a run laid out as another one is).
    source : ExampleTrace | None
        The recorded example a resumed row comes from.
    end : End | None
        How the sequence ended, once it has.
    rec : Records
        What the loop recorded.
    """

    index: int
    example_id: str
    ids: list[int]
    segs: list[int]
    prompt_len: int
    state: ProtocolState
    z_at: dict[int, Tensor] = field(default_factory=dict)
    image_embeds: Tensor | None = None
    grid_thw: Tensor | None = None
    budget_offset: int = 0
    answer_reset: bool = False
    patches: dict[int, Patch] = field(default_factory=dict)  # latent step -> patch
    position_patches: dict[int, dict[int, Tensor]] = field(default_factory=dict)  # layer -> {position: vector}
    prefix_cut: int | None = None
    source: ExampleTrace | None = None
    end: End | None = None
    rec: Records = field(default_factory=Records)

    def budget_used(self) -> int:
        """Positions after the prompt used so far.

        Returns
        -------
        int
            Positions after the prompt used so far (removed latents included).
        """
        return len(self.ids) - self.prompt_len + self.budget_offset


class Gathered(NamedTuple):
    """One gathered prefill position.

    Parameters
    ----------
    residual, h, logits : Tensor
        The recorded residual layers, the final-norm output, and the logits where they were asked for
        (``gather_extra`` positions; ``None`` elsewhere).
    """

    residual: Float[Tensor, "layers d"]
    h: Float[Tensor, "d"]
    logits: Float[Tensor, "vocab"] | None


@dataclass
class _Prefill:
    cache: Any
    h_last: Tensor
    logits: Tensor
    col_segs: Tensor
    col_mask: Tensor
    n_real: Tensor
    deltas: Tensor | None
    gathered: list[dict[int, Gathered]]
    h_prev: Tensor | None = None  # each row's output one position before its last (stop="similarity")
