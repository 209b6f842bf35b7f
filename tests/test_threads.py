"""Tests for latentprobe.threads: the settings recorded, the pin and its undoing."""

from __future__ import annotations

import json

import pytest
import torch
from threadpoolctl import threadpool_info

from latentprobe.errors import InputError
from latentprobe.threads import ENV_VARS, pinned_threads, thread_settings


def test_settings_are_json_ready_and_name_every_pool_and_variable(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    s = thread_settings()
    assert json.loads(json.dumps(s)) == s
    assert s["torch"] == torch.get_num_threads() and s["torch_interop"] == torch.get_num_interop_threads()
    assert s["env"]["OMP_NUM_THREADS"] == "3" and set(s["env"]) == set(ENV_VARS)
    assert {p["library"] for p in s["pools"]} == {p["internal_api"] for p in threadpool_info()}


def test_pinned_threads_sets_torch_and_blas_and_restores_them():
    before = torch.get_num_threads(), sorted(p["num_threads"] for p in threadpool_info())
    target = 2 if before[0] != 2 else 1
    with pinned_threads(target) as s:
        assert torch.get_num_threads() == target == s["torch"]
        assert {p["num_threads"] for p in threadpool_info()} == {target}
        assert {p["threads"] for p in s["pools"]} == {target}
    assert (torch.get_num_threads(), sorted(p["num_threads"] for p in threadpool_info())) == before
    with pytest.raises(RuntimeError), pinned_threads(target):
        raise RuntimeError("inside")
    assert torch.get_num_threads() == before[0]  # restored after an error too
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(InputError, match="threads"):
            with pinned_threads(bad):  # type: ignore[arg-type]
                pass


def test_a_trace_records_the_thread_count():
    from latentprobe import toy

    tm = toy.load("mediated")
    with pinned_threads(1):
        trace = tm.runner().run(**toy.toy_inputs(tm.examples("test", 2)).run_kwargs(), progress=False)
    assert trace.config["threads"] == 1
