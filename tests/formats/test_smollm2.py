"""SmolLM2-135M-Instruct's real weights load from the packaged GGUF and answer like a trained model."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.slow  # GGUF parsing: about a minute per session on two cores


def test_architecture_is_the_published_one(smollm2):
    config = smollm2.model.config
    assert type(smollm2.model).__name__ == "LlamaForCausalLM"
    assert (config.hidden_size, config.num_hidden_layers, config.vocab_size) == (576, 30, 49152)
    assert (config.num_attention_heads, config.num_key_value_heads) == (9, 3) and config.tie_word_embeddings
    assert sum(p.numel() for p in smollm2.model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    print(f"SmolLM2 load: tokenizer {smollm2.tokenizer_seconds:.1f} s, model {smollm2.model_seconds:.1f} s")


def test_chat_template(smollm2):
    tok = smollm2.tokenizer
    assert (tok.eos_token, tok.bos_token, len(tok)) == ("<|im_end|>", "<|im_start|>", 49152)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
                    "<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")
    ids = tok(text, add_special_tokens=False).input_ids
    assert ids[0] == tok.convert_tokens_to_ids("<|im_start|>") and tok.decode(ids) == text


def test_greedy_answers_like_a_trained_model(smollm2):
    tok, model = smollm2.tokenizer, smollm2.model
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=10, do_sample=False, pad_token_id=tok.eos_token_id)
    answer = tok.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer
    # a plain continuation too: the top next token after the prompt is " Paris" (a random body would not)
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    with torch.inference_mode():
        logits = model(ids).logits[0, -1]
    assert tok.decode(int(logits.argmax())).strip() == "Paris"
