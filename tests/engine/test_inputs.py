"""Prompts and images into rows: chat messages, conventions, image-token runs, BOS."""

from __future__ import annotations

import pytest
import torch
from tokenizers import processors

from latentprobe.engine import LatentRunner, PromptConvention
from latentprobe.engine.inputs import expand_image_tokens, is_messages, render_messages
from latentprobe.errors import ImageBatchError, InputError
from tiny import make_tokenizer, tiny_llama

TEMPLATE = ("{% for m in messages %}<|latent_start|> {{ m['content'] if m['content'] is string else "
            "m['content'][0]['text'] }} <|latent_end|> {% endfor %}{% if add_generation_prompt %}answer :{% endif %}")


def test_is_messages():
    assert is_messages([{"role": "user", "content": "a"}])
    assert not is_messages("a") and not is_messages([1, 2]) and not is_messages([])


def test_render_messages_applies_the_convention():
    tok = make_tokenizer()
    tok.chat_template = TEMPLATE
    msgs = [{"role": "user", "content": [{"type": "text", "text": "what is ?"}, {"type": "image", "image": "x"}]}]
    with pytest.raises(InputError, match="message 0, part 1"):  # a path that is not a file
        render_messages(tok, msgs, PromptConvention())
    msgs = [{"role": "user", "content": "what is ?"}]
    text, imgs = render_messages(tok, msgs, PromptConvention(add_generation_prompt=False, suffix=" a b"))
    assert text == "<|latent_start|> what is ? <|latent_end|>  a b" and imgs == []
    text, _ = render_messages(tok, msgs, PromptConvention(image_prefix="c "))
    assert text.endswith("answer :") and not text.startswith("c ")  # the prefix is for prompts with images
    tok.chat_template = None
    with pytest.raises(InputError, match="chat template"):
        render_messages(tok, msgs)


def test_expand_image_tokens_single_and_pre_expanded():
    grid = torch.tensor([[1, 4, 4], [1, 2, 4]])  # 4 and 2 merged tokens
    assert expand_image_tokens([7, 9, 7, 7, 8], 9, grid[:1], 2) == [7, 9, 9, 9, 9, 7, 7, 8]
    assert expand_image_tokens([9, 9, 9, 9, 5, 9], 9, grid, 2) == [9, 9, 9, 9, 5, 9, 9]
    with pytest.raises(ImageBatchError, match="run of 3"):
        expand_image_tokens([9, 9, 9], 9, grid, 2)


def test_add_special_tokens_adds_the_bos():
    tok = make_tokenizer()
    bos = tok.convert_tokens_to_ids("<|vision_start|>")  # any id serves as BOS in this vocabulary
    tok._tokenizer.post_processor = processors.TemplateProcessing(single="<|vision_start|> $A",
                                                                  special_tokens=[("<|vision_start|>", bos)])
    r = LatentRunner(tiny_llama(tok), tok, "codi", projection=torch.nn.Identity())
    with_bos = r.run(["a b"], max_new_tokens=8, add_special_tokens=True, progress=False)
    without = r.run(["a b"], max_new_tokens=8, add_special_tokens=False, progress=False)
    assert with_bos[0].input_ids[0] == bos and without[0].input_ids[0] != bos
    assert with_bos[0].prompt_len == without[0].prompt_len + 1
    # by default the preset's rule: CODI's test.py tokenises with special tokens
    assert r.run(["a b"], max_new_tokens=8, progress=False)[0].input_ids.tolist() == with_bos[0].input_ids.tolist()
