"""Training the toy latent-reasoning models: a seeded, deterministic staged recipe.

The sequences are exactly those :class:`~latentprobe.runner.LatentRunner` builds at inference
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
the base stages.

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

from latentprobe.engine.masks import MaskRule, segment_attention_mask
from latentprobe.images import pixel_values as image_pixel_values
from latentprobe.toy.model import VARIANTS, build_model, mask_rule, prompt_for, toy_spec
from latentprobe.toy.shapes import ToyExample, majority_baseline, make_dataset, train_test_split
from latentprobe.toy.vocab import build_tokenizer, caption_for
from latentprobe.trace import Segment

__all__ = [
    "TrainArgs",
    "DEFAULT_ARGS",
    "Batch",
    "encode_examples",
    "encode_pretraining",
    "evidence_cells",
    "scene_caption",
    "cell_labels",
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
    vision_steps: int = 150  # stage 0a: the vision tower learns the cell contents
    vision_lr: float = 3e-3
    vision_word_weight: float = 1.0
    vision_norm_weight: float = 1.0
    vision_feature_norm: float = 1.0
    pretrain_steps: int = 1500  # stage 0b: the base VLM (scene captions + direct answers), shared by all variants
    pretrain_lr: float = 2e-3
    pretrain_qa_fraction: float = 0.5  # fraction of each pretraining batch that is direct question answering
    freeze_vision: bool = True  # after stage 0a the vision tower stays fixed (like a pretrained encoder)
    steps: int = 600  # stage 1 (teacher-forced latents; all fine-tuning steps for ``text``)
    recurrent_steps: int = 600  # stage 2 (latents computed by the model)
    batch_size: int = 32
    lr: float = 2e-3
    recurrent_lr: float = 5e-4
    weight_decay: float = 0.01
    warmup: int = 50
    targets: str = "evidence"  # alignment targets: "evidence" or "rows" (see alignment_targets)
    align_weight: float = 1.0
    recurrent_align_weight: float = 0.1
    grad_clip: float = 1.0
    eval_batch_size: int = 100
    n_first: int = 100  # also record the accuracy on the first ``n_first`` test examples
    max_new_tokens: int = 16  # the runner's budget counts every position after the prompt


DEFAULT_ARGS: dict[str, TrainArgs] = {
    "mediated": TrainArgs(),
    "bypass": TrainArgs(),
    "blind": TrainArgs(steps=0, recurrent_steps=1200),
    "free": TrainArgs(),
    "text": TrainArgs(steps=1200, recurrent_steps=0),
}


# ----------------------------------------------------------------------------- encoding


@dataclass
class _Encoded:
    ids: list[int]
    segs: list[int]
    labels: list[int]  # labels[p]: the token position p must predict (IGNORE: none)
    image: np.ndarray
    evidence: list[int] | None = None  # per latent: the grid cell it is aligned with (-1: the empty background)
    occupied: list[int] | None = None  # grid cells holding an object


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
    evidence: Int[Tensor, "b k"] | None = None
    occupied: Bool[Tensor, "b 16"] | None = None

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
            labels[-1] = t["<|caption|>"]
            tail = [(t["<|caption|>"], S.OPEN)] + [(w, S.LATENT) for w in _word_ids(tokenizer, caption_for(ex))]
            tail += [(t["<|caption_end|>"], S.CLOSE)]
        else:
            labels[-1] = t["<|latent_start|>"]
            tail = [(t["<|latent_start|>"], S.OPEN)] + [(t["<|latent_pad|>"], S.LATENT)] * k_lat
            tail += [(t["<|latent_end|>"], S.CLOSE)]
        tail += [(answer[0], S.GEN)]
        for i, (tok, seg) in enumerate(tail):
            ids.append(tok)
            segs.append(seg)
            nxt = tail[i + 1] if i + 1 < len(tail) else (t["<eos>"], None)
            # latent slots are fed vectors, not predicted tokens: no label before a slot or the forced close
            labels.append(IGNORE if variant != "text" and nxt[1] in (S.LATENT, S.CLOSE) else nxt[0])
        out.append(_Encoded(ids, segs, labels, ex.image(), evidence_cells(ex, k_lat),
                            [o.row * IMAGE_SIDE + o.col for o in ex.scene.objects]))
    return out


def evidence_cells(example: ToyExample, k: int = 4) -> list[int]:
    """The grid cells (row-major index) the ``k`` latents are aligned with under ``targets="evidence"``.

    Object questions: the queried object's cell for every latent. Counting questions: the cells
    of the asked colour in reading order, then the empty background (-1).
    """
    t = example.target
    if t is not None:
        return [t.row * IMAGE_SIDE + t.col] * k
    cells = [o.row * IMAGE_SIDE + o.col for o in example.scene.objects if o.colour == example.query_word]
    return (cells + [-1] * k)[:k]


def scene_caption(example: ToyExample) -> str:
    """Every object of the scene in reading order: ``"{colour} {shape} {size} row {r} col {c}"`` each."""
    from latentprobe.toy.shapes import NUMBER_WORDS

    return " ".join(f"{o.colour} {o.shape} {o.size} row {NUMBER_WORDS[o.row + 1]} col {NUMBER_WORDS[o.col + 1]}"
                    for o in example.scene.objects)


def encode_pretraining(tokenizer: Any, examples: Sequence[ToyExample]) -> tuple[list[_Encoded], list[_Encoded]]:
    """Base-model sequences: scene captions (``<|vision_start|> image caption <eos>``, one per image) and
    direct answers (``question <|vision_start|> image answer <eos>``, one per question)."""
    t = _token_ids(tokenizer)
    vs = int(tokenizer.convert_tokens_to_ids("<|vision_start|>"))
    caps, seen = [], set()
    for ex in examples:
        if ex.image_id in seen:
            continue
        seen.add(ex.image_id)
        ids = [vs] + [t["<|image_pad|>"]] * NUM_IMAGE_TOKENS
        segs = [S.TEXT] + [S.IMAGE] * NUM_IMAGE_TOKENS
        words = _word_ids(tokenizer, scene_caption(ex))
        labels = [IGNORE] * (len(ids) - 1) + words + [t["<eos>"]]
        ids += words
        segs += [S.GEN] * len(words)
        caps.append(_Encoded(ids, segs, labels, ex.image()))
    qa = []
    for ex in examples:
        prompt = _word_ids(tokenizer, prompt_for(ex.question))
        ids: list[int] = []
        for tok in prompt:
            ids.extend([tok] * NUM_IMAGE_TOKENS if tok == t["<|image_pad|>"] else [tok])
        segs = [S.IMAGE if tok == t["<|image_pad|>"] else S.TEXT for tok in ids]
        answer = _word_ids(tokenizer, ex.answer)
        labels = [IGNORE] * (len(ids) - 1) + answer + [t["<eos>"]]
        qa.append(_Encoded(ids + answer, segs + [S.GEN], labels, ex.image()))
    return caps, qa


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
    pv, grid = image_pixel_values([it.image for it in items])
    image_mask = segs == S.IMAGE
    with torch.no_grad():
        pos, _ = model.model.get_rope_index(ids, mm_token_type_ids=image_mask.long(), image_grid_thw=grid,
                                            attention_mask=valid)
    lat = segs == S.LATENT
    latent_pos = None
    if lat.any() and bool((lat == lat[:1]).all()):
        latent_pos = torch.nonzero(lat[0]).flatten()
    evidence = occupied = None
    if all(it.evidence is not None for it in items):
        evidence = torch.tensor([it.evidence for it in items], dtype=torch.long)
        occupied = torch.zeros(B, IMAGE_SIDE * IMAGE_SIDE, dtype=torch.bool)
        for b, it in enumerate(items):
            occupied[b, it.occupied] = True
    return Batch(ids, segs, valid, labels, pos, pv, grid, image_mask, latent_pos, evidence, occupied)


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


def alignment_targets(image_embeds: Tensor, batch: Batch, norm_weight: Tensor, kind: str = "evidence"
                      ) -> Float[Tensor, "b k d"]:
    """The vectors the latents are aligned with, rescaled to ``|norm.weight|`` (the scale of ``h``).

    ``"evidence"`` (the default): latent ``k`` <- the feature of the grid cell the question is
    about (:func:`evidence_cells`; the mean of the empty cells for "nothing there"). ``"rows"``:
    latent ``k`` <- the mean merged image feature of grid row ``k``.
    """
    assert batch.latent_pos is not None
    B, k = batch.shape[0], len(batch.latent_pos)
    d = image_embeds.shape[-1]
    cells = image_embeds.reshape(B, IMAGE_SIDE * IMAGE_SIDE, d)
    if kind == "rows":
        if k > IMAGE_SIDE:
            raise ValueError(f"'rows' targets need K <= {IMAGE_SIDE} latents")
        out = cells.reshape(B, IMAGE_SIDE, IMAGE_SIDE, d).mean(dim=2)[:, :k]
    elif kind == "evidence":
        if batch.evidence is None or batch.occupied is None:
            raise ValueError("'evidence' targets need a batch built from encode_examples")
        empty = (~batch.occupied).to(cells.dtype)
        background = (cells * empty[..., None]).sum(1) / empty.sum(1, keepdim=True).clamp_min(1.0)
        ev = batch.evidence
        picked = cells.gather(1, ev.clamp_min(0)[..., None].expand(-1, -1, d))
        out = torch.where((ev >= 0)[..., None], picked, background[:, None].expand(-1, k, -1))
    else:
        raise ValueError(f"unknown alignment targets {kind!r}; use 'rows' or 'evidence'")
    scale = norm_weight.detach().norm()
    return out / out.norm(dim=-1, keepdim=True).clamp_min(1e-6) * scale


def _ce(logits: Tensor, labels: Tensor) -> Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=IGNORE)


def _align(h_src: Tensor, targets: Tensor) -> Tensor:
    return (1.0 - F.cosine_similarity(h_src.float(), targets.detach().float(), dim=-1)).mean()


# ----------------------------------------------------------------------------- evaluation


def evaluate(model: torch.nn.Module, tokenizer: Any, variant: str, examples: Sequence[ToyExample], *,
             batch_size: int = 100, max_new_tokens: int = 16) -> list[str]:
    """Greedy answers of ``model`` through :class:`LatentRunner` (the inference protocol)."""
    from latentprobe.engine import LatentRunner

    if not examples:
        return []
    runner = LatentRunner(model, tokenizer, toy_spec(variant), mask_rule=mask_rule(variant))
    trace = runner.run([prompt_for(e.question) for e in examples], [e.image() for e in examples],
                       example_ids=[e.example_id for e in examples], max_new_tokens=max_new_tokens,
                       batch_size=batch_size, progress=False)
    return trace.answers


EVAL_THREADS = 1  # evaluation runs single-threaded: reproducible and robust on a busy machine


def measure_accuracy(model: torch.nn.Module, tokenizer: Any, variant: str, test: Sequence[ToyExample],
                     args: TrainArgs) -> dict[str, Any]:
    """The accuracy fields of the JSON record: greedy runner answers on the whole test split."""
    with _deterministic(EVAL_THREADS):
        t1 = time.perf_counter()
        answers = evaluate(model, tokenizer, variant, test, batch_size=args.eval_batch_size,
                           max_new_tokens=args.max_new_tokens)
        seconds = time.perf_counter() - t1
    n_first = min(args.n_first, len(test))
    return {
        "test_accuracy": _accuracy(answers, test),
        "n_first": n_first,
        "test_accuracy_first": _accuracy(answers[:n_first], test[:n_first]),
        "test_accuracy_by_template": _by_template(answers, test),
        "eval_threads": EVAL_THREADS,
        "eval_seconds": round(seconds, 1),
    }


def reevaluate(folder: str | Path, variant: str) -> dict[str, Any]:
    """Measure the saved weights of ``variant`` in ``folder`` again and update the accuracy fields of its JSON."""
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


def _accuracy(answers: Sequence[str], examples: Sequence[ToyExample]) -> float:
    if not examples:
        return 0.0
    return float(np.mean([a == e.answer for a, e in zip(answers, examples)]))


# ----------------------------------------------------------------------------- persistence


def save_weights(model: torch.nn.Module, path: str | Path) -> str:
    """Write the model's weights as float16 safetensors (the tied ``lm_head`` is not stored); returns sha256."""
    from safetensors.torch import save_file

    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    # a single metadata entry: the header (and so the file's hash) is then the same on every save
    save_file(sd, str(path), metadata={"format": "pt"})
    Path(path).chmod(0o644)
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


def cell_labels(example: ToyExample) -> Int[Tensor, "16 3"]:
    """Per merged image token (grid cell, row-major): colour, shape and size class (0: empty)."""
    from latentprobe.toy.shapes import COLOURS, SHAPES, SIZES

    lab = torch.zeros(IMAGE_SIDE * IMAGE_SIDE, 3, dtype=torch.long)
    for o in example.scene.objects:
        lab[o.row * IMAGE_SIDE + o.col] = torch.tensor(
            [COLOURS.index(o.colour) + 1, SHAPES.index(o.shape) + 1, SIZES.index(o.size) + 1])
    return lab


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

    Returns
    -------
    dict: the metadata written to the JSON file. With ``return_model`` also ``"model"`` (holding the
    float16-rounded weights that were evaluated and saved), ``"tokenizer"`` and ``"state_dict"``
    (the float32 weights as trained).
    """
    mask_rule(variant)
    fields = set(asdict(DEFAULT_ARGS[variant]))
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(f"train_variant() got unknown argument(s) {unknown}; TrainArgs fields are {sorted(fields)}")
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
    """Train and save every variant (the base model is trained once and shared); returns their metadata."""
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
