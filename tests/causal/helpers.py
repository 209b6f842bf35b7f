"""Shared pieces of the causal tests: a logits processor for random-weight toys, reference
bootstrap loops, and callables that fail on purpose (for the resume-after-crash tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from latentprobe.engine import ForceOpen, LatentRunner
from latentprobe.toy.model import mask_rule, toy_spec

MAX_NEW = 9  # open + 4 latents + close + 3 answer tokens (the budget counts every generated position)
NB = 300  # bootstrap resamples in model-based tests (the reference tests use more)


def force_open(tok, skip_word: str | None = None) -> ForceOpen:
    """For random-weight models: force the open marker as the first free token (unless the prompt holds
    ``skip_word``), never open again and never stop early."""
    return ForceOpen(open_id=tok.convert_tokens_to_ids("<|latent_start|>"), eos_id=tok.eos_token_id,
                     skip_ids=() if skip_word is None else (tok.convert_tokens_to_ids(skip_word),))


def runner(model, tok, variant):
    return LatentRunner(model, tok, toy_spec(variant), mask_rule=mask_rule(variant))


def _load_trained(variant):
    from latentprobe.toy import load

    return load(variant)  # the weights ship with the package: a missing file is a failure


def _loop_ci(x, n_boot, seed, conf=0.95):
    x = np.asarray(x, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))
    boots = [x[i].mean() for i in idx]
    a = 1 - conf
    return np.quantile(boots, [a / 2, 1 - a / 2])


def _loop_paired_ci(a, b, n_boot, seed, conf=0.95):
    a, b = np.asarray(a, float), np.asarray(b, float)
    idx = np.random.default_rng(seed).integers(0, len(a), size=(n_boot, len(a)))
    boots = [a[i].mean() - b[i].mean() for i in idx]
    al = 1 - conf
    return np.quantile(boots, [al / 2, 1 - al / 2])


def _binom_p(x, y):
    """McNemar exact p-value for paired booleans x (reference) and y."""
    b = int(np.sum(x & ~y))
    c = int(np.sum(~x & y))
    return 1.0 if b + c == 0 else sps.binomtest(b, b + c, 0.5).pvalue


def _med_rows(y):
    recs = []
    for i in range(len(y["clean"])):
        for cond in ("clean", "treated", "direct", "indirect"):
            recs.append({"example_id": f"e{i}", "chunk": 0, "condition": cond, "x": "", "z": "", "answer": "",
                         "gold": "g", "correct": float(y[cond][i]), "gold_logprob": float(y[cond][i]) - 3.0,
                         "n_latents": 4})
    return pd.DataFrame(recs)


class Boom(RuntimeError):
    pass


class HalveLatents:
    """A callable intervention that raises once it has seen more than ``limit`` examples."""

    def __init__(self, limit=None):
        self.limit, self.seen = limit, set()
        self.__latentprobe_version__ = "1"  # the failure limit does not change the rows: a resume may drop it

    def __call__(self, z, step, example):
        self.seen.add(example.example_id)
        if self.limit is not None and len(self.seen) > self.limit:
            raise Boom("injected failure")
        return z * 0.5


class Mirror:
    """A per-example perturbation (mirror the image) that raises after ``limit`` calls."""

    def __init__(self, limit=None):
        self.limit, self.calls = limit, 0
        self.__latentprobe_version__ = "1"  # the failure limit does not change the rows: a resume may drop it

    def __call__(self, prompt, image, meta):
        self.calls += 1
        if self.limit is not None and self.calls > self.limit:
            raise Boom("injected failure")
        return prompt, image[:, ::-1].copy()
