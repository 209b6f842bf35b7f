"""The offline Qwen2.5-VL tokenizer is the real one: published encodings, ids, template and file layout."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import regex

import pytest
from transformers import AutoTokenizer

from .qwen_tokenizer import (
    CHAT_TEMPLATE, FAMILY_TOKENS, FIRST_SPECIAL_ID, N_RANKS, QWEN2_PATTERN, QWEN2_5_VL_SPECIALS,
    _tokens_from_ranks, build_qwen_tokenizer, cached_qwen_tokenizer, ranks_file,
)

# Published encodings. "Hello world": the brief's reference. The rest: golden vectors of a Java tokenizer test
# (se.alipsa.jmlx HfTokenizerTest) run on the unmodified Qwen/Qwen2.5-0.5B-Instruct tokenizer.json.
KNOWN = {
    "Hello world": [9707, 1879],
    "Hello, world!": [9707, 11, 1879, 0],
    "The quick brown fox": [785, 3974, 13876, 38835],
    "  spaces\n": [220, 12621, 198],
}

# transformers' Qwen2.5-VL-7B-Instruct integration test (tests/models/qwen2_5_vl/test_modeling_qwen2_5_vl.py:379):
# the first 17 ids of the chat-templated prompt "[image] What kind of dog is this?" after image-pad expansion.
QWEN25_VL_PROMPT_PREFIX = [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198, 151644, 872, 198,
                           151652, 151655, 151655]


# ids the authors' inference code hard-codes (docs/published-protocols.md): Monet
# inference/apply_vllm_monet.py:9-10; Mirage transformers/src/transformers/generation/utils.py:3370-3372.
HARD_CODED = {"monet": {"<abs_vis_token>": 151666, "</abs_vis_token>": 151667},
              "mirage": {"<|latent_pad|>": 151665, "<|latent_start|>": 151666, "<|latent_end|>": 151667}}


def test_ranks_file_is_the_qwen2_vocabulary():
    lines = ranks_file().read_bytes().splitlines()
    assert len(lines) == N_RANKS
    assert lines[0].split()[1] == b"0" and lines[-1].split()[1] == str(N_RANKS - 1).encode()


SPECIAL_IDS = {content: FIRST_SPECIAL_ID + i for i, (content, _) in enumerate(QWEN2_5_VL_SPECIALS)}


def _tiktoken_reference(text: str, ranks: dict[bytes, int]) -> list[int]:
    """What the package's own ``QwenTokenizer.encode`` computes (NFC; specials matched first; tiktoken: split
    with the pattern, then merge the adjacent pair of lowest rank while one is in the vocabulary), in Python."""
    ids = []
    specials = "(" + "|".join(regex.escape(t) for t in SPECIAL_IDS) + ")"
    for chunk in regex.split(specials, unicodedata.normalize("NFC", text)):
        if chunk in SPECIAL_IDS:
            ids.append(SPECIAL_IDS[chunk])
        else:
            ids.extend(_tiktoken_chunk(chunk, ranks))
    return ids


def _tiktoken_chunk(text: str, ranks: dict[bytes, int]) -> list[int]:
    ids = []
    for piece in regex.findall(QWEN2_PATTERN, text):
        parts = [bytes([b]) for b in piece.encode("utf-8")]
        while len(parts) > 1:
            rank, i = min((ranks.get(parts[i] + parts[i + 1], N_RANKS), i) for i in range(len(parts) - 1))
            if rank == N_RANKS:
                break
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        ids.extend(ranks[p] for p in parts)
    return ids


def test_same_split_pattern_as_the_package():
    source = (ranks_file().parent.parent / "qwen_tokenizer.py").read_text(encoding="utf-8")
    assert f'PAT_STR = r"""{QWEN2_PATTERN}"""' in source


def test_encodings_equal_the_packages_tiktoken_algorithm(qwen_tokenizer):
    ranks = _tokens_from_ranks(str(ranks_file()))
    root = Path(__file__).resolve().parents[2]
    text = "\n".join((root / name).read_text(encoding="utf-8")
                     for name in ("README.md", "docs/published-protocols.md"))
    text += ("\nnaïve café 東京 ｆｕｌｌ-width, e\u0301 (NFD), tabs\t\tand  spaces   \r\n 12345678 ∑ 🙂"
             " don't I'M <|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|><|im_end|>")
    lines = text.splitlines(keepends=True)
    assert len(lines) > 100
    for line in lines:  # line by line, so a difference points at its line
        assert qwen_tokenizer(line).input_ids == _tiktoken_reference(line, ranks), line


@pytest.mark.parametrize("text", list(KNOWN))
def test_known_encodings(qwen_tokenizer, text):
    assert qwen_tokenizer(text).input_ids == KNOWN[text]
    assert qwen_tokenizer.decode(KNOWN[text]) == text


def test_digits_split_one_per_token(qwen_tokenizer):
    # Qwen2's regex takes \p{N} one at a time (tiktoken's cl100k groups three).
    assert qwen_tokenizer(" 2024").input_ids == [220, 17, 15, 17, 19]


def test_every_special_has_its_published_id(qwen_tokenizer):
    assert len(QWEN2_5_VL_SPECIALS) == 22
    for offset, (content, special) in enumerate(QWEN2_5_VL_SPECIALS):
        token_id = FIRST_SPECIAL_ID + offset
        assert qwen_tokenizer.convert_tokens_to_ids(content) == token_id
        assert qwen_tokenizer.added_tokens_decoder[token_id].special is special
    named = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, "<|vision_start|>": 151652,
             "<|vision_end|>": 151653, "<|vision_pad|>": 151654, "<|image_pad|>": 151655, "<|video_pad|>": 151656,
             "<|file_sep|>": 151664}
    assert {t: qwen_tokenizer.convert_tokens_to_ids(t) for t in named} == named
    assert len(qwen_tokenizer) == 151665
    assert (qwen_tokenizer.eos_token, qwen_tokenizer.pad_token) == ("<|im_end|>", "<|endoftext|>")
    assert qwen_tokenizer.bos_token is None and qwen_tokenizer.unk_token is None


def test_template_renders_system_user_image_generation_prompt(qwen_tokenizer):
    messages = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What kind of dog is this?"}]}]
    text = qwen_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                    "<|vision_start|><|image_pad|><|vision_end|>What kind of dog is this?<|im_end|>\n"
                    "<|im_start|>assistant\n")
    # without a system turn the template adds the default one; ids match transformers' integration test
    default = qwen_tokenizer.apply_chat_template(messages[1:], tokenize=False, add_generation_prompt=True)
    assert default == text
    ids = qwen_tokenizer(default.replace("<|image_pad|>", "<|image_pad|>" * 4)).input_ids
    assert ids[:17] == QWEN25_VL_PROMPT_PREFIX


def test_template_matches_transformers_docs_multi_turn(qwen_tokenizer):
    # docs/source/en/model_doc/qwen2_5_vl.md:236 (transformers), the documented rendering of this conversation
    conversation = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hello, how are you?"}]},
        {"role": "assistant", "content": "I'm doing well, thank you for asking. How can I assist you today?"},
        {"role": "user", "content": [{"type": "text", "text": "Can you describe these images and video?"},
                                     {"type": "image"}, {"type": "image"}, {"type": "video"},
                                     {"type": "text", "text": "These are from my vacation."}]},
    ]
    text = qwen_tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True,
                                              add_vision_id=True)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "Picture 1: <|vision_start|><|image_pad|><|vision_end|>Hello, how are you?<|im_end|>\n"
        "<|im_start|>assistant\nI'm doing well, thank you for asking. How can I assist you today?<|im_end|>\n"
        "<|im_start|>user\nCan you describe these images and video?Picture 2: <|vision_start|><|image_pad|>"
        "<|vision_end|>Picture 3: <|vision_start|><|image_pad|><|vision_end|>Video 1: <|vision_start|>"
        "<|video_pad|><|vision_end|>These are from my vacation.<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.parametrize("family", [f for f in FAMILY_TOKENS if FAMILY_TOKENS[f]])
def test_family_tokens_in_training_order(family):
    tok = build_qwen_tokenizer(family)
    expected = {token: 151665 + i for i, token in enumerate(FAMILY_TOKENS[family])}
    assert {t: tok.convert_tokens_to_ids(t) for t in expected} == expected
    assert len(tok) == 151665 + len(expected)
    for token, token_id in expected.items():  # added as special: one piece, dropped by skip_special_tokens
        assert tok(f"a{token}b").input_ids == [64, token_id, 65]
        assert tok.added_tokens_decoder[token_id].special
    assert tok.decode([9707, *expected.values()], skip_special_tokens=True) == "Hello"
    assert {t: expected[t] for t in HARD_CODED.get(family, {})} == HARD_CODED.get(family, {})


def test_saved_files_have_the_published_layout(qwen_tokenizer_dir, qwen_tokenizer):
    folder = cached_qwen_tokenizer(qwen_tokenizer_dir, "mirage")
    assert sorted(p.name for p in folder.iterdir()) == [
        "chat_template.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "Qwen2Tokenizer" and config["chat_template"] == CHAT_TEMPLATE
    assert (config["eos_token"], config["pad_token"], config["bos_token"]) == ("<|im_end|>", "<|endoftext|>", None)
    assert config["added_tokens_decoder"]["151667"]["content"] == "<|latent_end|>"
    backend = json.loads((folder / "tokenizer.json").read_text())
    assert backend["model"]["type"] == "BPE" and backend["normalizer"]["type"] == "NFC"
    assert backend["model"]["merges"][0] == "Ġ Ġ"  # the published string form; ranks 0..255 are the bytes
    assert [p["type"] for p in backend["pre_tokenizer"]["pretokenizers"]] == ["Split", "ByteLevel"]
    reloaded = AutoTokenizer.from_pretrained(folder)
    assert type(reloaded).__name__ == "Qwen2Tokenizer" and reloaded.chat_template == CHAT_TEMPLATE
    head, tail = "<|im_start|>user\nHéllo wörld 123, ", "\n\n  "
    text = f"{head}<|latent_start|>x<|latent_pad|><|latent_end|>{tail}"
    base = qwen_tokenizer
    assert reloaded(text).input_ids == [*base(head).input_ids, 151666, *base("x").input_ids, 151665, 151667,
                                        *base(tail).input_ids]
    assert reloaded.decode(reloaded(text).input_ids) == text
