"""Tests for latentprobe.fingerprint: weight hashes (cached, sensitive to every byte), callables' source."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from latentprobe import fingerprint as fp
from latentprobe.errors import FingerprintWarning, InputError
from latentprobe.fingerprint import callable_fingerprint, source_digest, tokenizer_fingerprint, weights_fingerprint


def _net(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.Linear(16, 4))
    net.register_buffer("scale", torch.ones(3))
    return net


def test_weights_hash_is_deterministic_and_sees_every_byte_name_shape_and_dtype():
    a, b = _net(0), _net(0)
    h = weights_fingerprint(a)
    assert h.startswith("sha256:") and h == weights_fingerprint(b)
    assert weights_fingerprint(_net(1)) != h
    with torch.no_grad():
        b[2].bias[3] += 1e-6  # one coordinate, in place: the cache notices (version counter)
    assert weights_fingerprint(b) != h
    with torch.no_grad():
        b[2].bias[3] -= 1e-6
    c = _net(0)
    c.scale.fill_(2.0)  # a buffer counts
    assert weights_fingerprint(c) != h
    assert weights_fingerprint(_net(0).double()) != h
    d = _net(0)
    d[2].weight = nn.Parameter(d[2].weight.detach().clone())  # replaced with equal values: same hash
    assert weights_fingerprint(d) == h


def test_weights_hash_is_cached_per_module(monkeypatch):
    net = _net(0)
    first = weights_fingerprint(net)
    calls = []
    monkeypatch.setattr(fp, "_hash_block", lambda data: calls.append(1) or b"")
    assert weights_fingerprint(net) == first and calls == []
    assert weights_fingerprint(_net(0)) != first and calls  # a new module is hashed (here by the stub)


def test_block_hashing_is_independent_of_threads_and_block_size(monkeypatch):
    net = _net(3)
    one = weights_fingerprint(net, threads=1)
    fp._CACHE.clear()
    monkeypatch.setattr(fp, "_BLOCK", 7)  # many small blocks, hashed by a pool
    assert weights_fingerprint(net, threads=4) != one  # the block digests differ with the block size...
    fp._CACHE.clear()
    assert weights_fingerprint(net, threads=1) == weights_fingerprint(_net(3), threads=3)  # ...not with threads


def test_sampled_mode_and_its_environment_default(monkeypatch):
    big = nn.Linear(1024, 2048, bias=False)
    full, sampled = weights_fingerprint(big), weights_fingerprint(big, mode="sampled")
    assert sampled.startswith("sampled-sha256:") and sampled != full
    monkeypatch.setenv("LATENTPROBE_WEIGHTS_HASH", "sampled")
    assert weights_fingerprint(big) == sampled
    monkeypatch.setenv("LATENTPROBE_WEIGHTS_HASH", "quick")
    with pytest.raises(InputError, match="LATENTPROBE_WEIGHTS_HASH"):
        weights_fingerprint(big)
    with pytest.raises(InputError, match="mode"):
        weights_fingerprint(big, mode="fast")
    with pytest.raises(InputError, match="nn.Module"):
        weights_fingerprint({"w": torch.ones(2)})  # type: ignore[arg-type]


def test_bf16_and_empty_tensors_hash():
    net = _net(0)
    net.register_buffer("empty", torch.zeros(0, 3))
    h = weights_fingerprint(net)
    assert weights_fingerprint(_net(0)) != h
    assert weights_fingerprint(net.to(torch.bfloat16)) not in (h, weights_fingerprint(_net(0)))


def double(z, step, example):
    return z * 2


def times(k):
    return lambda z, step, example: z * k


class Halve:
    def __init__(self, limit=None):
        self.limit, self.calls = limit, 0

    def __call__(self, z, step, example):
        self.calls += 1
        return z / 2


def test_callables_differ_by_body_and_by_the_values_they_close_over():
    a = lambda z, step, example: z * 2  # noqa: E731
    b = lambda z, step, example: z * -50  # noqa: E731
    fa, fb = callable_fingerprint(a), callable_fingerprint(b)
    assert fa["source"] and fb["source"] and fa["source"] != fb["source"]
    # a lambda is its own text, not the statement around it
    pair_a, pair_b = [times(2), lambda z, step, example: z * 3], [times(9), lambda z, step, example: z * 3]
    assert source_digest(pair_a[1]) == source_digest(pair_b[1]) != source_digest(a)
    assert fp._lambda_text(b) == "lambda z, step, example: z * -50"
    assert callable_fingerprint(double) == callable_fingerprint(double)
    assert callable_fingerprint(double)["name"].endswith("test_fingerprint.double")
    assert callable_fingerprint(times(2))["values"] != callable_fingerprint(times(-50))["values"]
    assert callable_fingerprint(times(2)) == callable_fingerprint(times(2))
    # a callable object: its class's code and its state
    assert callable_fingerprint(Halve(limit=3)) != callable_fingerprint(Halve())
    assert callable_fingerprint(Halve(limit=3)) == callable_fingerprint(Halve(limit=3))
    assert callable_fingerprint(Halve())["source"] == source_digest(Halve)
    assert callable_fingerprint(Halve())["state"] == {"attrs": {"calls": 0, "limit": None}}
    bound = callable_fingerprint(Halve(limit=2).__call__)
    assert bound["name"].endswith("Halve.__call__") and bound["self"]["attrs"] == {"calls": 0, "limit": 2}
    p2, p3 = callable_fingerprint(functools.partial(times, 2)), callable_fingerprint(functools.partial(times, 3))
    assert p2["args"] == [2] and p2 != p3
    mod = callable_fingerprint(nn.Linear(2, 2))
    assert mod["weights"].startswith("sha256:") and mod["name"] == "torch.nn.modules.linear.Linear"
    assert callable_fingerprint(None) is None


def test_missing_source_falls_back_to_the_bytecode():
    ns: dict = {}
    exec("def rule(q, k):\n    return q", ns)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # without source, its bytecode still tells bodies apart
        out = callable_fingerprint(ns["rule"], what="mask rule")
    assert out["name"] == "rule" and out["source"] is None and out["code"].startswith("py3.")
    exec("def rule(q, k):\n    return k", ns)
    assert callable_fingerprint(ns["rule"])["code"] != out["code"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # compiled library callables are named without a warning
        assert callable_fingerprint(torch.tanh)["source"] is None
        assert callable_fingerprint(np.tanh)["source"] is None
        assert callable_fingerprint(max)["name"] == "max"


def test_tokenizer_fingerprint(tok):
    h = tokenizer_fingerprint(tok)
    assert h.startswith("sha256:") and h == tokenizer_fingerprint(tok)
    assert tokenizer_fingerprint(None) is None

    class Vocab:
        def __init__(self, v):
            self.v = v

        def __len__(self):
            return len(self.v)

        def get_vocab(self):
            return dict(self.v)

    assert tokenizer_fingerprint(Vocab({"a": 0, "b": 1})) != tokenizer_fingerprint(Vocab({"a": 1, "b": 0}))


def test_a_dataclass_callable_s_settings_enter_its_fingerprint():
    from latentprobe.engine import ForceOpen
    from latentprobe.fingerprint import callable_fingerprint

    a, b = ForceOpen(open_id=5), ForceOpen(open_id=6)
    assert callable_fingerprint(a) != callable_fingerprint(b)
    assert callable_fingerprint(a) == callable_fingerprint(ForceOpen(open_id=5))
