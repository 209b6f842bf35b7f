"""Small checkpoint folders in the published formats, built offline (replaceable by the real-format
fixtures under tests/formats/): a tiny Qwen2.5-VL saved with save_pretrained, its tokenizer with a
Qwen2-VL-style chat template, a preprocessor_config.json; a tiny GPT-2 base; a CODI checkpoint in
the official layout; a Coconut checkpoint under base_causallm."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from tiny import SPECIALS, WORDS, make_tokenizer, tiny_qwen_vl

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CHAT_SPECIALS = ("<|im_start|>", "<|im_end|>", "<|video_pad|>")
CHAT_WORDS = ("user", "assistant", "system", "<image>")


def save_vl_checkpoint(folder: Path, seed: int = 0) -> Path:
    """A tiny Qwen2.5-VL checkpoint folder as ``save_pretrained`` writes it, with tokenizer, chat
    template and ``preprocessor_config.json``."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tok = make_tokenizer(CHAT_SPECIALS + CHAT_WORDS)
    tok.chat_template = CHAT_TEMPLATE
    model = tiny_qwen_vl(tok, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    Qwen2VLImageProcessorPil().save_pretrained(folder)
    return folder


def gpt2_base_tokenizer() -> PreTrainedTokenizerFast:
    """A GPT-2-like tokenizer: words plus ``<eos>``, no pad, no added tokens (so V = len(tokenizer))."""
    vocab = {t: i for i, t in enumerate(WORDS + ["<unk>", "<eos>"])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", bos_token="<eos>", unk_token="<unk>",
                                   clean_up_tokenization_spaces=False)


def save_gpt2_base(folder: Path, seed: int = 0, hidden: int = 64) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = gpt2_base_tokenizer()
    torch.manual_seed(seed)
    v = tok.get_vocab()
    cfg = GPT2Config(vocab_size=len(v), n_positions=256, n_embd=hidden, n_layer=2, n_head=4,
                     bos_token_id=v["<eos>"], eos_token_id=v["<eos>"])
    folder.mkdir(parents=True, exist_ok=True)
    GPT2LMHeadModel(cfg).eval().save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def save_llama_base(folder: Path, seed: int = 0, hidden: int = 64) -> Path:
    """A tiny Llama base whose tokenizer adds ``<s>`` (BOS) with special tokens on, as Llama-3.2's does, and
    whose LM head is tied to the input embedding (as Llama-3.2-1B's)."""
    from tokenizers.processors import TemplateProcessing
    from transformers import LlamaConfig, LlamaForCausalLM

    vocab = {t: i for i, t in enumerate(WORDS + ["<unk>", "<s>", "<eos>"])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="<eos>", unk_token="<unk>",
                                  clean_up_tokenization_spaces=False)
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      bos_token_id=vocab["<s>"], eos_token_id=vocab["<eos>"], tie_word_embeddings=True)
    cfg.architectures = ["LlamaForCausalLM"]
    folder.mkdir(parents=True, exist_ok=True)
    LlamaForCausalLM(cfg).eval().save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


class OfficialCodi(torch.nn.Module):
    """What CODI's ``src/model.py`` builds: ``codi`` (the LoRA-wrapped, resized base) and ``prj``."""

    def __init__(self, base: Path, r: int = 8, alpha: int = 32, seed: int = 0) -> None:
        super().__init__()
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        V = model.config.vocab_size
        self.pad_id, self.bot_id, self.eot_id = V, V + 1, V + 2
        model.resize_token_embeddings(V + 3)
        gpt2 = model.config.model_type == "gpt2"  # train.py:119-138: the targets per base
        targets = (["c_attn", "c_proj", "c_fc"] if gpt2 else
                   ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj", "gate_proj"])
        self.codi = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=r, lora_alpha=alpha, lora_dropout=0.1,
                                                     target_modules=targets, fan_in_fan_out=gpt2,  # GPT-2's Conv1D
                                                     init_lora_weights=True))
        d = model.config.hidden_size
        self.prj = torch.nn.Sequential(torch.nn.Dropout(0.0), torch.nn.Linear(d, d), torch.nn.GELU(),
                                       torch.nn.Linear(d, d))
        self.prj.add_module("ln", torch.nn.LayerNorm(d))
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():  # trained-looking weights: LoRA B is zero at init, the new rows are random
            for n, p in self.named_parameters():
                if "lora_" in n or n.startswith("prj.") or "wte" in n or "embed_tokens" in n:
                    p.add_(torch.randn(p.shape, generator=g) * 0.05)
        self.eval()


def save_codi_checkpoint(folder: Path, base: Path, r: int = 8, safetensors: bool = False) -> OfficialCodi:
    """The official layout: the whole CODI module's state dict (``codi.base_model.model.*``, ``prj.*``)."""
    codi = OfficialCodi(base, r=r)
    folder.mkdir(parents=True, exist_ok=True)
    sd = {k: v.contiguous().clone() for k, v in codi.state_dict().items()}
    if safetensors:
        from safetensors.torch import save_file

        sd = {k: v for k, v in sd.items() if "lm_head" not in k}  # tied to wte, as save_model drops it
        save_file(sd, str(folder / "model.safetensors"))
    else:
        torch.save(sd, folder / "pytorch_model.bin")
    return codi


def save_coconut_checkpoint(path: Path, base: Path, seed: int = 0) -> torch.nn.Module:
    """Coconut's ``run.py`` model (the three tokens added, embeddings resized), saved under ``base_causallm.``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    for t in ("<|start-latent|>", "<|end-latent|>", "<|latent|>"):
        tok.add_tokens(t)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model.resize_token_embeddings(len(tok))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.01)
    torch.save({f"base_causallm.{k}": v.clone() for k, v in model.state_dict().items()}, path)
    return model.eval()


__all__ = ["CHAT_TEMPLATE", "SPECIALS", "save_vl_checkpoint", "save_gpt2_base", "gpt2_base_tokenizer", "save_llama_base",
           "OfficialCodi", "save_codi_checkpoint", "save_coconut_checkpoint"]
