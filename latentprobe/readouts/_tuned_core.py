"""The numerical core of the tuned lens (:mod:`latentprobe.readouts.tuned`): residual capture at text positions,
the logit-lens readout, the KL to the final distribution, and the translators' training loop."""

from __future__ import annotations

import math
from numbers import Integral
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from latentprobe.errors import InputError
from latentprobe.seeding import torch_generator
from latentprobe.trace import LatentTrace

if TYPE_CHECKING:  # pragma: no cover
    from latentprobe.engine import LatentRunner
    from latentprobe.engine.parts import ModelParts


# ------------------------------------------------------------------------------------------- readout
def _readout(parts: ModelParts, h: Float[Tensor, "... d"]) -> Float[Tensor, "... vocab"]:
    """The logit lens: ``lm_head(final_norm(h))`` in the model's own dtype and device."""
    head = parts.lm_head
    norm_params = list(parts.norm.parameters())
    dtype = norm_params[0].dtype if norm_params else head.weight.dtype
    return head(parts.norm(h.to(head.weight.device, dtype)))


def _text_residuals(runner: LatentRunner, ids: list[int]) -> Float[Tensor, "seq layer d"]:
    """Every residual layer at every position of one text, through forward hooks on the decoder layers."""
    layers = runner.parts.layers
    caps: list[Tensor] = []

    def first(_m: Any, args: tuple, kwargs: dict) -> None:
        caps.append((args[0] if args else kwargs["hidden_states"])[0].detach().float().cpu())

    def out(_m: Any, _a: Any, o: Any) -> None:
        caps.append((o[0] if isinstance(o, tuple) else o)[0].detach().float().cpu())

    hooks = [layers[0].register_forward_pre_hook(first, with_kwargs=True)]
    hooks += [layer.register_forward_hook(out) for layer in layers]
    try:
        with torch.no_grad():
            runner.model(input_ids=torch.tensor([ids], device=runner.parts.input_device), use_cache=False)
    finally:
        for hook in hooks:
            hook.remove()
    return torch.stack(caps, dim=1)


def _residuals(runner: LatentRunner, inputs: Any) -> tuple[list[Tensor], str]:
    """``([n_i, n_layers + 1, d] per example], source)`` from texts, token-id lists or a LatentTrace's latents."""
    n_res = runner.n_layers + 1
    if isinstance(inputs, LatentTrace):
        caught = inputs.config.get("capture_layers", "all")
        if caught != "all":
            raise InputError(f"the trace recorded layers {caught}; a tuned lens needs all {n_res} residual layers: "
                             "run it with capture_layers='all'.")
        out = [e.hidden.float() for e in inputs.examples if e.hidden.shape[0]]
        if any(h.shape[1] != n_res or h.shape[2] != runner.hidden_size for h in out):
            raise InputError(f"the trace's residuals do not have {n_res} layers of width {runner.hidden_size}: "
                             "was it recorded with this runner's model?")
        return out, "latents"
    if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
        raise InputError(f"inputs={type(inputs).__name__}: give a list of texts, a list of token-id lists, or a "
                         "LatentTrace recorded with capture_layers='all'.")
    out = []
    for i, x in enumerate(inputs):
        if isinstance(x, str):
            ids = list(runner.tokenizer(x)["input_ids"])
        elif isinstance(x, Sequence) and all(isinstance(t, Integral) and not isinstance(t, bool) for t in x):
            ids = [int(t) for t in x]
        else:
            raise InputError(f"inputs[{i}] is {type(x).__name__}: each input is a text or a list of token ids.")
        if not ids:
            raise InputError(f"inputs[{i}] has no tokens; drop it.")
        out.append(_text_residuals(runner, ids))
    return out, "text"


def _split(n: int, held_out: float, seed: int) -> tuple[list[int], list[int]]:
    if not 0.0 < held_out < 1.0:
        raise InputError(f"held_out={held_out!r}: give the fraction of examples held out, between 0 and 1.")
    if n < 2:
        raise InputError(f"{n} example(s) with positions: a held-out split needs at least 2 (texts or latent examples).")
    n_held = min(n - 1, max(1, round(n * held_out)))
    order = torch.randperm(n, generator=torch_generator(seed, "tuned-lens-split")).tolist()
    return sorted(order[n_held:]), sorted(order[:n_held])


def _final(parts: ModelParts, h_last: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The final distribution from the last residual layer: ``p``, ``log p`` (``[n, vocab]``, float32), ``sum p log p``."""
    logp = _readout(parts, h_last).float().log_softmax(-1)
    p = logp.exp()
    return p, logp, (p * logp).sum(-1)


def _kl_rows(parts: ModelParts, h_l: Float[Tensor, "n c d"], p: Tensor, plogp: Tensor) -> Float[Tensor, "n c"]:
    """``KL(p || q)`` for each of ``c`` readouts per position, ``q = softmax(readout(h_l))``.

    Written as ``sum p log p - p . z + logsumexp(z)``, so neither ``log q`` nor a repeated ``p`` is materialised.
    """
    z = _readout(parts, h_l).float()
    return plogp[:, None] - torch.einsum("nv,ncv->nc", p, z) + torch.logsumexp(z, dim=-1)


def _schedule(steps: int, warmup: int):
    """The learning-rate multiplier of ``get_linear_schedule_with_warmup(opt, warmup, steps - warmup)``.

    That is how the reference calls transformers' schedule (``ingredients.py``, ``Optimizer.create_scheduler``).
    """
    total = steps - warmup

    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def _train(runner: LatentRunner, h: Tensor, *, steps: int, batch: int, optimizer: str, lr_scale: float,
           momentum: float, weight_decay: float, warmup_steps: int | None,
           seed: int) -> tuple[Tensor, Tensor, np.ndarray]:
    """Fit every translator from zero: ``(weight [L, d, d], bias [L, d], loss per step)``.

    The reference's loss, clipping and optimisers (see :mod:`latentprobe.readouts.tuned`); ``h`` is
    ``[n, n_layers + 1, d]`` training residuals on the CPU, moved to the LM head's device a batch at a time.
    """
    parts, L, n = runner.parts, runner.n_layers, h.shape[0]
    dev = parts.lm_head.weight.device
    d = runner.hidden_size
    w = torch.zeros(L, d, d, device=dev, requires_grad=True)
    b = torch.zeros(L, d, device=dev, requires_grad=True)
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD([w, b], lr=lr_scale * (1 - momentum), momentum=momentum,
                                                     nesterov=True, weight_decay=weight_decay)
        warmup = 0 if warmup_steps is None else warmup_steps
    else:
        opt = torch.optim.Adam([w, b], lr=lr_scale * 1e-3, betas=(momentum, 0.999), amsgrad=True,
                               weight_decay=weight_decay)
        warmup = min(1000, steps // 5) if warmup_steps is None else warmup_steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(steps, warmup))
    gen = torch_generator(seed, "tuned-lens-batches")
    frozen = [p for p in list(parts.norm.parameters()) + list(parts.lm_head.parameters()) if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    order: list[int] = []
    losses = np.zeros(steps)
    layers_per_chunk = max(1, 2048 // min(batch, n))
    try:
        for step in range(steps):
            if len(order) < min(batch, n):
                order += torch.randperm(n, generator=gen).tolist()
            idx, order = order[:min(batch, n)], order[min(batch, n):]
            hb = h[idx].to(dev)
            with torch.no_grad():
                p, _, plogp = _final(parts, hb[:, L])
            total = 0.0
            for s in range(0, L, layers_per_chunk):
                e = min(s + layers_per_chunk, L)
                x = hb[:, s:e]                                                      # [b, c, d]
                t = x + torch.einsum("bci,coi->bco", x, w[s:e]) + b[s:e]
                chunk_loss = _kl_rows(parts, t, p, plogp).sum() / x.shape[0]       # sum over layers of mean KL
                chunk_loss.backward()
                total += chunk_loss.item()
            norm = torch.nn.utils.clip_grad_norm_([w, b], 1.0)
            if not torch.isfinite(norm):  # clipping by a non-finite norm would zero or poison the update silently
                raise InputError(f"the tuned-lens gradient norm became {norm.item()} at step {step}: check the "
                                 "residuals for inf/nan, or lower lr_scale.")
            opt.step()
            opt.zero_grad(set_to_none=False)
            sched.step()
            losses[step] = total
            if not math.isfinite(total):
                raise InputError(f"the tuned-lens loss became {total} at step {step}: lower lr_scale.")
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return w.detach().float().cpu().contiguous(), b.detach().float().cpu().contiguous(), losses
