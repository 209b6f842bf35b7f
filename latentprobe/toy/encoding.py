"""Toy training data: encoding examples into full training sequences and collating them into batches.

The sequences are exactly those :class:`~latentprobe.engine.LatentRunner` builds at inference (see
:mod:`latentprobe.toy.training` for the layout and the training stages).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from latentprobe.images import pixel_values as image_pixel_values
from latentprobe.toy.model import mask_rule, prompt_for, toy_spec
from latentprobe.toy.shapes import ToyExample
from latentprobe.toy.vocab import caption_for
from latentprobe.trace import Segment
from latentprobe.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "IGNORE",
    "NUM_IMAGE_TOKENS",
    "IMAGE_SIDE",
    "Batch",
    "encode_examples",
    "encode_pretraining",
    "evidence_cells",
    "scene_caption",
    "cell_labels",
    "collate",
]

S = Segment
IGNORE = -100
NUM_IMAGE_TOKENS = 16  # 112 px image -> grid (1, 8, 8) -> 16 merged tokens
IMAGE_SIDE = 4  # merged tokens per row / column (one per grid cell)


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

    Parameters
    ----------
    input_ids, segments, valid, labels
        ``[b, t]`` ids, segment codes, 1 for real positions, and next-token labels.
    position_ids : Int[Tensor, "3 b t"]
        ``[3, b, t]`` rotary positions.
    pixel_values, image_grid_thw, image_mask
        The images' pixel values, ``[b, 3]`` grids, and the image-token positions.
    latent_pos : Int[Tensor, "k"] | None
        ``[k]`` slot columns (the same in every row); ``None`` for ``text``.
    evidence, occupied
        ``[b, k]`` the cells each latent is aligned with, and ``[b, 16]`` which cells hold an object.
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


def _token_ids(tokenizer: PreTrainedTokenizerBase) -> dict[str, int]:
    names = ("<pad>", "<eos>", "<|image_pad|>", "<|latent_start|>", "<|latent_end|>", "<|latent_pad|>",
             "<|caption|>", "<|caption_end|>")
    return {n: int(tokenizer.convert_tokens_to_ids(n)) for n in names}


def _word_ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode_examples(tokenizer: PreTrainedTokenizerBase, examples: Sequence[ToyExample], variant: str) -> list[_Encoded]:
    """Token ids, segment codes and next-token labels of each example's full sequence.

    The eos token is only a label (the runner never feeds it).

    Parameters
    ----------
    tokenizer : PreTrainedTokenizerBase
        The toy tokenizer.
    examples : Sequence[ToyExample]
        Toy examples.
    variant : str
        One of :data:`~latentprobe.toy.VARIANTS`.

    Returns
    -------
    list
        One encoded sequence per example.
    """
    mask_rule(variant)
    t = _token_ids(tokenizer)
    k_lat = toy_spec(variant).num_latents
    out = []
    for ex in examples:
        prompt = _word_ids(tokenizer, prompt_for(ex.question))
        if prompt.count(t["<|image_pad|>"]) != 1:
            raise InputError(f"prompt of {ex.example_id!r} must hold exactly one <|image_pad|>")
        ids: list[int] = []
        for tok in prompt:
            ids.extend([tok] * NUM_IMAGE_TOKENS if tok == t["<|image_pad|>"] else [tok])
        segs = [S.IMAGE if tok == t["<|image_pad|>"] else S.TEXT for tok in ids]
        labels = [IGNORE] * len(ids)
        answer = _word_ids(tokenizer, ex.answer)
        if len(answer) != 1:
            raise InputError(f"answer {ex.answer!r} is not one token")
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

    Parameters
    ----------
    example : ToyExample
        A toy example.
    k : int
        Number of latents.

    Returns
    -------
    list of int
    """
    t = example.target
    if t is not None:
        return [t.row * IMAGE_SIDE + t.col] * k
    cells = [o.row * IMAGE_SIDE + o.col for o in example.scene.objects if o.colour == example.query_word]
    return (cells + [-1] * k)[:k]


def scene_caption(example: ToyExample) -> str:
    """Every object of the scene in reading order: ``"{colour} {shape} {size} row {r} col {c}"`` each.

    Parameters
    ----------
    example : ToyExample
        A toy example.

    Returns
    -------
    str
    """
    from latentprobe.toy.shapes import NUMBER_WORDS

    return " ".join(f"{o.colour} {o.shape} {o.size} row {NUMBER_WORDS[o.row + 1]} col {NUMBER_WORDS[o.col + 1]}"
                    for o in example.scene.objects)


def encode_pretraining(tokenizer: PreTrainedTokenizerBase, examples: Sequence[ToyExample]) -> tuple[list[_Encoded], list[_Encoded]]:
    """Base-model sequences: scene captions (``<|vision_start|> image caption <eos>``, one per image) and
    direct answers (``question <|vision_start|> image answer <eos>``, one per question).

    Parameters
    ----------
    tokenizer : PreTrainedTokenizerBase
        The toy tokenizer.
    examples : Sequence[ToyExample]
        Toy examples.

    Returns
    -------
    tuple[list, list]
        Caption sequences and direct-answer sequences.
    """
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
    """Left-pad encoded examples and compute pixel values and 3-D rotary positions (as the runner does).

    Parameters
    ----------
    model : torch.nn.Module
        A toy model.
    items : Sequence[_Encoded]
        Encoded examples.
    pad_id : int
        The padding id.

    Returns
    -------
    Batch
    """
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


def cell_labels(example: ToyExample) -> Int[Tensor, "16 3"]:
    """Per merged image token (grid cell, row-major): colour, shape and size class (0: empty).

    Parameters
    ----------
    example : ToyExample
        A toy example.

    Returns
    -------
    Tensor
        ``[16, 3]``.
    """
    from latentprobe.toy.shapes import COLOURS, SHAPES, SIZES

    lab = torch.zeros(IMAGE_SIDE * IMAGE_SIDE, 3, dtype=torch.long)
    for o in example.scene.objects:
        lab[o.row * IMAGE_SIDE + o.col] = torch.tensor(
            [COLOURS.index(o.colour) + 1, SHAPES.index(o.shape) + 1, SIZES.index(o.size) + 1])
    return lab
