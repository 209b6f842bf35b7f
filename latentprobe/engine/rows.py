"""One sequence of a batch while the loop runs: its prefix, its protocol state and what it records."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from latentprobe.engine.patching import Patch
from latentprobe.engine.protocol import End, ProtocolState
from latentprobe.trace import ExampleTrace

__all__ = ["Row", "Records"]


@dataclass
class Records:
    """What the loop records for one sequence."""

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
    source: ExampleTrace | None = None
    end: End | None = None
    rec: Records = field(default_factory=Records)

    def budget_used(self) -> int:
        return len(self.ids) - self.prompt_len + self.budget_offset
