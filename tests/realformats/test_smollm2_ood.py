"""The out-of-distribution flag of Z -> Y on SmolLM2-135M-Instruct's real weights in a Coconut-style loop:
``zero``, ``shared_tensor`` and ``replace_noise`` are flagged, a swap between clean examples is not.

The set-up is ``test_smollm2_coconut.py``'s (Coconut's three tokens added to copies of the tokenizer and
model, K latent slots in the prompt), on 48 questions.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from latentprobe import LatentRunner
from latentprobe.causal import default_interventions, z_to_y
from latentprobe.causal.ood import NN_THRESHOLD
from latentprobe.engine.loading import COCONUT_TOKENS, coconut_prompt
from latentprobe.presets import get_preset
from latentprobe.seeding import torch_generator

pytestmark = pytest.mark.slow

K = 3
N = 48
OPS = ("plus", "minus", "times")
ANIMALS = ("dog", "cat", "cow", "horse", "duck", "sheep", "pig", "owl")
ASK = ("What sound does a {} make?", "How many legs does a {} have?", "What does a {} eat?", "Where does a {} live?")


def _questions(n: int) -> list[str]:
    out = []
    for i in range(n):
        if i % 2 == 0:
            out.append(f"What is {2 + (i * 7) % 11} {OPS[(i // 2) % 3]} {1 + (i * 5) % 9}?")
        else:
            out.append(ASK[(i // 2) % 4].format(ANIMALS[(i // 8) % 8]))
    return out


@pytest.fixture(scope="module")
def zy(smollm2):
    tok = copy.deepcopy(smollm2.tokenizer)
    model = copy.deepcopy(smollm2.model)
    for t in COCONUT_TOKENS:
        tok.add_tokens(t)
    old = model.get_input_embeddings().weight.shape[0]
    model.resize_token_embeddings(len(tok), mean_resizing=False)
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        noise = torch.randn(len(tok) - old, emb.shape[1], generator=torch_generator(0, "coconut_tokens"))
        emb[old:] = emb[:old].mean(0) + 0.01 * noise
    runner = LatentRunner(model.eval(), tok, get_preset("coconut", num_latents=K))
    trace = runner.run([coconut_prompt(tok, q, K) for q in _questions(N)], max_new_tokens=6, batch_size=16,
                       progress=False)
    suite = default_interventions(trace, seed=0)
    ivs = {k: suite[k] for k in ("zero", "shared_tensor", "replace_noise", "swap")}
    return z_to_y(runner, trace, ivs, modes=["redecode"], n_boot=50, batch_size=16, chunk_size=N, progress=False)


def test_smollm2_flags_zero_shared_tensor_and_noise_but_not_swap(zy):
    s = zy.summary.drop_duplicates(["intervention", "mode"]).set_index("intervention")
    assert zy.config["n_kept"] == N
    for name in ("zero", "shared_tensor", "replace_noise"):
        assert s.loc[name, "ood"] and s.loc[name, "ood_nn_ratio"] > NN_THRESHOLD, name
    assert s.loc["zero", "ood_norm_ratio"] == 0.0
    assert not s.loc["swap", "ood"] and s.loc["swap", "ood_nn_ratio"] == 0.0
    none = zy.summary[(zy.summary.intervention == "none") & (zy.summary["mode"] == "redecode")].iloc[0]
    assert not none["ood"] and 0.5 < none["ood_nn_ratio"] < 1.5
    assert np.isfinite(zy.rows["ood_nn_ratio"]).all()
    print({k: (round(float(v["ood_nn_ratio"]), 3), round(float(v["ood_norm_ratio"]), 3))
           for k, v in s.iterrows()})
