"""Attention rows on SmolLM2-135M-Instruct's real weights (grouped-query heads: 9 query, 3 key/value; sdpa) equal
the eager attention weights, and its chat template's system turn is read as its own region."""

from __future__ import annotations

import copy

import pytest
import torch

from latentprobe import LatentRunner
from latentprobe.engine.loading import COCONUT_TOKENS
from latentprobe.engine.modes import _row_from_example
from latentprobe.engine.protocol import ProtocolState
from latentprobe.presets import get_preset
from latentprobe.readouts import attention
from latentprobe.readouts.attention import REGIONS, attention_rows, key_regions, query_positions

pytestmark = pytest.mark.slow

QUESTIONS = ["What is 2 plus 3?", "Which animal barks?"]


@pytest.fixture(scope="module")
def run(smollm2):
    tok = copy.deepcopy(smollm2.tokenizer)
    model = copy.deepcopy(smollm2.model)
    for t in COCONUT_TOKENS:
        tok.add_tokens(t)
    model.resize_token_embeddings(len(tok), mean_resizing=False)
    start, _, lat = (tok.convert_tokens_to_ids(t) for t in COCONUT_TOKENS)
    end = tok.convert_tokens_to_ids(COCONUT_TOKENS[1])
    prompts = []
    for q in QUESTIONS:
        chat = tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=True)
        chat = list(chat["input_ids"] if hasattr(chat, "keys") else chat)
        prompts.append(chat + [start] + [lat] * 3 + [end])
    runner = LatentRunner(model.eval(), tok, get_preset("coconut", num_latents=3))
    return runner, runner.run(prompts, max_new_tokens=4, progress=False)


def test_real_weights_rows_equal_eager(run):
    runner, trace = run
    cfg = runner.model.config
    assert cfg._attn_implementation == "sdpa" and cfg.num_attention_heads == 3 * cfg.num_key_value_heads
    eager = copy.deepcopy(runner.model)  # the same weights (GGUF-loaded models cannot be saved), eager attention
    eager.set_attn_implementation("eager")
    assert eager.config._attn_implementation == "eager" and runner.model.config._attn_implementation == "sdpa"
    layers = [0, 14, runner.n_layers - 1]
    for e in trace:
        pos = [p for _, _, p in query_positions(e, ("latents", "close", "answer"))]
        rows = attention_rows(runner, e, pos, layers=layers)
        dec = runner._decoder
        row = _row_from_example(e, e.seq_len, ProtocolState())
        embeds, mask, pids, _, _ = dec.embed_prefix([row])
        with torch.no_grad():
            ref = eager(inputs_embeds=embeds, attention_mask=mask, position_ids=pids, output_attentions=True,
                        use_cache=False).attentions
        for layer in layers:
            want = ref[layer][0][:, pos].float()
            assert float((rows[layer] - want).abs().max()) <= 1e-5, layer
            torch.testing.assert_close(rows[layer].sum(-1), torch.ones(want.shape[:2]), rtol=0, atol=1e-5)


def test_system_turn_is_a_region(run):
    runner, trace = run
    e = trace[0]
    codes = key_regions(e, tokenizer=runner.tokenizer)
    text = runner.tokenizer.decode(e.input_ids[codes == REGIONS.index("system")])
    assert text.startswith("system") and "SmolLM" in text  # the template's default system prompt
    question = runner.tokenizer.decode(e.input_ids[codes == REGIONS.index("question")])
    assert "What is 2 plus 3?" in question and "SmolLM" not in question
    res = attention(runner, trace, queries=("latents",), layers=[0])
    assert float(res.table.query("region == 'system'")["mass"].min()) > 0.0
