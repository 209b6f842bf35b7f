"""How a token is chosen: generation settings, the sampling distribution, keyed draws, and LVR's end distance.

Every chosen token (free text, and the decisions inside latent mode that a spec reads) goes through
:func:`choose`; a draw is keyed by ``(seed, example id, position)`` through
:func:`latentprobe.seeding.torch_generator`, so a run resumed at any position, in any mode or batch,
draws what the original run drew there.

Example
-------
>>> import torch
>>> cfg = GenerationConfig(do_sample=True, temperature=1.0, top_p=0.5)
>>> sampling_probs(torch.tensor([2.0, 1.0, 0.0]), cfg)
tensor([1., 0., 0.])
>>> flat = cfg.replace(top_p=None)
>>> draws = [choose(torch.zeros(4), flat, example_id="e1", position=7) for _ in range(3)]
>>> len(set(draws))  # the same key draws the same token
1
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from jaxtyping import Float
from torch import Tensor

from latentprobe.errors import InputError
from latentprobe.seeding import torch_generator

__all__ = ["GenerationConfig", "LogitsProcessor", "sampling_probs", "choose", "end_distance"]

LogitsProcessor = Callable[[list[int], Float[Tensor, "vocab"], int], Float[Tensor, "vocab"]]


@dataclass(frozen=True)
class GenerationConfig:
    """How tokens are chosen, and the budget of positions after the prompt (HF ``max_new_tokens``).

    Every chosen token goes through the same steps, in Hugging Face ``generate``'s order: the
    repetition penalty (on the raw logits), the spec's suppressed tokens, the user's logits processor
    (on log-probabilities), then greedy argmax or temperature, top-k, top-p and a draw keyed by
    ``(seed, example id, position)``. That includes the decisions taken inside latent mode.
    ``eos_token_ids``: every id that ends a sequence (``None``: the tokenizer's eos); ``load`` reads
    the checkpoint's list from its ``generation_config.json`` (:mod:`latentprobe.engine.decoding`).
    """

    max_new_tokens: int = 32
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    seed: int = 0
    top_p: float | None = None
    repetition_penalty: float = 1.0
    eos_token_ids: tuple[int, ...] | None = None

    def replace(self, **changes: Any) -> "GenerationConfig":
        """A copy with some settings changed."""
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        """Raise :class:`~latentprobe.errors.InputError` naming a setting that cannot be used."""
        def bad(name: str, value: Any, fix: str) -> InputError:
            return InputError(f"{name}={value!r}: {fix}")

        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise bad("max_new_tokens", self.max_new_tokens, "use an integer >= 1.")
        if not isinstance(self.do_sample, bool):
            raise bad("do_sample", self.do_sample, "use True or False.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise bad("seed", self.seed, "use an integer.")
        if not _real(self.temperature) or not math.isfinite(self.temperature) or self.temperature <= 0:
            if self.do_sample or not _real(self.temperature) or math.isnan(self.temperature):
                raise bad("temperature", self.temperature, "use a finite number > 0 (1.0 leaves the distribution as is).")
        if self.top_k is not None and (isinstance(self.top_k, bool) or not isinstance(self.top_k, int)
                                       or self.top_k < 1):
            raise bad("top_k", self.top_k, "use an integer >= 1, or None to keep every token.")
        if self.top_p is not None and (not _real(self.top_p) or not 0 < self.top_p <= 1):
            raise bad("top_p", self.top_p, "use a number in (0, 1], or None to keep every token.")
        if not _real(self.repetition_penalty) or not math.isfinite(self.repetition_penalty) \
                or self.repetition_penalty <= 0:
            raise bad("repetition_penalty", self.repetition_penalty, "use a finite number > 0 (1.0: no penalty).")
        eos = self.eos_token_ids
        if eos is not None and (not isinstance(eos, tuple) or not eos or any(
                isinstance(t, bool) or not isinstance(t, int) or t < 0 for t in eos)):
            raise bad("eos_token_ids", eos, "use a non-empty tuple of token ids, or None for the tokenizer's eos.")


def _real(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def sampling_probs(scores: Float[Tensor, "vocab"], cfg: GenerationConfig) -> Float[Tensor, "vocab"]:
    """The distribution a sampled token is drawn from: ``softmax(scores / T)`` after top-k and top-p.

    Top-p keeps the smallest set of most probable tokens whose probability reaches ``top_p`` (always
    at least one), as Hugging Face's ``TopPLogitsWarper`` and vLLM do.
    """
    s = scores.detach().float().cpu() / cfg.temperature
    if cfg.top_k is not None and cfg.top_k < s.numel():
        kth = torch.topk(s, cfg.top_k).values[-1]
        s = s.masked_fill(s < kth, float("-inf"))
    if cfg.top_p is not None and cfg.top_p < 1:
        sorted_s, order = torch.sort(s, descending=False)
        cum = torch.softmax(sorted_s, -1).cumsum(-1)
        drop = cum <= 1 - cfg.top_p
        drop[-1] = False
        s = s.masked_fill(torch.zeros_like(drop).scatter(0, order, drop), float("-inf"))
    return torch.softmax(s, -1)


def choose(scores: Float[Tensor, "vocab"], cfg: GenerationConfig, *, example_id: str, position: int) -> int:
    """Greedy argmax, or a draw from :func:`sampling_probs` keyed by ``(cfg.seed, example_id, position)``.

    The key makes a draw independent of everything drawn before it: a run resumed at any position,
    in any mode or batch, draws what the original run drew there.
    """
    if not cfg.do_sample:
        return int(scores.argmax())
    gen = torch_generator(cfg.seed, example_id, position)
    return int(torch.multinomial(sampling_probs(scores, cfg), 1, generator=gen))


def _penalise(logits: Float[Tensor, "vocab"], ids: list[int], penalty: float) -> Float[Tensor, "vocab"]:
    """Hugging Face's / vLLM's repetition penalty over every id seen so far (prompt included)."""
    seen = torch.tensor(sorted(set(ids)), dtype=torch.long, device=logits.device)
    vals = logits[seen]
    out = logits.clone()
    out[seen] = torch.where(vals > 0, vals / penalty, vals * penalty)
    return out


def end_distance(h: Float[Tensor, "... d"], end: Float[Tensor, "d"], kind: str) -> Float[Tensor, "..."]:
    """LVR's distance between outputs and the learned end embedding: ``"mse"``/``"mae"`` (means over the
    hidden size) or ``"cosine"`` (1 - cosine similarity)."""
    h, end = h.float(), end.float().to(h.device)
    if kind == "mse":
        return ((h - end) ** 2).mean(-1)
    if kind == "mae":
        return (h - end).abs().mean(-1)
    return 1 - torch.nn.functional.cosine_similarity(h, end.expand_as(h), dim=-1)
