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
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

import torch
from jaxtyping import Float
from torch import Tensor

from latentprobe.errors import InputError
from latentprobe.seeding import torch_generator
from latentprobe.validate import integer, positive_int

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

    from latentprobe.resolved_spec import ResolvedSpec


class _RunnerLike(Protocol):
    """What :meth:`ForceOpen.for_runner` reads of a :class:`~latentprobe.engine.LatentRunner`."""

    rspec: ResolvedSpec
    tokenizer: PreTrainedTokenizerBase

__all__ = ["GenerationConfig", "LogitsProcessor", "ForceOpen", "sampling_probs", "choose", "end_distance"]

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

    Parameters
    ----------
    max_new_tokens : int
        Positions allowed after the prompt, latents and markers included.
    do_sample : bool
        Sample instead of taking the argmax.
    temperature : float
        Sampling temperature.
    top_k : int | None
        Keep only the ``top_k`` most likely tokens when sampling (``None``: all).
    seed : int
        Key of the seeded draws.
    top_p : float | None
        Nucleus sampling mass (``None``: off).
    repetition_penalty : float
        Hugging Face's repetition penalty (1.0: off).
    eos_token_ids : tuple[int, ...] | None
        Every id that ends a sequence (``None``: the tokenizer's eos).
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
        """A copy with some settings changed.

        Returns
        -------
        GenerationConfig
        """
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        """Raise :class:`~latentprobe.errors.InputError` naming a setting that cannot be used."""
        def bad(name: str, value: Any, fix: str) -> InputError:
            return InputError(f"{name}={value!r}: {fix}")

        positive_int(self.max_new_tokens, "max_new_tokens", hint="positions after the prompt")
        if not isinstance(self.do_sample, bool):
            raise bad("do_sample", self.do_sample, "use True or False.")
        integer(self.seed, "seed")
        if not _real(self.temperature) or not math.isfinite(self.temperature) or self.temperature <= 0:
            if self.do_sample or not _real(self.temperature) or math.isnan(self.temperature):
                raise bad("temperature", self.temperature, "use a finite number > 0 (1.0 leaves the distribution as is).")
        positive_int(self.top_k, "top_k", allow_none=True, hint="None keeps every token")
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

    Parameters
    ----------
    scores : Float[Tensor, "vocab"]
        Log-probabilities over the vocabulary.
    cfg : GenerationConfig
        The run's settings.

    Returns
    -------
    Tensor
        ``[vocab]`` probabilities.
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

    Parameters
    ----------
    scores : Float[Tensor, "vocab"]
        Log-probabilities over the vocabulary (processed).
    cfg : GenerationConfig
        The run's settings.
    example_id : str
        Key of the draw.
    position : int
        Key of the draw.

    Returns
    -------
    int
        The chosen token id.
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
    hidden size) or ``"cosine"`` (1 - cosine similarity).

    Parameters
    ----------
    h : Float[Tensor, "... d"]
        Outputs ``[..., d]``.
    end : Float[Tensor, "d"]
        The learned end embedding ``[d]``.
    kind : str
        ``"mse"``, ``"mae"`` or ``"cosine"``.

    Returns
    -------
    Tensor
        ``[...]`` distances.
    """
    h, end = h.float(), end.float().to(h.device)
    if kind == "mse":
        return ((h - end) ** 2).mean(-1)
    if kind == "mae":
        return (h - end).abs().mean(-1)
    return 1 - torch.nn.functional.cosine_similarity(h, end.expand_as(h), dim=-1)


@dataclass(frozen=True)
class ForceOpen:
    """A logits processor that opens latent mode: the open marker is chosen at one generated position,
    never at another, and (optionally) the end-of-sequence token is never chosen.

    For models that would not open latent mode by themselves (untrained or random-weight models,
    tiny replicas in tests, or a study that asks for ``open = "force"``), so that every example
    holds a latent segment. It is stateless (it reads only the ids so far and the example's index),
    so a run resumed at any position, in any mode or batch, is processed exactly as the original.

    Parameters
    ----------
    open_id : int
        The open marker's id (``runner.rspec.open_id``).
    eos_id : int or None
        A token never chosen, so that generation does not end before the budget (usually the
        tokenizer's eos); ``None`` leaves it alone.
    at : int or mapping of int to int
        The generated position (0: the first token after the prompt) at which the marker is forced,
        or one position per example index. Positions other than 0 need ``prompt_lens``.
    prompt_lens : mapping of int to int, optional
        Prompt length per example index (the number of ids before the first generated one). Without
        it, the marker is forced wherever it is not yet in the sequence (prompt included), i.e. at the
        first generated position.
    skip_ids : tuple of int
        Examples whose ids (prompt included) hold any of these tokens never open (they still never
        end early).

    Raises
    ------
    InputError
        Ids that are not non-negative integers, or ``at`` beyond 0 without ``prompt_lens``.

    Notes
    -----
    Forcing the marker measures what the latents carry *when* the model reasons in latent mode; it
    says nothing about when a trained model would choose to. An example whose forced position passes
    (or whose index is missing from ``at`` or ``prompt_lens``) is never forced.

    Examples
    --------
    >>> import torch
    >>> proc = ForceOpen(open_id=3, eos_id=0)
    >>> proc([7, 8], torch.zeros(5), 0).tolist()          # the marker is the only choice
    [-inf, -inf, -inf, 0.0, -inf]
    >>> proc([7, 8, 3, 4], torch.zeros(5), 0).tolist()    # opened: never again, never eos
    [-inf, 0.0, 0.0, -inf, 0.0]
    >>> later = ForceOpen(open_id=3, at={0: 1}, prompt_lens={0: 2})
    >>> later([7, 8], torch.zeros(5), 0)[3].item(), later([7, 8, 1], torch.zeros(5), 0).argmax().item()
    (-inf, 3)
    """

    open_id: int
    eos_id: int | None = None
    at: int | Mapping[int, int] = 0
    prompt_lens: Mapping[int, int] | None = None
    skip_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        def ok(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and v >= 0

        where = "ForceOpen"
        if not ok(self.open_id):
            raise InputError(f"{where}: open_id={self.open_id!r}; give the open marker's id (runner.rspec.open_id).")
        if self.eos_id is not None and not ok(self.eos_id):
            raise InputError(f"{where}: eos_id={self.eos_id!r}; give a token id, or None to leave eos alone.")
        steps = list(self.at.values()) if isinstance(self.at, Mapping) else [self.at]
        if not all(ok(k) for k in steps):
            raise InputError(f"{where}: at={self.at!r}; give a position >= 0 (0: the first generated token) or a "
                             "mapping of example index to position.")
        if self.prompt_lens is None and (isinstance(self.at, Mapping) or self.at != 0):
            raise InputError(f"{where}: at={self.at!r} needs prompt_lens (example index -> prompt length) to count "
                             "generated positions; pass prompt_lens=, or at=0.")
        object.__setattr__(self, "skip_ids", tuple(self.skip_ids))
        if not all(ok(t) for t in self.skip_ids):
            raise InputError(f"{where}: skip_ids={self.skip_ids!r}; give token ids.")

    @classmethod
    def for_runner(cls, runner: _RunnerLike, *, at: int | Mapping[int, int] = 0, prompt_lens: Mapping[int, int] | None = None,
                   keep_eos: bool = False, skip_tokens: tuple[str, ...] = ()) -> "ForceOpen":
        """The processor for ``runner``'s open marker and its tokenizer's eos (kept with ``keep_eos=True``);
        ``skip_tokens`` are token strings whose presence in a prompt leaves that example unforced.

        Parameters
        ----------
        runner : LatentRunner
            A :class:`~latentprobe.engine.LatentRunner` (its spec's open marker and tokenizer).
        at, prompt_lens
            As in the class.
        keep_eos : bool
            Leave the eos token allowed (otherwise it is never chosen).
        skip_tokens : tuple[str, ...]
            Token strings whose presence in a prompt leaves that example unforced.

        Returns
        -------
        ForceOpen

        Raises
        ------
        InputError
            The runner's spec does not open latent mode by emitting a marker (``open_mode`` is
            ``"prompt"`` or ``"appended"``: its latents need no forcing), or a skip token is unknown.
        """
        rspec = runner.rspec
        if rspec.spec.open_mode != "emitted":
            raise InputError(f"ForceOpen: the {rspec.spec.name!r} spec opens latent mode itself (open_mode="
                             f"{rspec.spec.open_mode!r}); forcing applies to open_mode='emitted' only: drop it.")
        vocab = runner.tokenizer.get_vocab()
        missing = [t for t in skip_tokens if t not in vocab]
        if missing:
            raise InputError(f"ForceOpen: skip_tokens {missing} are not tokens of the runner's tokenizer; give "
                             "single tokens of its vocabulary.")
        return cls(open_id=rspec.open_id, eos_id=None if keep_eos else rspec.eos_id, at=at, prompt_lens=prompt_lens,
                   skip_ids=tuple(vocab[t] for t in skip_tokens))

    def __call__(self, ids: list[int], logits: Float[Tensor, "vocab"], index: int) -> Float[Tensor, "vocab"]:
        """The processed scores at the next position of example ``index`` (``ids``: every id so far)."""
        logits = logits.clone()
        if self.eos_id is not None:
            logits[self.eos_id] = float("-inf")
        n0 = None if self.prompt_lens is None else self.prompt_lens.get(index)
        generated = ids if self.prompt_lens is None else ids[n0:] if n0 is not None else [self.open_id]
        at = self.at.get(index) if isinstance(self.at, Mapping) else self.at
        due = at is not None and (self.prompt_lens is None or (n0 is not None and len(ids) - n0 == at))
        if due and self.open_id not in generated and not any(t in ids for t in self.skip_ids):
            logits[:] = float("-inf")
            logits[self.open_id] = 0.0
        else:
            logits[self.open_id] = float("-inf")
        return logits
