"""Attention rows without a T x T map: peak extra memory of the selected-rows readout against the full eager map.

For a sequence of T positions (1k, 4k and 8k by default; Qwen2.5-VL-7B's attention shape: 28 query heads, 4
key/value heads, head width 128, float32), prints the peak extra memory of

* ``rows``: :func:`latentprobe.readouts._rows.row_attention` for ``--rows`` selected query rows (run on the CPU);
* ``eager``: transformers' own ``eager_attention_forward`` (Llama's; the weights every ``output_attentions=True``
  forward returns) for all T rows, which holds ``heads x T x T`` scores. It is measured on the ``meta`` device:
  the same operations and tensor sizes, no memory actually taken (8k positions would need ~15 GB).

Memory is counted by a ``TorchDispatchMode`` that adds the bytes of every new tensor storage an operation
returns and subtracts them when the last tensor on that storage is freed (inputs made beforehand are not
counted, nor views of them: it is the *extra* memory). The rows' peak grows with rows x T; the eager map's with T
squared.

Usage: python benchmarks/attention_memory.py [--quick] [--rows 8] [--lengths 1024 4096 8192]
"""

from __future__ import annotations

import argparse
import sys
import time
import weakref
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's latentprobe, not an installed one

from latentprobe.readouts._rows import row_attention  # noqa: E402

# Qwen2.5-VL-7B's language model: q_proj 3584 -> 3584 and k_proj 3584 -> 512 in each of its 28 decoder layers (the
# module printout in acproject/duorou, docs/qwen2.5vl_graph.md), i.e. 28 query heads and 4 key/value heads of width 128
HEADS, KV_HEADS, HEAD_DIM = 28, 4, 128


class PeakBytes(TorchDispatchMode):
    """Peak bytes of tensor storages created (and still alive) while the mode is active."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: dict[int, int] = {}
        self.size: dict[int, int] = {}
        self.current = 0
        self.peak = 0

    def _release(self, key: int) -> None:
        self.refs[key] -= 1
        if self.refs[key] == 0:
            self.current -= self.size.pop(key)
            del self.refs[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        # a view of (or a write into) a tensor made before the mode shares its storage: not new memory
        outside = {a.untyped_storage()._cdata for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                st = t.untyped_storage()
                key = st._cdata
                if key in outside and key not in self.refs:
                    continue
                if key not in self.refs:
                    self.refs[key] = 0
                    self.size[key] = st.nbytes()
                    self.current += st.nbytes()
                    self.peak = max(self.peak, self.current)
                self.refs[key] += 1
                weakref.finalize(t, self._release, key)
        return out


def rows_peak(T: int, n: int) -> tuple[int, float]:
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, HEADS, n, HEAD_DIM, generator=g)
    k = torch.randn(1, KV_HEADS, T, HEAD_DIM, generator=g)
    rows = torch.linspace(T // 2, T - 1, n).long()
    t0 = time.perf_counter()
    with PeakBytes() as m:
        p = row_attention(q, k, rows=rows, scaling=HEAD_DIM ** -0.5, mask=None, q_len=T)
        assert torch.allclose(p.sum(-1), torch.ones(1, HEADS, n), atol=1e-5)
        del p
    return m.peak, time.perf_counter() - t0


def eager_peak(T: int) -> int:
    from types import SimpleNamespace

    from transformers.models.llama.modeling_llama import eager_attention_forward

    dev = "meta"
    q = torch.empty(1, HEADS, T, HEAD_DIM, device=dev)
    k = torch.empty(1, KV_HEADS, T, HEAD_DIM, device=dev)
    v = torch.empty(1, KV_HEADS, T, HEAD_DIM, device=dev)
    mask = torch.empty(1, 1, T, T, device=dev)  # the model's 4-D mask, made before (not counted)
    module = SimpleNamespace(num_key_value_groups=HEADS // KV_HEADS, training=False)
    with PeakBytes() as m:
        out, weights = eager_attention_forward(module, q, k, v, mask, scaling=HEAD_DIM ** -0.5)
        del out, weights
    return m.peak


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=8, help="selected query rows (e.g. 4 latents, a close, 3 answer)")
    ap.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 8192], help="sequence lengths")
    ap.add_argument("--quick", action="store_true", help="lengths 256, 512 and 1024")
    a = ap.parse_args(argv)
    lengths = [256, 512, 1024] if a.quick else a.lengths
    torch.set_num_threads(1)
    out = []
    print("| positions | rows | rows peak (MB) | eager T x T peak (MB) | eager / rows "
          "| rows peak / (rows x T x heads x 4 B) |")
    print("|---|---|---|---|---|---|")
    for T in lengths:
        rp, _ = rows_peak(T, a.rows)
        ep = eager_peak(T)
        per = rp / (a.rows * T * HEADS * 4)
        out.append({"T": T, "rows_peak": rp, "eager_peak": ep, "ratio": ep / rp, "per_row_key": per})
        print(f"| {T} | {a.rows} | {rp / 2**20:.2f} | {ep / 2**20:.0f} | {ep / rp:.0f} | {per:.2f} |")
    return out


if __name__ == "__main__":
    main()
