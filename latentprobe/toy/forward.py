"""Training-time forward passes of the toy models and the losses of one batch.

:func:`forward_sequence` runs a whole (teacher-forced) sequence; :func:`rollout` computes the latents
incrementally with a KV cache, as the runner does at inference.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from latentprobe.engine.forward import cache_kwarg
from latentprobe.engine.masks import MaskRule, segment_attention_mask
from latentprobe.toy.settings import TrainArgs
from latentprobe.toy.encoding import IGNORE, IMAGE_SIDE, Batch
from latentprobe.toy.model import mask_rule
from latentprobe.errors import InputError


__all__ = ["image_features", "forward_sequence", "rollout", "alignment_targets"]


def image_features(model: torch.nn.Module, pixel_values: Tensor, image_grid_thw: Tensor) -> Float[Tensor, "n d"]:
    """Merged vision features of all images, concatenated (one row per image token).

    Parameters
    ----------
    model : torch.nn.Module
        A toy model.
    pixel_values : Tensor
        The processor's pixel values.
    image_grid_thw : Tensor
        ``[n, 3]`` grids.

    Returns
    -------
    Tensor
        ``[n, d]``.
    """
    feats = model.model.get_image_features(pixel_values, image_grid_thw, return_dict=True).pooler_output
    return torch.cat(list(feats), dim=0)


def _input_embeds(model: torch.nn.Module, batch: Batch, image_embeds: Tensor) -> Tensor:
    emb = model.model.language_model.embed_tokens(batch.input_ids)
    return emb.masked_scatter(batch.image_mask[..., None], image_embeds.to(emb.dtype))


def _place(emb: Tensor, cols: Tensor, values: Tensor) -> Tensor:
    """``emb`` with ``values[:, k]`` written at column ``cols[k]`` of every row (out of place)."""
    idx = cols.view(1, -1, 1).expand(emb.shape[0], -1, emb.shape[-1])
    return emb.scatter(1, idx, values.to(emb.dtype))


def forward_sequence(model: torch.nn.Module, batch: Batch, *, rule: MaskRule | None = None,
                     latents: Float[Tensor, "b k d"] | None = None, image_embeds: Tensor | None = None,
                     pixel_values: Tensor | None = None) -> tuple[Float[Tensor, "b t d"], Float[Tensor, "b t v"]]:
    """One differentiable forward over the full sequences, latents fed as given.

    Builds the inputs like the runner: token embeddings, vision features at the image positions
    (computed from ``pixel_values``, default ``batch.pixel_values``, unless ``image_embeds`` is
    given), ``latents`` at the slots, the 4-D mask of ``rule`` and explicit rotary positions.

    Parameters
    ----------
    model : torch.nn.Module
        A toy model.
    batch : Batch
        The batch.
    rule : MaskRule | None
        The attention rule (``None``: causal).
    latents : Float[Tensor, "b k d"] | None
        ``[b, k, d]`` vectors fed at the latent slots.
    image_embeds : Tensor | None
        Precomputed image features.
    pixel_values : Tensor | None
        Pixel values, when ``image_embeds`` is not given.

    Returns
    -------
    (hidden, logits): the final-norm outputs (what ``lm_head`` reads) and the logits.
    """
    if image_embeds is None:
        image_embeds = image_features(model, batch.pixel_values if pixel_values is None else pixel_values,
                                      batch.image_grid_thw)
    emb = _input_embeds(model, batch, image_embeds)
    if latents is not None:
        if batch.latent_pos is None:
            raise InputError("this batch has no latent slots")
        emb = _place(emb, batch.latent_pos, latents)
    T = emb.shape[1]
    mask = segment_attention_mask(batch.segments, batch.valid, T, rule, emb.dtype)
    out = model.model.language_model(inputs_embeds=emb, attention_mask=mask, position_ids=batch.position_ids,
                                     use_cache=False)
    h = out.last_hidden_state
    return h, model.lm_head(h)


def rollout(model: torch.nn.Module, batch: Batch, *, rule: MaskRule | None = None, image_embeds: Tensor | None = None,
            pixel_values: Tensor | None = None
            ) -> tuple[Float[Tensor, "b k d"], Float[Tensor, "b t d"], Float[Tensor, "b t v"]]:
    """Differentiable recurrent forward: the model computes its own latents, ``z_k = h_{p_k - 1}``.

    Incremental with a KV cache, like the runner: one pass up to the open marker, one per latent,
    and one for the last latent, the close marker and the answer.

    Parameters
    ----------
    model : torch.nn.Module
        A toy model.
    batch : Batch
        The batch.
    rule : MaskRule | None
        The attention rule (``None``: causal).
    image_embeds : Tensor | None
        Precomputed image features.
    pixel_values : Tensor | None
        Pixel values, when ``image_embeds`` is not given.

    Returns
    -------
    (latents, hidden, logits): the fed latents ``[b, K, d]`` and the final-norm outputs and
    logits over every position (equal to :func:`forward_sequence` fed these latents).
    """
    from transformers import DynamicCache

    if batch.latent_pos is None:
        raise InputError("this batch has no latent slots")
    cols = [int(c) for c in batch.latent_pos]
    if cols != list(range(cols[0], cols[0] + len(cols))):
        raise InputError("latent slots must be consecutive")
    if image_embeds is None:
        image_embeds = image_features(model, batch.pixel_values if pixel_values is None else pixel_values,
                                      batch.image_grid_thw)
    emb = _input_embeds(model, batch, image_embeds)
    lm = model.model.language_model
    cache = DynamicCache(config=model.config)
    T = emb.shape[1]
    bounds = [0, cols[0]] + [c + 1 for c in cols[:-1]] + [T]
    hs, zs = [], []
    for i in range(len(bounds) - 1):
        a, b = bounds[i], bounds[i + 1]
        x = emb[:, a:b]
        if i >= 1:  # the chunk starts at latent slot i-1
            x = torch.cat([zs[i - 1][:, None].to(x.dtype), x[:, 1:]], dim=1)
        mask = segment_attention_mask(batch.segments[:, :b], batch.valid[:, :b], b - a, rule, emb.dtype)
        out = lm(inputs_embeds=x, attention_mask=mask, position_ids=batch.position_ids[:, :, a:b],
                 use_cache=True, **{cache_kwarg(lm): cache})
        h = out.last_hidden_state
        hs.append(h)
        if i < len(cols):
            zs.append(h[:, -1])
    hidden = torch.cat(hs, dim=1)
    return torch.stack(zs, dim=1), hidden, model.lm_head(hidden)


def alignment_targets(image_embeds: Tensor, batch: Batch, norm_weight: Tensor, kind: str = "evidence"
                      ) -> Float[Tensor, "b k d"]:
    """The vectors the latents are aligned with, rescaled to ``|norm.weight|`` (the scale of ``h``).

    ``"evidence"`` (the default): latent ``k`` <- the feature of the grid cell the question is
    about (:func:`evidence_cells`; the mean of the empty cells for "nothing there"). ``"rows"``:
    latent ``k`` <- the mean merged image feature of grid row ``k``.

    Parameters
    ----------
    image_embeds : Tensor
        The merged image features.
    batch : Batch
        The batch.
    norm_weight : Tensor
        The final norm's weight.
    kind : str
        ``"evidence"`` or ``"rows"``.

    Returns
    -------
    Tensor
        ``[b, k, d]``.
    """
    assert batch.latent_pos is not None
    B, k = batch.shape[0], len(batch.latent_pos)
    d = image_embeds.shape[-1]
    cells = image_embeds.reshape(B, IMAGE_SIDE * IMAGE_SIDE, d)
    if kind == "rows":
        if k > IMAGE_SIDE:
            raise InputError(f"'rows' targets need K <= {IMAGE_SIDE} latents")
        out = cells.reshape(B, IMAGE_SIDE, IMAGE_SIDE, d).mean(dim=2)[:, :k]
    elif kind == "evidence":
        if batch.evidence is None or batch.occupied is None:
            raise InputError("'evidence' targets need a batch built from encode_examples")
        empty = (~batch.occupied).to(cells.dtype)
        background = (cells * empty[..., None]).sum(1) / empty.sum(1, keepdim=True).clamp_min(1.0)
        ev = batch.evidence
        picked = cells.gather(1, ev.clamp_min(0)[..., None].expand(-1, -1, d))
        out = torch.where((ev >= 0)[..., None], picked, background[:, None].expand(-1, k, -1))
    else:
        raise InputError(f"unknown alignment targets {kind!r}; use 'rows' or 'evidence'")
    scale = norm_weight.detach().norm()
    return out / out.norm(dim=-1, keepdim=True).clamp_min(1e-6) * scale


def _ce(logits: Tensor, labels: Tensor) -> Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=IGNORE)


def _align(h_src: Tensor, targets: Tensor) -> Tensor:
    return (1.0 - F.cosine_similarity(h_src.float(), targets.detach().float(), dim=-1)).mean()


def _ans_acc(logits: Tensor, batch: Batch) -> float:
    """Teacher-forced accuracy at the answer position (the second-to-last label of every row)."""
    pred = logits[:, -2].argmax(-1)
    return float((pred == batch.labels[:, -2]).float().mean())


def _features(model: torch.nn.Module, batch: Batch, frozen: bool) -> Tensor:
    if frozen:
        with torch.no_grad():
            return image_features(model, batch.pixel_values, batch.image_grid_thw)
    return image_features(model, batch.pixel_values, batch.image_grid_thw)


def _step_losses(model: torch.nn.Module, batch: Batch, variant: str, stage: int, args: TrainArgs
                 ) -> tuple[Tensor, dict[str, float]]:
    """The loss of one batch: stage 0 base pretraining, 1 teacher-forced latents, 2 recurrent latents."""
    frozen = args.freeze_vision
    feats = _features(model, batch, frozen)
    if stage == 0 or variant == "text":
        _, logits = forward_sequence(model, batch, rule=None if stage == 0 else mask_rule(variant),
                                     image_embeds=feats)
        ce = _ce(logits, batch.labels)
        return ce, {"ce": ce.item(), "acc": _ans_acc(logits, batch)}
    rule = mask_rule(variant)
    norm_w = model.model.language_model.norm.weight
    assert batch.latent_pos is not None
    targets = alignment_targets(feats, batch, norm_w, args.targets)
    w_align = 0.0 if variant == "blind" else (args.align_weight if stage == 1 else args.recurrent_align_weight)
    if stage == 1:
        h, logits = forward_sequence(model, batch, rule=rule, latents=targets, image_embeds=feats)
        h_src = h[:, batch.latent_pos - 1]
    else:
        h_src, _, logits = rollout(model, batch, rule=rule, image_embeds=feats)
    ce = _ce(logits, batch.labels)
    al = _align(h_src, targets)
    loss = ce + w_align * al if w_align else ce
    return loss, {"ce": ce.item(), "align": al.item(), "acc": _ans_acc(logits, batch)}
