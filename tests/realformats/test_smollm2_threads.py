"""SmolLM2-135M-Instruct's real weights at 1 and 2 CPU threads: the hidden states differ only in their last
digits (measured in latentprobe.threads and docs/performance.md), and probes fit on them score the same."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentprobe.probing import probe_sweep
from latentprobe.threads import pinned_threads

pytestmark = pytest.mark.slow

QUESTIONS = ["What is 2 plus 3?", "What is 7 minus 4?", "What is 5 times 6?", "What is 9 plus 8?",
             "What is 12 minus 5?", "What is 3 times 3?", "Which animal barks?", "Which animal says moo?",
             "What colour is a crow?", "Where do fish live?", "What does a cat eat?", "Which bird cannot fly?"]
PROMPTS = QUESTIONS + [q + " Please." for q in QUESTIONS]
LAYERS = [8, 29]


def _states(model, tok, threads):
    """[n, layers, 1, d]: the last prompt position's hidden state after each of LAYERS."""
    out = []
    with pinned_threads(threads), torch.no_grad():
        for p in PROMPTS:
            hs = model(**tok(p, return_tensors="pt"), output_hidden_states=True).hidden_states
            out.append(torch.stack([hs[i + 1][0, -1] for i in LAYERS]).numpy())
    return np.stack(out)[:, :, None, :]


def test_hidden_states_and_probe_scores_at_one_and_two_threads(smollm2):
    x1, x2 = (_states(smollm2.model, smollm2.tokenizer, t) for t in (1, 2))
    assert np.isfinite(x1).all() and x1.shape == (len(PROMPTS), len(LAYERS), 1, 576)
    rel = np.linalg.norm(x1 - x2, axis=-1) / np.linalg.norm(x1, axis=-1)
    assert rel.max() < 1e-5  # measured: 1.1e-6 at most, over all 31 layers
    rng = np.random.default_rng(0)
    labels = {"topic": np.array(([0] * 6 + [1] * 6) * 2), "random": rng.integers(0, 2, len(PROMPTS))}
    scores = {}
    for name, y in labels.items():
        s1, s2 = (probe_sweep(x, y, None, n_splits=3, controls=False, progress=False).scores for x in (x1, x2))
        assert len(s1) == len(LAYERS) and list(s1["score"]) == list(s2["score"]), name
        scores[name] = list(s1["score"])
    assert scores["topic"] == [1.0, 1.0]  # real weights tell arithmetic from animals
