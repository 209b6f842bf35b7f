"""Word-level tokenizer for the toy shapes task, built offline with ``tokenizers``.

Ids: the special tokens in :data:`SPECIAL_TOKENS` order (``<pad>`` is 0), then the
words of :data:`WORDS`.  Text is split on whitespace only, so questions such as
``"what colour is the circle ?"`` are sequences of whole words and ``decode`` returns
the words joined by single spaces.
"""

from __future__ import annotations

from os import PathLike
from typing import Iterable

from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit
from transformers import PreTrainedTokenizerFast

from latentprobe.toy.shapes import (
    ANSWERS,
    NUMBER_WORDS,
    SIZES,
    TEMPLATES,
    ToyExample,
)
from latentprobe.errors import InputError

__all__ = [
    "CAPTION_END_TOKEN",
    "CAPTION_TOKEN",
    "IMAGE_PAD_TOKEN",
    "LATENT_END_TOKEN",
    "LATENT_PAD_TOKEN",
    "LATENT_START_TOKEN",
    "SPECIAL_TOKENS",
    "VISION_END_TOKEN",
    "VISION_START_TOKEN",
    "WORDS",
    "build_tokenizer",
    "caption_for",
    "special_token_ids",
]

PAD_TOKEN = "<pad>"
EOS_TOKEN = "<eos>"
UNK_TOKEN = "<unk>"
VISION_START_TOKEN = "<|vision_start|>"
VISION_END_TOKEN = "<|vision_end|>"
IMAGE_PAD_TOKEN = "<|image_pad|>"
LATENT_START_TOKEN = "<|latent_start|>"
LATENT_END_TOKEN = "<|latent_end|>"
LATENT_PAD_TOKEN = "<|latent_pad|>"
CAPTION_TOKEN = "<|caption|>"
CAPTION_END_TOKEN = "<|caption_end|>"

SPECIAL_TOKENS: tuple[str, ...] = (
    PAD_TOKEN,
    EOS_TOKEN,
    UNK_TOKEN,
    VISION_START_TOKEN,
    VISION_END_TOKEN,
    IMAGE_PAD_TOKEN,
    LATENT_START_TOKEN,
    LATENT_END_TOKEN,
    LATENT_PAD_TOKEN,
    CAPTION_TOKEN,
    CAPTION_END_TOKEN,
)

_CAPTION_WORDS = ("row", "col", "at", "shapes", "object", "left", "of")


def _ordered_words() -> tuple[str, ...]:
    words: list[str] = list(ANSWERS) + list(SIZES) + list(NUMBER_WORDS)
    for fmt in TEMPLATES.values():
        words += [w for w in fmt.split() if not w.startswith("{")]
    words += list(_CAPTION_WORDS)
    return tuple(dict.fromkeys(words))


#: Non-special vocabulary in id order (after the special tokens).
WORDS: tuple[str, ...] = _ordered_words()


def build_tokenizer(
    save_dir: str | PathLike[str] | None = None, extra_words: Iterable[str] = ()
) -> PreTrainedTokenizerFast:
    """Build the toy word-level tokenizer (deterministic; no network).

    ``extra_words`` are appended after :data:`WORDS` (in the given order, duplicates
    dropped).  If ``save_dir`` is given the tokenizer is written there with
    ``save_pretrained`` and can be reloaded offline with
    ``PreTrainedTokenizerFast.from_pretrained(save_dir)``.

    Parameters
    ----------
    save_dir : str | PathLike[str] | None
        Also save it there.
    extra_words : Iterable[str]
        Words added to the vocabulary.

    Returns
    -------
    PreTrainedTokenizerFast
    """
    words = list(dict.fromkeys([*WORDS, *extra_words]))
    clash = [w for w in words if w in SPECIAL_TOKENS or not w or any(ch.isspace() for ch in w)]
    if clash:
        raise InputError(f"invalid vocabulary words: {clash}")
    vocab = {tok: i for i, tok in enumerate([*SPECIAL_TOKENS, *words])}
    backend = Tokenizer(WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    backend.pre_tokenizer = WhitespaceSplit()
    backend.add_special_tokens(list(SPECIAL_TOKENS))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        clean_up_tokenization_spaces=False,
        model_input_names=["input_ids", "attention_mask"],
    )
    if save_dir is not None:
        tokenizer.save_pretrained(str(save_dir))
    return tokenizer


def special_token_ids(tokenizer: PreTrainedTokenizerFast) -> dict[str, int]:
    """Map every entry of :data:`SPECIAL_TOKENS` to its id.

    Parameters
    ----------
    tokenizer : PreTrainedTokenizerFast
        The toy tokenizer.

    Returns
    -------
    dict[str, int]
    """
    return {tok: int(tokenizer.convert_tokens_to_ids(tok)) for tok in SPECIAL_TOKENS}


def caption_for(example: ToyExample) -> str:
    """A short caption of the queried object (text imagination for a caption variant).

    Object questions: ``"{colour} {shape} {size} row {r} col {c}"`` with one-based row
    and column words, e.g. ``"red circle large row two col three"``.  Counting
    questions: ``"{count} {colour} shapes"``, e.g. ``"two red shapes"``.

    Parameters
    ----------
    example : ToyExample
        A toy example.

    Returns
    -------
    str
    """
    target = example.target
    if target is None:
        return f"{example.answer} {example.query_word} shapes"
    return (
        f"{target.colour} {target.shape} {target.size} "
        f"row {NUMBER_WORDS[target.row + 1]} col {NUMBER_WORDS[target.col + 1]}"
    )

