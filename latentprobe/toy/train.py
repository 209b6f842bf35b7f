"""Training the toy latent-reasoning models: a seeded, deterministic two-stage recipe.

The sequences are exactly those :class:`~latentprobe.runner.LatentRunner` builds at inference
(see :mod:`latentprobe.toy.model`)::

    question <|vision_start|> <|image_pad|> x16  <|latent_start|>  z_1 .. z_4  <|latent_end|>  answer  [<eos>]

with the same input embeddings (token embeddings; merged vision features at the image positions;
latent vectors at the slots, whose ids are ``<|latent_pad|>`` for the rotary positions), the same
4-D segment attention mask and the same 3-D rotary positions from ``get_rope_index``.

Latent variants follow the published recipe (Mirage-style):

* **stage 1, teacher-forced latents.** Latent ``k`` is fed an alignment target ``t_k``: the
  mean of the merged image features of grid row ``k``, rescaled to the norm of the final-norm
  weight (the scale of the outputs ``lm_head`` reads). The loss is cross-entropy on the open
  marker, the answer and ``<eos>`` plus ``1 - cos(h_{p-1}, t_k)`` at each latent's source
  position. The alignment target is detached; the fed copy keeps its gradient, so the answer's
  loss also trains the vision tower, which (unlike the frozen encoders of the published models)
  starts from random weights here.
* **stage 2, recurrent fine-tuning.** The model computes its own latents, ``z_k = h_{p-1}``,
  incrementally with a KV cache (one pass up to the open marker, one per latent, one for the
  close marker and the answer), backpropagating through the whole chain; the loss is the same
  cross-entropy plus a small alignment term.

In the ``blind`` variant no latent can see the image, so its alignment weight is zero (the
latents are trained by the answer's loss only). The ``text`` variant is plain teacher forcing on
``<|caption|> caption <|caption_end|> answer <eos>``.

Weights are saved as float16 safetensors next to a JSON record of the configuration, the
training arguments and the test accuracy measured with the saved (float16 -> float32) weights
through :class:`~latentprobe.runner.LatentRunner` greedy decoding on the held-out test split.

Retrain everything with ``python -m latentprobe.toy.train --out latentprobe/toy/weights``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor

from latentprobe.masks import MaskRule, segment_attention_mask
from latentprobe.toy.images import to_pixel_values
from latentprobe.toy.model import LATENT_VARIANTS, VARIANTS, build_model, mask_rule, prompt_for, toy_spec
from latentprobe.toy.shapes import ToyExample, majority_baseline, make_dataset, train_test_split
from latentprobe.toy.vocab import build_tokenizer, caption_for
from latentprobe.trace import Segment

__all__ = [
    "TrainArgs",
    "Batch",
    "DEFAULT_ARGS",
    "encode_examples",
    "collate",
    "image_features",
    "alignment_targets",
    "forward_sequence",
    "rollout",
    "evaluate",
    "train_variant",
    "train_all",
    "save_weights",
    "load_weights",
]

S = Segment
IGNORE = -100
NUM_IMAGE_TOKENS = 16  # 112 px image -> grid (1, 8, 8) -> 16 merged tokens
IMAGE_SIDE = 4  # merged tokens per row / column (one per grid cell)


# ----------------------------------------------------------------------------- arguments


@dataclass(frozen=True)
class TrainArgs:
    """Everything that determines a trained toy model (with the seed and the variant)."""

    n_images: int = 2000
    questions_per_image: int = 2
    test_fraction: float = 0.2
    steps: int = 1000  # stage 1 (teacher-forced latents; all steps for ``text``)
    recurrent_steps: int = 200  # stage 2 (latents computed by the model)
    batch_size: int = 32
    lr: float = 2e-3
    recurrent_lr: float = 5e-4
    weight_decay: float = 0.01
    warmup: int = 50
    align_weight: float = 1.0
    recurrent_align_weight: float = 0.1
    grad_clip: float = 1.0
    eval_batch_size: int = 100
    n_first: int = 100  # also record the accuracy on the first ``n_first`` test examples
    max_new_tokens: int = 16  # the runner's budget counts every position after the prompt


DEFAULT_ARGS: dict[str, TrainArgs] = {
    "mediated": TrainArgs(),
    "bypass": TrainArgs(),
    "blind": TrainArgs(),
    "free": TrainArgs(),
    "text": TrainArgs(recurrent_steps=0),
}


# ----------------------------------------------------------------------------- encoding


@dataclass
class _Encoded:
    ids: list[int]
    segs: list[int]
    labels: list[int]  # labels[p]: the token position p must predict (IGNORE: none)
    image: np.ndarray


@dataclass
class Batch:
    """A left-padded batch of full training sequences (every row ends at the last column).

    ``labels[b, p]`` is the token that the logits at ``p`` must predict. For latent variants
    ``latent_pos`` holds the slot columns (the same in every row); ``None`` for ``text``.
    """

    input_ids: Int[Tensor, "b t"]
    segments: Int[Tensor, "b t"]
    valid: Int[Tensor, "b t"]
    labels: Int[Tensor, "b t"]
    position_ids: Int[Tensor, "3 b t"]
    pixel_values: Float[Tensor, "n p"]
    image_grid_thw: Int[Tensor, "b 3"]
    image_mask: Bool[Tensor, "b t"]
    latent_pos: Int[Tensor, "k"] | None

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.input_ids.shape)  # type: ignore[return-value]


def _token_ids(tokenizer: Any) -> dict[str, int]:
    names = ("<pad>", "<eos>", "<|image_pad|>", "<|latent_start|>", "<|latent_end|>", "<|latent_pad|>",
             "<|caption|>", "<|caption_end|>")
    return {n: int(tokenizer.convert_tokens_to_ids(n)) for n in names}


def _word_ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode_examples(tokenizer: Any, examples: Sequence[ToyExample], variant: str) -> list[_Encoded]:
    """Token ids, segment codes and next-token labels of each example's full sequence.

    The eos token is only a label (the runner never feeds it).
    """
    mask_rule(variant)
    t = _token_ids(tokenizer)
    k_lat = toy_spec(variant).num_latents
    out = []
    for ex in examples:
        prompt = _word_ids(tokenizer, prompt_for(ex.question))
        if prompt.count(t["<|image_pad|>"]) != 1:
            raise ValueError(f"prompt of {ex.example_id!r} must hold exactly one <|image_pad|>")
        ids: list[int] = []
        for tok in prompt:
            ids.extend([tok] * NUM_IMAGE_TOKENS if tok == t["<|image_pad|>"] else [tok])
        segs = [S.IMAGE if tok == t["<|image_pad|>"] else S.TEXT for tok in ids]
        labels = [IGNORE] * len(ids)
        answer = _word_ids(tokenizer, ex.answer)
        if len(answer) != 1:
            raise ValueError(f"answer {ex.answer!r} is not one token")
        if variant == "text":
            caption = _word_ids(tokenizer, caption_for(ex))
            labels[-1] = t["<|caption|>"]
            ids.append(t["<|caption|>"]); segs.append(S.OPEN)
            for w in caption:
                labels.append(w)
                ids.append(w); segs.append(S.LATENT)
            labels.append(t["<|caption_end|>"])
            ids.append(t["<|caption_end|>"]); segs.append(S.CLOSE)
        else:
            labels[-1] = t["<|latent_start|>"]
            ids.append(t["<|latent_start|>"]); segs.append(S.OPEN); labels.append(IGNORE)
            for _ in range(k_lat):
                ids.append(t["<|latent_pad|>"]); segs.append(S.LATENT); labels.append(IGNORE)
            ids.append(t["<|latent_end|>"]); segs.append(S.CLOSE)
        labels.append(answer[0])
        ids.append(answer[0]); segs.append(S.GEN); labels.append(t["<eos>"])
        out.append(_Encoded(ids, segs, labels, ex.image()))
    return out


def collate(model: torch.nn.Module, items: Sequence[_Encoded], pad_id: int) -> Batch:
    """Left-pad encoded examples and compute pixel values and 3-D rotary positions (as the runner does)."""
    B = len(items)
    T = max(len(it.ids) for it in items)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    segs = torch.full((B, T), S.PAD, dtype=torch.long)
    valid = torch.zeros((B, T), dtype=torch.long)
    labels = torch.full((B, T), IGNORE, dtype=torch.long)
    for b, it in enumerate(items):
        off = T - len(it.ids)
        ids[b, off:] = torch.tensor(it.ids)
        segs[b, off:] = torch.tensor(it.segs)
        valid[b, off:] = 1
        labels[b, off:] = torch.tensor(it.labels)
    pv, grid = to_pixel_values([it.image for it in items])
    image_mask = segs == S.IMAGE
    with torch.no_grad():
        pos, _ = model.model.get_rope_index(ids, mm_token_type_ids=image_mask.long(), image_grid_thw=grid,
                                            attention_mask=valid)
    lat = segs == S.LATENT
    latent_pos = None
    if lat.any() and bool((lat == lat[:1]).all()):
        latent_pos = torch.nonzero(lat[0]).flatten()
    return Batch(ids, segs, valid, labels, pos, pv, grid, image_mask, latent_pos)


# ----------------------------------------------------------------------------- forward passes


def image_features(model: torch.nn.Module, pixel_values: Tensor, image_grid_thw: Tensor) -> Float[Tensor, "n d"]:
    """Merged vision features of all images, concatenated (one row per image token)."""
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
            raise ValueError("this batch has no latent slots")
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

    Returns
    -------
    (latents, hidden, logits): the fed latents ``[b, K, d]`` and the final-norm outputs and
    logits over every position (equal to :func:`forward_sequence` fed these latents).
    """
    from transformers import DynamicCache

    if batch.latent_pos is None:
        raise ValueError("this batch has no latent slots")
    cols = [int(c) for c in batch.latent_pos]
    if cols != list(range(cols[0], cols[0] + len(cols))):
        raise ValueError("latent slots must be consecutive")
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
                 past_key_values=cache, use_cache=True)
        h = out.last_hidden_state
        hs.append(h)
        if i < len(cols):
            zs.append(h[:, -1])
    hidden = torch.cat(hs, dim=1)
    return torch.stack(zs, dim=1), hidden, model.lm_head(hidden)


def alignment_targets(image_embeds: Tensor, batch_size: int, norm_weight: Tensor, k: int = 4) -> Float[Tensor, "b k d"]:
    """Latent ``k``'s target: the mean merged image feature of grid row ``k``, rescaled to ``|norm.weight|``."""
    d = image_embeds.shape[-1]
    grid = image_embeds.reshape(batch_size, IMAGE_SIDE, IMAGE_SIDE, d)
    rows = grid.mean(dim=2)[:, :k]
    scale = norm_weight.detach().norm()
    return rows / rows.norm(dim=-1, keepdim=True).clamp_min(1e-6) * scale


def _ce(logits: Tensor, labels: Tensor) -> Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=IGNORE)


def _align(h_src: Tensor, targets: Tensor) -> Tensor:
    return (1.0 - F.cosine_similarity(h_src.float(), targets.detach().float(), dim=-1)).mean()


# ----------------------------------------------------------------------------- evaluation


def evaluate(model: torch.nn.Module, tokenizer: Any, variant: str, examples: Sequence[ToyExample], *,
             batch_size: int = 100, max_new_tokens: int = 16) -> list[str]:
    """Greedy answers of ``model`` through :class:`LatentRunner` (the inference protocol)."""
    from latentprobe.runner import LatentRunner

    if not examples:
        return []
    runner = LatentRunner(model, tokenizer, toy_spec(variant), mask_rule=mask_rule(variant))
    trace = runner.run([prompt_for(e.question) for e in examples], [e.image() for e in examples],
                       example_ids=[e.example_id for e in examples], max_new_tokens=max_new_tokens, batch_size=batch_size,
                       progress=False)
    return trace.answers


def _accuracy(answers: Sequence[str], examples: Sequence[ToyExample]) -> float:
    if not examples:
        return 0.0
    return float(np.mean([a == e.answer for a, e in zip(answers, examples)]))


# ----------------------------------------------------------------------------- persistence


def save_weights(model: torch.nn.Module, path: str | Path) -> str:
    """Write the model's weights as float16 safetensors (the tied ``lm_head`` is not stored); returns sha256."""
    from safetensors.torch import save_file

    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(sd, str(path), metadata={"format": "pt", "dtype": "float16"})
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_weights(model: torch.nn.Module, path: str | Path) -> torch.nn.Module:
    """Load float16 safetensors written by :func:`save_weights` into ``model`` as float32 (safetensors only)."""
    from safetensors.torch import load_file

    sd = {k: v.float() for k, v in load_file(str(path)).items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if m != "lm_head.weight"]
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit the model (missing {missing}, unexpected {unexpected})")
    model.tie_weights()
    return model.float().eval()


# ----------------------------------------------------------------------------- training


@contextmanager
def _deterministic(threads: int = 2) -> Iterator[None]:
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old_det, warn_only=old_warn)
        torch.set_num_threads(old_threads)


def _lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    if total <= 0:
        return peak
    if step < warmup:
        return peak * (step + 1) / warmup
    frac = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac))))


def _batches(n: int, batch_size: int, steps: int, gen: torch.Generator) -> Iterator[list[int]]:
    done = 0
    while done < steps:
        perm = torch.randperm(n, generator=gen).tolist()
        for i in range(0, n - batch_size + 1, batch_size):
            yield perm[i:i + batch_size]
            done += 1
            if done >= steps:
                return


def _step_losses(model: torch.nn.Module, batch: Batch, variant: str, stage: int, args: TrainArgs
                 ) -> tuple[Tensor, dict[str, float]]:
    rule = mask_rule(variant)
    if variant == "text":
        _, logits = forward_sequence(model, batch, rule=rule)
        ce = _ce(logits, batch.labels)
        return ce, {"ce": ce.item(), "acc": _ans_acc(logits, batch)}
    feats = image_features(model, batch.pixel_values, batch.image_grid_thw)
    norm_w = model.model.language_model.norm.weight
    k = len(batch.latent_pos)
    targets = alignment_targets(feats, batch.shape[0], norm_w, k)
    src = batch.latent_pos - 1
    w_align = 0.0 if variant == "blind" else (args.align_weight if stage == 1 else args.recurrent_align_weight)
    if stage == 1:
        h, logits = forward_sequence(model, batch, rule=rule, latents=targets, image_embeds=feats)
        h_src = h[:, src]
    else:
        h_src, _, logits = rollout(model, batch, rule=rule, image_embeds=feats)
    ce = _ce(logits, batch.labels)
    al = _align(h_src, targets)
    loss = ce + w_align * al if w_align else ce
    return loss, {"ce": ce.item(), "align": al.item(), "acc": _ans_acc(logits, batch)}


def _ans_acc(logits: Tensor, batch: Batch) -> float:
    """Teacher-forced accuracy at the answer position (the second-to-last label of every row)."""
    pred = logits[:, -2].argmax(-1)
    return float((pred == batch.labels[:, -2]).float().mean())


def train_variant(variant: str, *, out_dir: str | Path | None = None, seed: int = 0, n_images: int | None = None,
                  steps: int | None = None, recurrent_steps: int | None = None, batch_size: int | None = None,
                  lr: float | None = None, evaluate_test: bool = True, progress: bool = True,
                  config_kwargs: dict[str, Any] | None = None, threads: int = 2,
                  return_model: bool = False) -> dict[str, Any]:
    """Train one toy variant; optionally write ``{variant}.safetensors`` and ``{variant}.json`` to ``out_dir``.

    Same ``seed`` and arguments give bitwise-identical weights on CPU (fixed thread count,
    deterministic algorithms, seeded initialisation and batch order).

    Returns
    -------
    dict: the metadata written to the JSON file (with ``"model"`` and ``"tokenizer"`` added when
    ``return_model``). ``test_accuracy`` is measured with the float16-rounded weights.
    """
    mask_rule(variant)
    base = DEFAULT_ARGS[variant]
    over = {k: v for k, v in dict(n_images=n_images, steps=steps, recurrent_steps=recurrent_steps,
                                  batch_size=batch_size, lr=lr).items() if v is not None}
    args = TrainArgs(**{**asdict(base), **over})
    if variant == "text":
        args = TrainArgs(**{**asdict(args), "recurrent_steps": 0})
    config_kwargs = dict(config_kwargs or {})
    tok = build_tokenizer()
    vocab = tok.get_vocab()
    pad_id = int(tok.pad_token_id)

    data = make_dataset(args.n_images, args.questions_per_image, seed=seed)
    train, test = train_test_split(data, args.test_fraction, seed=seed)
    enc = encode_examples(tok, train, variant)

    t0 = time.perf_counter()
    history: list[dict[str, float]] = []
    with _deterministic(threads):
        model = build_model(vocab, seed=seed, **config_kwargs)
        model.train()
        gen = torch.Generator().manual_seed(seed)
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.98))
        stages = [(1, args.steps, args.lr)]
        if args.recurrent_steps > 0:
            stages.append((2, args.recurrent_steps, args.recurrent_lr))
        from tqdm.auto import tqdm

        for stage, n_steps, peak in stages:
            bar = tqdm(total=n_steps, desc=f"{variant} stage {stage}", disable=not progress, leave=False)
            warm = min(args.warmup, max(1, n_steps // 10))
            for i, idx in enumerate(_batches(len(enc), args.batch_size, n_steps, gen)):
                batch = collate(model, [enc[j] for j in idx], pad_id)
                for g in opt.param_groups:
                    g["lr"] = _lr_at(i, n_steps, peak, warm)
                loss, logs = _step_losses(model, batch, variant, stage, args)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
                opt.step()
                logs = {"stage": stage, "step": i, "loss": loss.item(), **logs}
                history.append(logs)
                if progress and (i % 10 == 0 or i == n_steps - 1):
                    bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items() if k not in ("stage", "step")})
                bar.update(1)
            bar.close()
        model.eval()
    train_seconds = time.perf_counter() - t0

    meta: dict[str, Any] = {
        "variant": variant,
        "spec": toy_spec(variant).name,
        "seed": seed,
        "config_kwargs": config_kwargs,
        "train_args": asdict(args),
        "n_train": len(train),
        "n_test": len(test),
        "majority_baseline": majority_baseline(test),
        "train_seconds": round(train_seconds, 1),
        "torch_version": torch.__version__,
        "transformers_version": _transformers_version(),
        "weights_dtype": "float16",
        "final_losses": _tail_mean(history),
    }

    # evaluate with the float16-rounded weights, exactly as a user loads them
    with _deterministic(threads):
        rounded = build_model(vocab, seed=seed, **config_kwargs)
        sd = {k: v.detach().to(torch.float16).float() for k, v in model.state_dict().items()}
        rounded.load_state_dict(sd)
        rounded.tie_weights()
        rounded.eval()
        if evaluate_test:
            t1 = time.perf_counter()
            answers = evaluate(rounded, tok, variant, test, batch_size=args.eval_batch_size,
                               max_new_tokens=args.max_new_tokens)
            meta["test_accuracy"] = _accuracy(answers, test)
            n_first = min(args.n_first, len(test))
            meta["n_first"] = n_first
            meta["test_accuracy_first"] = _accuracy(answers[:n_first], test[:n_first])
            meta["eval_seconds"] = round(time.perf_counter() - t1, 1)
            meta["test_accuracy_by_template"] = _by_template(answers, test)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        meta["sha256"] = save_weights(model, out / f"{variant}.safetensors")
        (out / f"{variant}.json").write_text(json.dumps(meta, indent=1) + "\n")
    if return_model:
        meta = {**meta, "model": rounded, "tokenizer": tok}
    return meta


def train_all(out_dir: str | Path, seed: int = 0, variants: Sequence[str] = VARIANTS, *, progress: bool = True,
              **kwargs: Any) -> dict[str, dict[str, Any]]:
    """Train and save every variant; returns their metadata by variant."""
    return {v: train_variant(v, out_dir=out_dir, seed=seed, progress=progress, **kwargs) for v in variants}


def _by_template(answers: Sequence[str], examples: Sequence[ToyExample]) -> dict[str, float]:
    out: dict[str, list[bool]] = {}
    for a, e in zip(answers, examples):
        out.setdefault(e.template, []).append(a == e.answer)
    return {k: round(float(np.mean(v)), 4) for k, v in sorted(out.items())}


def _tail_mean(history: list[dict[str, float]], n: int = 20) -> dict[str, float]:
    tail = history[-n:]
    keys = [k for k in (tail[0] if tail else {}) if k not in ("stage", "step")]
    return {k: round(float(np.mean([h[k] for h in tail])), 4) for k in keys}


def _transformers_version() -> str:
    import transformers

    return transformers.__version__


def _main(argv: Sequence[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(description="Train the toy latent-reasoning models and write their weights.")
    p.add_argument("--out", required=True, help="output folder (the shipped weights live in latentprobe/toy/weights)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    for v in a.variants:
        meta = train_variant(v, out_dir=a.out, seed=a.seed, progress=not a.quiet)
        print(f"{v}: test accuracy {meta['test_accuracy']:.3f} (majority {meta['majority_baseline']:.3f}, "
              f"{meta['n_test']} test examples), trained in {meta['train_seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    _main()
