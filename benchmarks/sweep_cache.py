"""KV-cache memory and time of sweeps: the shared prefix cache against the copied one and a plain loop.

For a random Qwen2.5-VL (the ``sweep_speed.py`` shape: hidden 512, 8 layers, 2 key/value heads of 64,
vocabulary 151,936; built from a config, no download), K = 8 latents, 6 answer tokens, greedy, M
interventions (``Scale`` on every latent, ``propagate``: the K latents, the close marker and the answer
are decoded again for every condition) on N examples, at each image size and M, one run times alternately:

* ``shared``: ``runner.intervene_many(..., prefix_cache="shared")`` (the default): each example's prefix
  cache stored once, every condition attending to it, suffix blocks preallocated;
* ``copied``: ``runner.intervene_many(..., prefix_cache="copied")``: the prefix cache copied per condition
  into transformers' ``DynamicCache`` (``intervene_many`` as it was before the shared cache);
* ``bound``: the same plan written plainly (prefill once per example from the trace's image features,
  ``batch_repeat_interleave`` the cache M times, decode all M x N rows as one batch, no latentprobe).

Shared and copied answers are checked equal, latents within 1e-5 of their largest entry (the scaled
latents reach several hundred; the largest relative difference is printed). Memory is the KV cache's
own storage at its largest (after the last decode step; caches only grow): keys and values held, per
example, divided by one example's prefix cache (the prompt's keys and values once). The acceptance
bound printed next to it is (1 + 0.1 M). ``copied`` runs on the same code as ``shared`` otherwise
(vectorised set-up, nnsight only where a forward captures or patches), so their ratio isolates the cache.

Usage::

    python benchmarks/sweep_cache.py                 # 256 and 1,024 image tokens, M = 8 and 32, N = 2
    python benchmarks/sweep_cache.py --big           # also 4,096 image tokens (about 2 GB more, minutes)
    python benchmarks/sweep_cache.py --quick         # tiny sizes, seconds (the test suite runs it)
    python benchmarks/sweep_cache.py --device cuda   # on a GPU (timings then synchronise)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's latentprobe
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sweep_speed import K, N_ANSWER, Plain, build  # noqa: E402

SIDES = {256: 448, 1024: 896, 4096: 1792}  # image tokens -> image side in pixels (28 px per merged token)


def image_processor() -> Any:
    """transformers' PIL Qwen2-VL processor with qwen_vl_utils' pixel ceiling (16,384 tokens), so that a
    1,792 px image keeps its 4,096 tokens (the processor's own default stops at 1,280)."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(size={"shortest_edge": 4 * 28 * 28, "longest_edge": 16384 * 28 * 28})


class Bound(Plain):
    """The plain loop, prefilled from image features already computed (what the trace holds)."""

    def prefill_feats(self, ids: torch.Tensor, feats: torch.Tensor, grid: torch.Tensor):
        B = ids.shape[0]
        ids = ids.to(self.device)
        emb = self.base.get_input_embeddings()(ids)
        emb = emb.masked_scatter((ids == self.img_id)[..., None], feats.to(self.device, emb.dtype))
        tt = (ids == self.img_id).long()
        pos, deltas = self.base.get_rope_index(ids, mm_token_type_ids=tt, image_grid_thw=grid.to(self.device),
                                               attention_mask=torch.ones_like(ids))
        cache = self.new_cache()
        out = self.step(emb, pos, cache)
        nxt = torch.full((B,), ids.shape[1], device=self.device) + deltas.reshape(B).to(self.device)
        return cache, out.last_hidden_state[:, -1], nxt

    def sweep(self, ids, feats, grid, factors):
        """Propagate: prefill once per example, copy the cache per condition, decode all rows; returns the
        answers and the cache."""
        cache, h, nxt = self.prefill_feats(ids, feats, grid)
        M = len(factors)
        cache.batch_repeat_interleave(M)
        h, nxt = h.repeat_interleave(M, 0), nxt.repeat_interleave(M, 0)
        s = torch.tensor(factors, device=self.device).repeat(ids.shape[0])[:, None]
        _, _, cache, h, nxt = self.latents(cache, h, nxt, fn=lambda x: x * s)
        return self.answer(cache, h, nxt).cpu(), cache


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: str) -> tuple[float, Any]:
    sync(device)
    t = time.perf_counter()
    with torch.no_grad():
        out = fn()
    sync(device)
    return time.perf_counter() - t, out


def spy_caches(kept: list) -> Callable[[], None]:
    """Keep every sweep chunk's prefill state (its cache is the one the decode grows); returns the undo."""
    from latentprobe.engine import many

    real = many.prefill_shared

    def spy(*a: Any, **kw: Any) -> Any:
        pre = real(*a, **kw)
        kept.append(pre)
        return pre

    many.prefill_shared = spy
    return lambda: setattr(many, "prefill_shared", real)


def prefix_bytes(model: Any, positions: int) -> int:
    """One example's prefix cache: keys and values of ``positions`` positions in every layer."""
    t = model.config.text_config
    head = t.hidden_size // t.num_attention_heads
    itemsize = torch.finfo(model.dtype).bits // 8
    return 2 * t.num_hidden_layers * t.num_key_value_heads * head * positions * itemsize


def sweep_cell(runner: Any, bound: Bound, trace: Any, ids: torch.Tensor, feats: torch.Tensor, grid: torch.Tensor,
               m: int, repeat: int, device: str, max_batch: int) -> dict[str, float]:
    """One (image size, M) cell: times and cache bytes per example of shared, copied and bound."""
    from latentprobe import Scale
    from latentprobe.engine.prefix_cache import cache_nbytes

    factors = [0.25 * (i + 1) for i in range(m)]
    conds = {f"scale{f}": Scale(f) for f in factors}
    n = len(trace)
    best = {"shared": float("inf"), "copied": float("inf"), "bound": float("inf")}
    mem: dict[str, float] = {}
    outs: dict[str, Any] = {}
    for _ in range(repeat):  # alternated: a shared machine's load drifts
        for how in ("copied", "shared"):
            kept: list = []
            undo = spy_caches(kept)
            try:
                t, outs[how] = timed(lambda: runner.intervene_many(trace, conds, mode="propagate", max_batch=max_batch,
                                                                   progress=False, prefix_cache=how), device)
            finally:
                undo()
            best[how] = min(best[how], t)
            # bytes per example: each chunk's cache over the examples it held, the largest chunk
            mem[how] = max(cache_nbytes(p.cache) / (len(p.n_real) // m) for p in kept)
            grown = [getattr(p.cache, "grown", 0) for p in kept]
            assert not any(grown), f"the shared cache outgrew its budget {grown}"
            del kept
        t, (answers, cache) = timed(lambda: bound.sweep(ids, feats, grid, factors), device)
        best["bound"] = min(best["bound"], t)
        mem["bound"] = cache_nbytes(cache) / n
        del cache
    rel = 0.0
    for name in conds:  # the two caches give the same sweep
        for a, b in zip(outs["shared"][name], outs["copied"][name]):
            assert torch.equal(a.answer_ids, b.answer_ids), (name, a.example_id)
            rel = max(rel, float((a.z - b.z).abs().max() / b.z.abs().max()))
    assert rel <= 1e-5, f"latents differ by {rel:.1e} of their size"
    one = prefix_bytes(runner.model, ids.shape[1])
    return {**{f"t_{k}": v for k, v in best.items()}, **{f"x_{k}": v / one for k, v in mem.items()},
            "prefix_mib": one / 2**20, "z_rel": rel}


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    from latentprobe import LatentRunner
    from latentprobe.images import pixel_values

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run, seconds)")
    ap.add_argument("--big", action="store_true", help="also 4,096 image tokens")
    ap.add_argument("--tokens", type=int, nargs="*", help="image token counts (256, 1024, 4096)")
    ap.add_argument("--m", type=int, nargs="*", default=[8, 32], help="conditions per sweep")
    ap.add_argument("--n", type=int, default=2, help="examples")
    ap.add_argument("--repeat", type=int, default=1, help="timings per cell (best of)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.quick:
        vocab, hidden, layers, tokens, ms = 4096, 64, 2, [16], [2, 4]
    else:
        vocab, hidden, layers = 151936, 512, 8
        tokens = a.tokens or ([256, 1024, 4096] if a.big else [256, 1024])
        ms = a.m
    model, tok, spec = build(vocab, hidden, layers, a.device)
    proc = image_processor()
    runner = LatentRunner(model, tok, spec, image_processor=proc)
    bound = Bound(model, tok, spec, a.device)
    n = a.n
    print(f"device={a.device} threads={torch.get_num_threads()} torch={torch.__version__} hidden {hidden}, {layers} "
          f"layers, vocab {vocab}; K={K} answer={N_ANSWER} N={n} propagate, greedy; one run, cells timed once "
          f"each (best of {a.repeat}), copied / shared / bound alternated")
    rng = np.random.default_rng(0)
    results: dict[str, dict[str, float]] = {}
    for n_tok in tokens:
        side = SIDES.get(n_tok, 28 * int(round(n_tok ** 0.5)))
        imgs = [rng.integers(0, 255, (side, side, 3), dtype=np.uint8) for _ in range(n)]
        prompts = ["what colour is the circle ? <|vision_start|> <|image_pad|> <|vision_end|>"] * n
        trace = runner.run(prompts, imgs, batch_size=n, max_new_tokens=K + 1 + N_ANSWER, progress=False)
        e = trace[0]
        assert e.num_latents == K and len(e.answer_ids) == N_ANSWER, e
        ids = torch.stack([t.input_ids[:t.latent_positions[0]] for t in trace])  # the prompt and the open marker
        feats = torch.cat([t.image_embeds for t in trace])
        grid = torch.cat([pixel_values(imgs[i:i + 1], proc)[1] for i in range(n)])
        print(f"\n[{int(grid[0].prod()) // 4} image tokens, {ids.shape[1]} prefix positions, one example's prefix "
              f"cache {prefix_bytes(model, ids.shape[1]) / 2**20:.1f} MiB]")
        print(f"  {'M':>3} | {'copied s':>8} {'shared s':>8} {'bound s':>8} | shared/copied shared/bound | cache per "
              f"example / one prefix: copied shared  bound  limit 1+0.1M")
        for m in ms:
            r = sweep_cell(runner, bound, trace, ids, feats, grid, m, a.repeat, a.device, max_batch=max(64, m * n))
            results[f"{n_tok}_{m}"] = r
            print(f"  {m:>3} | {r['t_copied']:8.2f} {r['t_shared']:8.2f} {r['t_bound']:8.2f} | "
                  f"{r['t_shared'] / r['t_copied']:13.2f} "
                  f"{r['t_shared'] / r['t_bound']:11.2f} | {'':>35}{r['x_copied']:6.2f} {r['x_shared']:6.2f} "
                  f"{r['x_bound']:6.2f} {1 + 0.1 * m:6.1f}   z rel. diff {r['z_rel']:.1e}")
        if len(ms) > 1:
            lo, hi = min(ms), max(ms)
            per = {k: (results[f"{n_tok}_{hi}"][k] / hi) / (results[f"{n_tok}_{lo}"][k] / lo)
                   for k in ("t_copied", "t_shared", "t_bound")}
            print(f"  time per condition, M={hi} over M={lo} (1.00 = linear): copied {per['t_copied']:.2f}, shared "
                  f"{per['t_shared']:.2f}, bound {per['t_bound']:.2f}")
    return results


if __name__ == "__main__":
    main()
