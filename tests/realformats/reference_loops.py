"""Independent reference loops: each published latent loop written by hand over plain Hugging Face forwards.

Nothing here calls latentprobe's engine. A loop feeds one position per step through the model's base
(``model.model(inputs_embeds=..., cache=..., position_ids=...)``), reads ``h`` (the final-norm output,
what ``lm_head`` reads) and chooses tokens the way Hugging Face ``generate`` orders it: repetition
penalty on the logits, log-softmax, the user's logits processor, then greedy argmax or temperature,
top-k, top-p and ``torch.multinomial`` with ``latentprobe.seeding.torch_generator(seed, example_id,
position)``. The protocols follow ``docs/published-protocols.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from transformers import DynamicCache

from latentprobe.seeding import torch_generator


def cache_kwarg(module: torch.nn.Module) -> str:
    """The keyword the installed transformers takes the KV cache by (``cache`` from 5.24, ``past_key_values`` before)."""
    import inspect

    return "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"


@dataclass(frozen=True)
class Decoding:
    """How the reference chooses a token (the runner's settings, written down independently)."""

    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float = 1.0
    seed: int = 0
    hf: bool = False  # choose through transformers' own processor classes (the authors' generate())


def hf_decoding(model, seed: int = 0, **authors_kwargs) -> tuple[Decoding, tuple[int, ...]]:
    """What ``model.generate(**authors_kwargs)`` decodes with: transformers merges the checkpoint's
    ``generation_config.json`` (loaded by ``from_pretrained``), its defaults and the kwargs. Returns the
    decoding and the eos ids that stop it."""
    g, _ = model._prepare_generation_config(None, **authors_kwargs)
    eos = g.eos_token_id
    eos = (eos,) if isinstance(eos, int) else tuple(eos or ())
    return Decoding(bool(g.do_sample), float(g.temperature), g.top_k, g.top_p, float(g.repetition_penalty), seed,
                    hf=True), eos


@dataclass
class RefResult:
    """A finished reference sequence: every fed id, the latents fed (in order) and where they sit."""

    ids: list[int]
    prompt_len: int
    latents: list[torch.Tensor] = field(default_factory=list)
    latent_positions: list[int] = field(default_factory=list)
    answer: list[int] = field(default_factory=list)


Processor = Callable[[list[int], torch.Tensor, int], torch.Tensor]


def reference_probs(scores: torch.Tensor, dec: Decoding) -> torch.Tensor:
    """``softmax(scores / T)`` after top-k and top-p (the smallest most-probable set reaching ``top_p``)."""
    s = scores.double() / dec.temperature
    if dec.top_k is not None and dec.top_k < s.numel():
        keep = torch.zeros_like(s, dtype=torch.bool)
        keep[torch.topk(s, dec.top_k).indices] = True
        s = s.masked_fill(~keep, float("-inf"))
    if dec.top_p is not None and dec.top_p < 1:
        p = torch.softmax(s, -1)
        order = torch.argsort(p, descending=True)
        before = torch.cumsum(p[order], -1) - p[order]  # mass of the more probable tokens
        drop = torch.zeros_like(s, dtype=torch.bool)
        drop[order] = before >= dec.top_p
        s = s.masked_fill(drop, float("-inf"))
    return torch.softmax(s, -1).float()


def reference_choose(logits: torch.Tensor, ids: list[int], dec: Decoding, processor: Processor | None,
                     example_id: str, index: int = 0, suppress: tuple[int, ...] = ()) -> int:
    """One token as ``generate`` chooses it; a draw is keyed by ``(seed, example_id, len(ids))``."""
    if dec.hf:
        return _hf_choose(logits, ids, dec, processor, example_id, index, suppress)
    x = logits.float().clone()
    if dec.repetition_penalty != 1.0:
        seen = torch.tensor(sorted(set(ids)))
        v = x[seen]
        x[seen] = torch.where(v > 0, v / dec.repetition_penalty, v * dec.repetition_penalty)
    for t in suppress:
        x[t] = float("-inf")
    scores = torch.log_softmax(x, -1)
    if processor is not None:
        scores = processor(list(ids), scores.clone(), index)
    if not dec.do_sample:
        return int(scores.argmax())
    gen = torch_generator(dec.seed, example_id, len(ids))
    return int(torch.multinomial(reference_probs(scores, dec), 1, generator=gen))


def _hf_choose(logits: torch.Tensor, ids: list[int], dec: Decoding, processor: Processor | None, example_id: str,
               index: int, suppress: tuple[int, ...]) -> int:
    """transformers' classes in generate()'s order: the repetition penalty on the raw logits, then (sampling)
    temperature, top-k, top-p; the user's processor before the warpers (they are shift-invariant, so its
    log-softmax input changes nothing); the draw from ``softmax`` keyed like the runner's."""
    from transformers import (RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper,
                              TopPLogitsWarper)

    seq = torch.tensor([ids])
    x = logits.float()[None].clone()
    if dec.repetition_penalty != 1.0:
        x = RepetitionPenaltyLogitsProcessor(dec.repetition_penalty)(seq, x)
    for t in suppress:
        x[0, t] = float("-inf")
    x = torch.log_softmax(x, -1)
    if processor is not None:
        x = processor(list(ids), x[0].clone(), index)[None]
    if not dec.do_sample:
        return int(x[0].argmax())
    x = TemperatureLogitsWarper(dec.temperature)(seq, x)
    if dec.top_k is not None and dec.top_k != 0:
        x = TopKLogitsWarper(dec.top_k)(seq, x)
    if dec.top_p is not None and dec.top_p < 1.0:
        x = TopPLogitsWarper(dec.top_p)(seq, x)
    gen = torch_generator(dec.seed, example_id, len(ids))
    return int(torch.multinomial(torch.softmax(x[0], -1), 1, generator=gen))


# ---------------------------------------------------------------------- Qwen2.5-VL families
@dataclass(frozen=True)
class VlProtocol:
    """A Qwen2.5-VL family's published loop, by hand.

    first_on_open: Monet (latent 0 replaces the sampled open marker's own input); else the open marker
        is fed as a token and latent 0 is h at its position.
    close: ``"sampled_or_cap"`` (Monet, Mirage: a sampled close ends the segment, else it is forced after
        ``k`` latents), ``"quota"`` (LVR: after ``k`` latents the token sampled from the last latent is fed).
    slot: ``"sampled"`` (the sampled token's id sits at the slot) or a fixed id (Mirage's ``<|latent_pad|>``).
    budget: where the authors' loop checks ``max_new_tokens`` inside latent mode: ``"complete"`` (never),
        ``"stop"`` (after every appended id: HF's stopping check in Mirage's ``_sample``, vLLM's ``max_tokens``
        for Monet), ``"complete_started"`` (LVR: ``unfinished = lvr_mode_switch | ...``, so only an open
        marker that is the last budgeted id stops).
    eos_in_latent: whether an eos id sampled at a latent step ends generation (Monet under vLLM).
    """

    open_id: int
    close_id: int | None
    k: int
    first_on_open: bool
    close: str
    slot: str | int
    min_latents: int
    max_segments: int | None
    budget: str = "complete"
    eos_in_latent: bool = False


def vl_prompt(model, ids: list[int], image_run: list[int], pixel_values, grid):
    """Prefill the prompt: HF merges the image features; 3-D positions come from the model's rope index."""
    ids_t = torch.tensor([ids])
    tt = torch.zeros_like(ids_t)
    tt[0, image_run] = 1
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        out = model.model(input_ids=ids_t, pixel_values=pixel_values, image_grid_thw=grid, mm_token_type_ids=tt,
                          attention_mask=torch.ones_like(ids_t), use_cache=True, **{cache_kwarg(model.model): cache})
    return out.last_hidden_state[0, -1], cache, tt


def run_vl_reference(model, ids: list[int], image_run: list[int], pixel_values, grid, proto: VlProtocol,
                     dec: Decoding, processor: Processor | None, example_id: str, max_new_tokens: int,
                     eos_id: int | tuple[int, ...]) -> RefResult:
    """The family's loop on one prompt (batch 1, fp32). ``image_run``: the prompt's image-token positions.
    ``eos_id``: the id, or every id, that ends generation."""
    eos = (eos_id,) if isinstance(eos_id, int) else tuple(eos_id)
    h, cache, tt = vl_prompt(model, ids, image_run, pixel_values, grid)
    res = RefResult(ids=list(ids), prompt_len=len(ids))
    embed, lm_head = model.get_input_embeddings(), model.lm_head
    in_latent, k, segments, after = False, 0, 0, None

    def feed(vec: torch.Tensor, token: int) -> torch.Tensor:
        res.ids.append(token)
        full = torch.tensor([res.ids])
        types = torch.cat([tt, torch.zeros(1, full.shape[1] - tt.shape[1], dtype=tt.dtype)], 1)
        with torch.no_grad():  # the step's 3-D position: the rope index of the whole sequence, last column
            pos, _ = model.model.get_rope_index(full, mm_token_type_ids=types, image_grid_thw=grid,
                                                attention_mask=torch.ones_like(full))
            out = model.model(inputs_embeds=vec[None, None], position_ids=pos[:, :, -1:],
                              use_cache=True, **{cache_kwarg(model.model): cache})
        return out.last_hidden_state[0, -1]

    def token_vec(t: int) -> torch.Tensor:
        with torch.no_grad():
            return embed(torch.tensor([t]))[0]

    def latent(h_prev: torch.Tensor, slot_id: int) -> torch.Tensor:
        res.latent_positions.append(len(res.ids))
        res.latents.append(h_prev.clone())
        return feed(h_prev, slot_id)

    def logits(x):
        with torch.no_grad():
            return lm_head(x)

    while True:
        if in_latent:
            used = len(res.ids) - res.prompt_len
            if used >= max_new_tokens and (proto.budget == "stop" or (proto.budget == "complete_started" and k == 0)):
                return res
            if proto.close == "quota":
                if k >= proto.k:  # the token sampled from the last latent is fed as text
                    t = reference_choose(logits(h), res.ids, dec, processor, example_id)
                    in_latent, k, segments = False, 0, segments + 1
                    after = t
                    continue
                t = reference_choose(logits(h), res.ids, dec, processor, example_id)
                h = latent(h, t if proto.slot == "sampled" else proto.slot)
                k += 1
                continue
            if k >= proto.k:  # the cap: the close is forced, nothing is sampled
                h = feed(token_vec(proto.close_id), proto.close_id)
                in_latent, k, segments = False, 0, segments + 1
                continue
            t = reference_choose(logits(h), res.ids, dec, processor, example_id)
            if t == proto.close_id and k >= proto.min_latents:
                h = feed(token_vec(t), t)
                in_latent, k, segments = False, 0, segments + 1
                continue
            if proto.eos_in_latent and t in eos:  # vLLM's stop check reads the sampled id of a latent step
                return res
            h = latent(h, t if proto.slot == "sampled" else proto.slot)
            k += 1
            continue
        if after is not None:
            t, after = after, None
        else:
            if len(res.ids) - res.prompt_len >= max_new_tokens:
                return res
            t = reference_choose(logits(h), res.ids, dec, processor, example_id)
        if t in eos:
            return res
        budget_left = max_new_tokens - (len(res.ids) - res.prompt_len)
        # past the budget the token fed after LVR's quota opens nothing (HF appends it, then stops)
        if t == proto.open_id and (proto.max_segments is None or segments < proto.max_segments) and budget_left > 0:
            in_latent = True
            if proto.first_on_open:  # Monet: latent 0 on the open marker's own slot
                h = latent(h, t)
                k = 1
            else:
                h = feed(token_vec(t), t)
                k = 0
            res.answer = []
            continue
        res.answer.append(t)
        h = feed(token_vec(t), t)


# ---------------------------------------------------------------------- text LMs
def run_text_reference(model, ids: list[int], prefix_len: int, n_latents: int, forced_after: list[int],
                       dec: Decoding, example_id: str, max_new_tokens: int, eos_id: int,
                       project: Callable[[torch.Tensor], torch.Tensor] | None = None, slot_id: int | None = None,
                       suppress: tuple[int, ...] = (), prompt_len: int | None = None) -> RefResult:
    """Coconut / CODI by hand: prefill ``ids[:prefix_len]`` (ending with the open marker), feed
    ``n_latents`` latents ``f(h)`` (slot id ``slot_id``), then the forced ``forced_after`` tokens (Coconut's
    close marker and prompt tail; CODI's ``<eot>``), then decode. ``prompt_len``: where the budget starts."""
    base = model.base_model  # GPT-2's transformer, Llama's model: the decoder ending in the final norm
    cache = DynamicCache(config=model.config)
    prefix = torch.tensor([ids[:prefix_len]])
    with torch.no_grad():
        out = base(input_ids=prefix, use_cache=True, **{cache_kwarg(base): cache}, position_ids=torch.arange(prefix_len)[None])
    h = out.last_hidden_state[0, -1]
    res = RefResult(ids=list(ids[:prefix_len]), prompt_len=prompt_len if prompt_len is not None else prefix_len)
    embed = model.get_input_embeddings()

    def feed(vec: torch.Tensor, token: int) -> torch.Tensor:
        p = len(res.ids)
        res.ids.append(token)
        with torch.no_grad():
            o = base(inputs_embeds=vec[None, None], use_cache=True, **{cache_kwarg(base): cache}, position_ids=torch.tensor([[p]]))
        return o.last_hidden_state[0, -1]

    for _ in range(n_latents):
        with torch.no_grad():
            z = project(h) if project is not None else h
        res.latent_positions.append(len(res.ids))
        res.latents.append(z.clone())
        h = feed(z, slot_id if slot_id is not None else 0)
    for t in forced_after:
        with torch.no_grad():
            h = feed(embed(torch.tensor([t]))[0], t)
    while len(res.ids) - res.prompt_len < max_new_tokens:
        with torch.no_grad():
            lg = model.lm_head(h)
        t = reference_choose(lg, res.ids, dec, None, example_id, suppress=suppress)
        if t == eos_id:
            break
        res.answer.append(t)
        with torch.no_grad():
            h = feed(embed(torch.tensor([t]))[0], t)
    return res
