"""Shared pieces of the causal tests: a logits processor for random-weight toys, reference
intervals (bootstrap loops, Wilson and Tango computed independently), and callables that fail on
purpose (for the resume-after-crash tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize, stats as sps

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
    """Studentised bootstrap (bootstrap-t) of the mean, one resample at a time, from the documented draws."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    m, se = x.mean(), x.std(ddof=1) / np.sqrt(n)
    t = [(x[i].mean() - m) / (x[i].std(ddof=1) / np.sqrt(n)) for i in idx]
    a = 1 - conf
    q_lo, q_hi = np.quantile(t, [a / 2, 1 - a / 2])
    return np.array([m - q_hi * se, m - q_lo * se])


def _loop_paired_ci(a, b, n_boot, seed, conf=0.95):
    """The paired interval of mean(a) - mean(b) for continuous outcomes: bootstrap-t of the differences."""
    return _loop_ci(np.asarray(a, float) - np.asarray(b, float), n_boot, seed, conf)


def _wilson(x, conf=0.95):
    """Wilson's interval of a proportion, as scipy computes it."""
    x = np.asarray(x).astype(bool)
    ci = sps.binomtest(int(x.sum()), len(x)).proportion_ci(confidence_level=conf, method="wilson")
    return np.array([ci.low, ci.high])


def _tango(before, after, conf=0.95):
    """Tango's interval for mean(after) - mean(before), with the constrained MLE found numerically."""
    before, after = np.asarray(before).astype(bool), np.asarray(after).astype(bool)
    n, gain, loss = len(before), int(np.sum(~before & after)), int(np.sum(before & ~after))
    z = sps.norm.ppf(0.5 + conf / 2)

    def score(d):
        def nll(p21):
            p12, rest = p21 + d, 1 - 2 * p21 - d
            return -(gain * np.log(max(p12, 1e-300)) + loss * np.log(max(p21, 1e-300))
                     + (n - gain - loss) * np.log(max(rest, 1e-300)))
        p21 = optimize.minimize_scalar(nll, bounds=(max(0.0, -d) + 1e-15, min(1.0, (1 - d) / 2) - 1e-15),
                                       method="bounded", options={"xatol": 1e-14}).x
        return (gain - loss - n * d) / np.sqrt(n * (2 * p21 + d * (1 - d)))

    est = (gain - loss) / n
    lo = optimize.brentq(lambda d: score(d) - z, -1 + 1e-9, est) if est > -1 else -1.0
    hi = optimize.brentq(lambda d: score(d) + z, est, 1 - 1e-9) if est < 1 else 1.0
    return np.array([lo, hi])


def _score_p(x, y):
    """p of the score test Tango's interval inverts: McNemar's chi-square without continuity correction."""
    b = int(np.sum(x & ~y))
    c = int(np.sum(~x & y))
    return 1.0 if b + c == 0 else float(sps.chi2.sf((b - c) ** 2 / (b + c), 1))


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
