"""Training the toy latent-reasoning models: a seeded, deterministic staged recipe.

Sequences are built by :mod:`latentprobe.toy.encoding`, run and scored by :mod:`latentprobe.toy.forward`,
measured by :mod:`latentprobe.toy.evaluation` and written by :mod:`latentprobe.toy.checkpoints`.

The sequences are exactly those :class:`~latentprobe.engine.LatentRunner` builds at inference
(see :mod:`latentprobe.toy.model`)::

    question <|vision_start|> <|image_pad|> x16  <|latent_start|>  z_1 .. z_4  <|latent_end|>  answer  [<eos>]

with the same input embeddings (token embeddings; merged vision features at the image positions;
latent vectors at the slots, whose ids are ``<|latent_pad|>`` for the rotary positions), the same
4-D segment attention mask and the same 3-D rotary positions from ``get_rope_index``.

Stages (every variant of a seed starts from the same base model, as the published latent models
all start from a pretrained VLM):

* **stage 0a, vision tower.** Each merged image token learns its grid cell's colour, shape and
  size (a linear read-out that is then discarded, plus the model's own tied ``lm_head`` giving the
  object's words), with its norm held near that of token embeddings. The tower then stays frozen,
  like the pretrained encoders of the published models.
* **stage 0b, base VLM.** Ordinary causal attention, no latents: scene captions
  (``<|vision_start|> image  red circle large row two col three ...``) mixed with direct answers
  (``question <|vision_start|> image answer``).
* **stage 1, teacher-forced latents (Mirage-style).** Latent ``k`` is fed an alignment target
  ``t_k`` built from the frozen image features and rescaled to the norm of the final-norm weight
  (the scale of the outputs ``lm_head`` reads): by default the feature of the grid cell the
  question is about (Mirage's helper image of the relevant region; see :func:`evidence_cells`),
  or the mean feature of grid row ``k`` (``targets="rows"``). The loss is cross-entropy on the open
  marker, the answer and ``<eos>`` plus ``1 - cos(h_{p-1}, t_k)`` at each latent's source position.
* **stage 2, recurrent fine-tuning.** The model computes its own latents, ``z_k = h_{p-1}``,
  incrementally with a KV cache (one pass up to the open marker, one per latent, one for the
  close marker and the answer), backpropagating through the whole chain; the loss is the same
  cross-entropy plus a small alignment term.

In ``blind`` no latent can see the image, so no visual target is reachable: it skips stage 1 and
its alignment weight is zero (the latents are trained by the answer's loss only). The ``text``
variant is plain teacher forcing on ``<|caption|> caption <|caption_end|> answer <eos>`` after
the base stages, under its rule (close and answer read the caption, not the image).

Weights are saved as float16 safetensors next to a JSON record of the configuration, the
training arguments and the test accuracy measured with the saved (float16 -> float32) weights
through :class:`~latentprobe.engine.LatentRunner` greedy decoding on the held-out test split.

Retrain everything with ``python -m latentprobe.toy.training --out latentprobe/toy/weights``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from latentprobe.images import pixel_values as image_pixel_values
from latentprobe.toy.checkpoints import load_weights, save_weights
from latentprobe.toy.encoding import _Encoded, cell_labels, collate, encode_examples, encode_pretraining
from latentprobe.toy.evaluation import _deterministic, measure_accuracy
from latentprobe.toy.forward import _step_losses, image_features
from latentprobe.toy.model import VARIANTS, build_model, mask_rule, toy_spec
from latentprobe.toy.settings import DEFAULT_ARGS, TrainArgs
from latentprobe.toy.shapes import ToyExample, majority_baseline, make_dataset, train_test_split
from latentprobe.toy.vocab import build_tokenizer
from latentprobe.errors import InputError

__all__ = ["TrainArgs", "DEFAULT_ARGS", "train_variant", "train_all", "reevaluate"]


def reevaluate(folder: str | Path, variant: str) -> dict[str, Any]:
    """Measure the saved weights of ``variant`` in ``folder`` again and update the accuracy fields of its JSON.

    Parameters
    ----------
    folder : str | Path
        The weights folder.
    variant : str
        One of :data:`~latentprobe.toy.VARIANTS`.

    Returns
    -------
    dict[str, Any]
        The updated record.
    """
    folder = Path(folder)
    jf = folder / f"{variant}.json"
    meta = json.loads(jf.read_text())
    args = TrainArgs(**meta["train_args"])
    tok = build_tokenizer()
    model = load_weights(build_model(tok.get_vocab(), seed=int(meta["seed"]), **meta["config_kwargs"]),
                         folder / f"{variant}.safetensors")
    _, test = train_test_split(make_dataset(args.n_images, args.questions_per_image, seed=int(meta["seed"])),
                               args.test_fraction, seed=int(meta["seed"]))
    meta.update(measure_accuracy(model, tok, variant, test, args))
    jf.write_text(json.dumps(meta, indent=1) + "\n")
    return meta


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


def _run_stage(model: torch.nn.Module, stage: int, variant: str, items: Sequence[_Encoded] | tuple, n_steps: int,
               peak_lr: float, args: TrainArgs, gen: torch.Generator, pad_id: int, progress: bool,
               history: list[dict[str, float]]) -> None:
    """``n_steps`` AdamW steps of one stage (warmup, cosine decay to 10 %, gradient clipping)."""
    from tqdm.auto import tqdm

    if n_steps <= 0:
        return
    frozen = args.freeze_vision
    for p in model.model.visual.parameters():
        p.requires_grad_(not frozen)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=peak_lr, betas=(0.9, 0.98))
    warm = min(args.warmup, max(1, n_steps // 10))
    if stage == 0:  # mixed batches: scene captions and direct answers
        caps, qa = items
        n_qa = int(round(args.batch_size * args.pretrain_qa_fraction))
        streams = []
        if n_qa < args.batch_size:
            streams.append((caps, _batches(len(caps), args.batch_size - n_qa, n_steps, gen)))
        if n_qa > 0:
            streams.append((qa, _batches(len(qa), n_qa, n_steps, gen)))

        def batch_items() -> Iterator[list[_Encoded]]:
            for idxs in zip(*[it for _, it in streams]):
                yield [src[j] for (src, _), ix in zip(streams, idxs) for j in ix]
    else:
        def batch_items() -> Iterator[list[_Encoded]]:
            for ix in _batches(len(items), args.batch_size, n_steps, gen):
                yield [items[j] for j in ix]

    model.train()
    bar = tqdm(total=n_steps, desc=f"{variant} stage {stage}", disable=not progress, leave=False)
    for i, chunk in enumerate(batch_items()):
        batch = collate(model, chunk, pad_id)
        for g in opt.param_groups:
            g["lr"] = _lr_at(i, n_steps, peak_lr, warm)
        loss, logs = _step_losses(model, batch, variant, stage, args)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, args.grad_clip)
        opt.step()
        logs = {"stage": stage, "step": i, "loss": loss.item(), **logs}
        history.append(logs)
        if progress and (i % 10 == 0 or i == n_steps - 1):
            bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items() if k not in ("stage", "step")})
        bar.update(1)
    bar.close()
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()


_CLASSES = (5, 4, 3)


def _pretrain_vision(model: torch.nn.Module, examples: Sequence[ToyExample], args: TrainArgs, gen: torch.Generator,
                     progress: bool, history: list[dict[str, float]]) -> None:
    """Stage 0a: train the vision tower to tell each cell's colour, shape and size.

    Two read-outs of each merged token: a linear classifier (discarded afterwards) and the model's
    own (tied) ``lm_head``, which must give the object's colour, shape and size words equal
    probability; the latter places the features of a cell near the embeddings of its words.
    """
    from tqdm.auto import tqdm
    from latentprobe.toy.shapes import COLOURS, SHAPES, SIZES

    tok = build_tokenizer()
    word_ids = [torch.tensor([0] + [int(tok.convert_tokens_to_ids(w)) for w in ws])
                for ws in (COLOURS, SHAPES, SIZES)]

    if args.vision_steps <= 0:
        return
    images, seen = [], set()
    for ex in examples:
        if ex.image_id not in seen:
            seen.add(ex.image_id)
            images.append(ex)
    d = model.config.vision_config.out_hidden_size
    head = torch.nn.Linear(d, sum(_CLASSES))
    with torch.no_grad():
        head.weight.normal_(0.0, 0.02, generator=gen)
        head.bias.zero_()
    params = (list(model.model.visual.parameters()) + list(head.parameters())
              + ([model.lm_head.weight] if args.vision_word_weight else []))
    opt = torch.optim.AdamW(params, lr=args.vision_lr, betas=(0.9, 0.98), weight_decay=0.0)
    warm = min(args.warmup, max(1, args.vision_steps // 10))
    bar = tqdm(total=args.vision_steps, desc="vision", disable=not progress, leave=False)
    model.train()
    for i, ix in enumerate(_batches(len(images), args.batch_size, args.vision_steps, gen)):
        chunk = [images[j] for j in ix]
        pv, grid = image_pixel_values([e.image() for e in chunk])
        feats = image_features(model, pv, grid)
        labels = torch.cat([cell_labels(e) for e in chunk])
        logits = head(feats).split(list(_CLASSES), dim=-1)
        losses = [F.cross_entropy(lg, labels[:, j]) for j, lg in enumerate(logits)]
        loss = sum(losses)
        obj = labels[:, 0] > 0
        if args.vision_word_weight and bool(obj.any()):
            lp = torch.log_softmax(model.lm_head(feats[obj]), dim=-1)
            words = torch.stack([word_ids[j][labels[obj, j]] for j in range(3)], dim=1)
            loss = loss + args.vision_word_weight * (-lp.gather(1, words).mean())
        if args.vision_norm_weight:
            # keep the features at the scale of token embeddings, so text and image mix in the residual stream
            loss = loss + args.vision_norm_weight * (feats.norm(dim=-1) / args.vision_feature_norm - 1.0).pow(2).mean()
        for g in opt.param_groups:
            g["lr"] = _lr_at(i, args.vision_steps, args.vision_lr, warm)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, args.grad_clip)
        opt.step()
        accs = [float((lg.argmax(-1) == labels[:, j]).float().mean()) for j, lg in enumerate(logits)]
        history.append({"stage": -1, "step": i, "loss": loss.item(), "acc": accs[0], "acc_shape": accs[1],
                        "acc_size": accs[2]})
        bar.update(1)
    bar.close()
    model.eval()


_BASE_CACHE: dict[str, tuple[dict[str, Tensor], list[dict[str, float]], float]] = {}


def _base_key(seed: int, args: TrainArgs, config_kwargs: dict[str, Any], threads: int) -> str:
    keys = ("n_images", "questions_per_image", "test_fraction", "vision_steps", "vision_lr", "vision_word_weight",
            "vision_norm_weight", "vision_feature_norm", "freeze_vision", "pretrain_steps", "pretrain_lr",
            "pretrain_qa_fraction", "batch_size", "weight_decay", "warmup", "grad_clip")
    a = asdict(args)
    return json.dumps({"seed": seed, "threads": threads, "config": config_kwargs, **{k: a[k] for k in keys}},
                      sort_keys=True)


def _base_model(tok: Any, train: Sequence[ToyExample], seed: int, args: TrainArgs, config_kwargs: dict[str, Any],
                threads: int, progress: bool) -> tuple[torch.nn.Module, list[dict[str, float]], float]:
    """The base VLM every variant starts from (stage 0); cached per process (it is deterministic)."""
    key = _base_key(seed, args, config_kwargs, threads)
    model = build_model(tok.get_vocab(), seed=seed, **config_kwargs)
    if key not in _BASE_CACHE:
        t0 = time.perf_counter()
        history: list[dict[str, float]] = []
        gen = torch.Generator().manual_seed(seed * 7919 + 17)
        items = encode_pretraining(tok, train)
        _pretrain_vision(model, train, args, gen, progress, history)
        _run_stage(model, 0, "base", items, args.pretrain_steps, args.pretrain_lr, args, gen,
                   int(tok.pad_token_id), progress, history)
        _BASE_CACHE.clear()
        _BASE_CACHE[key] = ({k: v.detach().clone() for k, v in model.state_dict().items()}, history,
                            time.perf_counter() - t0)
    state, history, seconds = _BASE_CACHE[key]
    model.load_state_dict(state)
    return model, history, seconds


def train_variant(variant: str, *, out_dir: str | Path | None = None, seed: int = 0, n_images: int | None = None,
                  steps: int | None = None, recurrent_steps: int | None = None, batch_size: int | None = None,
                  lr: float | None = None, progress: bool = True, evaluate_test: bool = True,
                  config_kwargs: dict[str, Any] | None = None, threads: int = 2, cache_base: bool = True,
                  return_model: bool = False, **overrides: Any) -> dict[str, Any]:
    """Train one toy variant; optionally write ``{variant}.safetensors`` and ``{variant}.json`` to ``out_dir``.

    Stage 0 trains the base VLM (scene captions and direct answers, ordinary causal attention;
    shared by every variant of a seed and cached within the process), stage 1 trains with
    teacher-forced latents and stage 2 with the model's own latents (see the module docstring).
    ``n_images``, ``steps``, ``recurrent_steps``, ``batch_size``, ``lr`` and any other
    :class:`TrainArgs` field given as a keyword override the per-variant defaults in
    :data:`DEFAULT_ARGS`. Same ``seed`` and arguments give bitwise-identical weights on CPU (fixed
    thread count, deterministic algorithms, seeded initialisation and batch order).

    Parameters
    ----------
    variant : str
        One of :data:`~latentprobe.toy.VARIANTS`.
    out_dir : str or Path, optional
        Where the weights and the record are written (default: nowhere).
    seed : int
        Seed of the data, the initialisation and the batch order.
    n_images, steps, recurrent_steps, batch_size, lr
        :class:`TrainArgs` fields (``None``: the variant's default).
    progress : bool
        Print progress.
    evaluate_test : bool
        Measure the test accuracy (greedy runner answers).
    config_kwargs : dict, optional
        Arguments of :func:`~latentprobe.toy.model.toy_config` (the model's size).
    threads : int
        torch threads (fixed, for bitwise-identical weights).
    cache_base : bool
        Reuse the base model of this seed trained earlier in the process.
    return_model : bool
        Also return the model, tokenizer and state dict.

    Returns
    -------
    dict
        The metadata written to the JSON file. With ``return_model`` also ``"model"`` (holding the
        float16-rounded weights that were evaluated and saved), ``"tokenizer"`` and ``"state_dict"``
        (the float32 weights as trained).
    """
    mask_rule(variant)
    fields = set(asdict(DEFAULT_ARGS[variant]))
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise InputError(f"train_variant() got unknown argument(s) {unknown}; TrainArgs fields are {sorted(fields)}")
    over = {k: v for k, v in dict(n_images=n_images, steps=steps, recurrent_steps=recurrent_steps,
                                  batch_size=batch_size, lr=lr, **overrides).items() if v is not None}
    args = TrainArgs(**{**asdict(DEFAULT_ARGS[variant]), **over})
    if variant == "text" and args.recurrent_steps:
        args = TrainArgs(**{**asdict(args), "recurrent_steps": 0})
    config_kwargs = dict(config_kwargs or {})
    tok = build_tokenizer()
    vocab = tok.get_vocab()
    pad_id = int(tok.pad_token_id)

    data = make_dataset(args.n_images, args.questions_per_image, seed=seed)
    train, test = train_test_split(data, args.test_fraction, seed=seed)
    enc = encode_examples(tok, train, variant)

    history: list[dict[str, float]] = []
    with _deterministic(threads):
        if not cache_base:
            _BASE_CACHE.clear()
        model, base_history, base_seconds = _base_model(tok, train, seed, args, config_kwargs, threads, progress)
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(seed * 1_000_003 + VARIANTS.index(variant))
        _run_stage(model, 1, variant, enc, args.steps, args.lr, args, gen, pad_id, progress, history)
        if variant != "text":
            _run_stage(model, 2, variant, enc, args.recurrent_steps, args.recurrent_lr, args, gen, pad_id, progress,
                       history)
    train_seconds = base_seconds + time.perf_counter() - t0

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
        "base_seconds": round(base_seconds, 1),
        "threads": threads,
        "torch_version": torch.__version__,
        "transformers_version": _transformers_version(),
        "weights_dtype": "float16",
        "base_final_losses": {name: _tail_mean([h for h in base_history if h["stage"] == st])
                              for name, st in (("vision", -1), ("base", 0))},
        "final_losses": {f"stage{st}": _tail_mean([h for h in history if h["stage"] == st]) for st in (1, 2)
                         if any(h["stage"] == st for h in history)},
    }

    # evaluate with the float16-rounded weights, exactly as a user loads them
    with _deterministic(threads):
        rounded = build_model(vocab, seed=seed, **config_kwargs)
        rounded.load_state_dict({k: v.detach().to(torch.float16).float() for k, v in model.state_dict().items()})
        rounded.tie_weights()
        rounded.eval()
    if evaluate_test:
        meta.update(measure_accuracy(rounded, tok, variant, test, args))
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        meta["sha256"] = save_weights(model, out / f"{variant}.safetensors")
        (out / f"{variant}.json").write_text(json.dumps(meta, indent=1) + "\n")
    if return_model:
        meta = {**meta, "model": rounded, "tokenizer": tok, "state_dict": model.state_dict()}
    return meta


def train_all(out_dir: str | Path, seed: int = 0, variants: Sequence[str] = VARIANTS, *, progress: bool = True,
              **kwargs: Any) -> dict[str, dict[str, Any]]:
    """Train and save every variant (the base model is trained once and shared); returns their metadata.

    Parameters
    ----------
    out_dir : str | Path
        Where the weights are written.
    seed : int
        Seed.
    variants : Sequence[str]
        Which variants.
    progress : bool
        Print progress.

    Returns
    -------
    dict[str, dict[str, Any]]
        Each variant's record.
    """
    return {v: train_variant(v, out_dir=out_dir, seed=seed, progress=progress, **kwargs) for v in variants}


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
    p.add_argument("--reevaluate", action="store_true",
                   help="do not train: measure the weights already in --out again and update their JSON records")
    a = p.parse_args(argv)
    if a.reevaluate:
        for v in a.variants:
            meta = reevaluate(a.out, v)
            print(f"{v}: test accuracy {meta['test_accuracy']:.4f} (first {meta['n_first']}: "
                  f"{meta['test_accuracy_first']:.4f})", flush=True)
        return
    for v in a.variants:
        meta = train_variant(v, out_dir=a.out, seed=a.seed, progress=not a.quiet)
        print(f"{v}: test accuracy {meta['test_accuracy']:.3f} (majority {meta['majority_baseline']:.3f}, "
              f"{meta['n_test']} test examples), trained in {meta['train_seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    _main()
