"""Tiny random-weight models in the real architecture classes, with offline tokenizers."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from latentprobe.engine import ForceOpen

SPECIALS = [
    "<pad>", "<eos>", "<unk>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
    "<abs_vis_token>", "</abs_vis_token>", "<|lvr_start|>", "<|lvr_end|>",
    "<|latent_start|>", "<|latent_end|>", "<|latent_pad|>",
    "<|start-latent|>", "<|end-latent|>", "<|latent|>", "<bot>", "<eot>",
]
WORDS = ["what", "colour", "is", "the", "circle", "square", "red", "green", "blue", "?", "a", "b", "c", "d",
         "one", "two", "three", "four", "five", "six", "answer", ":"]


def make_tokenizer(extra_specials: tuple[str, ...] = ()) -> PreTrainedTokenizerFast:
    vocab = {t: i for i, t in enumerate(SPECIALS + list(extra_specials) + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>",
                                   clean_up_tokenization_spaces=False)
    fast.add_special_tokens({"additional_special_tokens": SPECIALS[3:] + list(extra_specials)})
    return fast


def tiny_qwen_vl(tokenizer, seed: int = 0, hidden: int = 64, layers: int = 2):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(seed)
    v = tokenizer.get_vocab()
    cfg = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=len(v), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                          "mrope_section": [2, 3, 3]},
                         max_position_embeddings=512, bos_token_id=None, eos_token_id=v["<eos>"],
                         pad_token_id=v["<pad>"]),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=hidden,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, in_channels=3,
                           window_size=56, fullatt_block_indexes=[0]),
        image_token_id=v["<|image_pad|>"], video_token_id=v["<unk>"],
        vision_start_token_id=v["<|vision_start|>"], vision_end_token_id=v["<|vision_end|>"],
    )
    cfg.architectures = ["Qwen2_5_VLForConditionalGeneration"]
    m = Qwen2_5_VLForConditionalGeneration(cfg).eval()
    return m


def tiny_gpt2(tokenizer, seed: int = 0, hidden: int = 64, layers: int = 2):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    v = tokenizer.get_vocab()
    cfg = GPT2Config(vocab_size=len(v), n_positions=256, n_embd=hidden, n_layer=layers, n_head=4,
                     bos_token_id=v["<eos>"], eos_token_id=v["<eos>"], pad_token_id=v["<pad>"])
    cfg.architectures = ["GPT2LMHeadModel"]
    return GPT2LMHeadModel(cfg).eval()


def tiny_llama(tokenizer, seed: int = 0, hidden: int = 64, layers: int = 2):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    v = tokenizer.get_vocab()
    cfg = LlamaConfig(vocab_size=len(v), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      bos_token_id=None, eos_token_id=v["<eos>"], pad_token_id=v["<pad>"])
    cfg.architectures = ["LlamaForCausalLM"]
    return LlamaForCausalLM(cfg).eval()


def force_open(tokenizer, open_token: str, at_step: dict[int, int] | int, prompt_lens: dict[int, int]):
    """:class:`latentprobe.engine.ForceOpen`: emit ``open_token`` as the k-th token after the prompt (k per
    example index), never otherwise, and never end early. Stateless, so resumed runs see the same rule."""
    return ForceOpen(open_id=tokenizer.convert_tokens_to_ids(open_token), eos_id=tokenizer.eos_token_id,
                     at=at_step, prompt_lens=prompt_lens)
