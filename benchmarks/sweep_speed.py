"""Speed of intervention sweeps and of capture, against loops written here in plain Hugging Face code.

One run prints, for a random Qwen2.5-VL (hidden 512, 8 layers, vocabulary 151,936, a one-layer vision
tower; built from a config, no download), K = 8 latents, 6 answer tokens, greedy:

* capture: ``runner.run`` on one example / a plain KV-cached latent loop on the same example (it
  preprocesses the image, feeds the last final-norm output back as the next input embedding K times,
  then the close marker and the answer, recording every layer at the latents); and per example at
  batch N;
* sweeps of M interventions (``Scale`` with M factors on every latent) on N examples, at each image
  size and in ``propagate`` and ``redecode``: ``runner.intervene_many`` against (b) the naive sweep
  (``runner.intervene`` once per condition) and (c) the lower bound: each example's prompt prefilled
  once, its cache copied per condition, all M x N rows decoded as one batch, in plain code
  (``redecode`` feeds the K changed latents and the close marker as one chunk);
* peak resident memory (``resource.getrusage``; on CUDA ``torch.cuda.max_memory_allocated``) after each
  part.

Usage: python benchmarks/sweep_speed.py [--quick] [--device cpu|cuda] [--threads 1]
"""

from __future__ import annotations

import argparse
import inspect
import resource
import time
from typing import Any, Callable

import numpy as np
import torch

K, N_ANSWER = 8, 6


def build(vocab_size: int, hidden: int, layers: int, device: str) -> tuple[Any, Any, Any]:
    """A random Qwen2.5-VL in the benchmark's shape, the toy tokenizer and a K-latent appended spec."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from latentprobe.presets import get_preset
    from latentprobe.toy.vocab import build_tokenizer

    tok = build_tokenizer()
    v = tok.get_vocab()
    heads = max(hidden // 64, 2)
    half = hidden // heads // 2
    t = half // 4
    cfg = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=int(hidden * 2.75),
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=2,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6,
                                          "mrope_section": [t, (half - t) // 2, half - t - (half - t) // 2]},
                         max_position_embeddings=8192, bos_token_id=None, eos_token_id=v["<eos>"],
                         pad_token_id=v["<pad>"], tie_word_embeddings=True),
        vision_config=dict(depth=1, hidden_size=64, intermediate_size=128, num_heads=2, out_hidden_size=hidden,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, in_channels=3,
                           window_size=112, fullatt_block_indexes=[0]),
        image_token_id=v["<|image_pad|>"], video_token_id=v["<unk>"],
        vision_start_token_id=v["<|vision_start|>"], vision_end_token_id=v["<|vision_end|>"],
        tie_word_embeddings=True)
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(cfg).float().eval().to(device)
    spec = get_preset("toy", open_mode="appended", num_latents=K)
    return model, tok, spec


class Plain:
    """The plain Hugging Face latent loop: no latentprobe, a ``DynamicCache``, logits only where a token is chosen."""

    def __init__(self, model: Any, tok: Any, spec: Any, device: str) -> None:
        from transformers import DynamicCache

        self.model, self.base, self.device = model, model.model, device
        self.new_cache = lambda: DynamicCache(config=model.config)
        params = inspect.signature(self.base.forward).parameters
        self.cache_kw = "cache" if "cache" in params else "past_key_values"
        v = tok.get_vocab()
        self.open_id, self.close_id = v[spec.open_token], v[spec.close_token]
        self.slot_id, self.img_id = v[spec.slot_token], model.config.image_token_id

    def step(self, embeds, pos, cache, hidden=False):
        out = self.base(inputs_embeds=embeds, position_ids=pos, use_cache=True, output_hidden_states=hidden,
                        **{self.cache_kw: cache})
        return out

    def prefill(self, ids: torch.Tensor, pv: torch.Tensor, grid: torch.Tensor):
        """``ids``: ``[B, T]`` prompts of one length, the open marker last; returns cache, h_last, next positions."""
        B = ids.shape[0]
        ids = ids.to(self.device)
        emb = self.base.get_input_embeddings()(ids)
        feats = torch.cat(list(self.base.get_image_features(pv.to(self.device), grid.to(self.device),
                                                            return_dict=True).pooler_output))
        emb = emb.masked_scatter((ids == self.img_id)[..., None], feats.to(emb.dtype))
        tt = (ids == self.img_id).long()
        pos, deltas = self.base.get_rope_index(ids, mm_token_type_ids=tt, image_grid_thw=grid.to(self.device),
                                               attention_mask=torch.ones_like(ids))
        cache = self.new_cache()
        out = self.step(emb, pos, cache)
        nxt = (torch.full((B,), ids.shape[1], device=self.device) + deltas.reshape(B).to(self.device))
        return cache, out.last_hidden_state[:, -1], nxt

    def pos(self, nxt: torch.Tensor, width: int = 1) -> torch.Tensor:
        p = nxt[:, None] + torch.arange(width, device=self.device)[None]
        return p[None].expand(3, -1, -1)

    def answer(self, cache, h, nxt):
        """Greedy answer tokens from the output ``h`` at the close marker."""
        toks = []
        for i in range(N_ANSWER):
            tok = self.model.lm_head(h).argmax(-1)
            toks.append(tok)
            if i == N_ANSWER - 1:
                break
            out = self.step(self.base.get_input_embeddings()(tok)[:, None], self.pos(nxt), cache)
            h, nxt = out.last_hidden_state[:, -1], nxt + 1
        return torch.stack(toks, 1)

    def latents(self, cache, h, nxt, fn=None):
        """K latents fed back (``fn`` changes each one), then the close marker; every layer recorded."""
        zs, hidden = [], []
        for k in range(K):
            z = h if fn is None else fn(h)
            zs.append(z)
            out = self.step(z[:, None], self.pos(nxt), cache, hidden=True)
            hidden.append(torch.stack([x[:, -1] for x in out.hidden_states], 1))
            h, nxt = out.last_hidden_state[:, -1], nxt + 1
        close = self.base.get_input_embeddings()(torch.full_like(nxt, self.close_id))
        out = self.step(close[:, None], self.pos(nxt), cache)
        return torch.stack(zs, 1), torch.stack(hidden, 1), cache, out.last_hidden_state[:, -1], nxt + 1

    def run(self, ids, pv, grid):
        cache, h, nxt = self.prefill(ids, pv, grid)
        z, hidden, cache, h, nxt = self.latents(cache, h, nxt)
        return z.cpu(), hidden.cpu(), self.answer(cache, h, nxt).cpu()

    def sweep_bound(self, ids, pv, grid, factors, mode, z_rec=None):
        """Lower bound: prefill once per example, copy the cache per condition, decode all rows at once."""
        cache, h, nxt = self.prefill(ids, pv, grid)
        M = len(factors)
        cache.batch_repeat_interleave(M)
        h, nxt = h.repeat_interleave(M, 0), nxt.repeat_interleave(M, 0)
        s = torch.tensor(factors, device=self.device).repeat(ids.shape[0])[:, None]
        if mode == "propagate":
            _, _, cache, h, nxt = self.latents(cache, h, nxt, fn=lambda x: x * s)
        else:  # the K changed latents and the close marker, one chunk
            z = z_rec.to(self.device).repeat_interleave(M, 0) * s[:, :, None]
            close = self.base.get_input_embeddings()(torch.full_like(nxt, self.close_id))[:, None]
            out = self.step(torch.cat([z, close], 1), self.pos(nxt, K + 1), cache)
            h, nxt = out.last_hidden_state[:, -1], nxt + K + 1
        return self.answer(cache, h, nxt).cpu()


def timed(fn: Callable[[], Any], device: str, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.no_grad():
            fn()
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def peak(device: str) -> str:
    if device == "cuda":
        return f"{torch.cuda.max_memory_allocated() / 2**20:,.0f} MiB allocated (CUDA peak)"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB resident (process peak)"


def main(argv: list[str] | None = None) -> dict[str, float]:
    from latentprobe import LatentRunner, Scale
    from latentprobe.images import pixel_values

    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run, seconds)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n", type=int, default=8, help="examples")
    ap.add_argument("--m", type=int, default=8, help="interventions")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.quick:
        vocab, hidden, layers, sides, n, m = 4096, 64, 2, (112,), 2, 3
    else:
        vocab, hidden, layers, sides, n, m = 151936, 512, 8, (448, 896), a.n, a.m
    model, tok, spec = build(vocab, hidden, layers, a.device)
    runner = LatentRunner(model, tok, spec)
    plain = Plain(model, tok, spec, a.device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"device={a.device} threads={torch.get_num_threads()} torch={torch.__version__} params={n_params / 1e6:.1f}M "
          f"(hidden {hidden}, {layers} layers, vocab {vocab}) K={K} answer={N_ANSWER} N={n} M={m}")
    factors = [0.25 * (i + 1) for i in range(m)]
    results: dict[str, float] = {}
    rng = np.random.default_rng(0)
    for side in sides:
        imgs = [rng.integers(0, 255, (side, side, 3), dtype=np.uint8) for _ in range(n)]
        prompts = ["what colour is the circle ? <|vision_start|> <|image_pad|> <|vision_end|>"] * n
        pv1, grid1 = pixel_values(imgs[:1])
        n_img = int(grid1[0].prod()) // 4
        base_ids = tok(prompts[0], add_special_tokens=False)["input_ids"]
        expanded = []
        for t in base_ids:
            expanded += [t] * n_img if t == model.config.image_token_id else [t]
        ids = torch.tensor([expanded + [plain.open_id]] * n)
        pv, grid = pixel_values(imgs)
        budget = K + 1 + N_ANSWER
        kw = dict(max_new_tokens=budget, progress=False)
        # capture: one example, then per example at batch n
        runner.run(prompts[:1], imgs[:1], **kw)  # warm-up
        t_run1 = t_plain1 = float("inf")
        for _ in range(3):  # alternated, best of three: a shared machine's load drifts
            t_run1 = min(t_run1, timed(lambda: runner.run(prompts[:1], imgs[:1], **kw), a.device))
            t_plain1 = min(t_plain1, timed(lambda: plain.run(ids[:1], *pixel_values(imgs[:1])), a.device))
        t_runN = timed(lambda: runner.run(prompts, imgs, batch_size=n, **kw), a.device)
        t_plainN = timed(lambda: plain.run(ids, *pixel_values(imgs)), a.device)
        trace = runner.run(prompts, imgs, batch_size=n, **kw)
        assert trace[0].num_latents == K and len(trace[0].answer_ids) == N_ANSWER, trace[0]
        print(f"\n[{n_img} image tokens, {ids.shape[1]} prompt positions] {peak(a.device)}")
        print(f"  capture, 1 example: run / plain loop       {t_run1 / t_plain1:5.2f}x  "
              f"({t_run1 * 1e3:.0f} ms vs {t_plain1 * 1e3:.0f} ms)")
        print(f"  capture, per example at batch {n}: run / plain {t_runN / t_plainN:5.2f}x  "
              f"({t_runN / n * 1e3:.0f} ms vs {t_plainN / n * 1e3:.0f} ms)")
        results[f"capture_{n_img}"] = t_run1 / t_plain1
        t_pre = timed(lambda: plain.prefill(ids, pv, grid), a.device, repeat=2)
        conds = {f"scale{f}": Scale(f) for f in factors}
        z_rec = torch.stack([e.z for e in trace])
        for mode in ("propagate", "redecode"):
            t_bound = t_many = float("inf")
            for _ in range(2):  # alternated, best of two
                t_bound = min(t_bound, timed(lambda: plain.sweep_bound(ids, pv, grid, factors, mode, z_rec), a.device))
                t_many = min(t_many, timed(lambda: runner.intervene_many(trace, conds, mode=mode, max_batch=m * n),
                                           a.device))
            mem = peak(a.device)
            t_naive = timed(lambda: [runner.intervene(trace, c, mode=mode, batch_size=n, progress=False)
                                     for c in conds.values()], a.device)
            print(f"  sweep {mode:9s} M={m} N={n}: naive / many {t_naive / t_many:6.2f}x   many / lower bound "
                  f"{t_many / t_bound:5.2f}x   ({t_many:.2f} s; naive {t_naive:.2f} s; bound {t_bound:.2f} s; "
                  f"after many: {mem})")
            # what sharing the prefill alone can save: M prefills + the decode against 1 prefill + the same decode
            # (all M x N rows still decode every latent and answer token through the LM head); naive also decodes
            # in M batches of N rows, less efficient than one of M x N
            ceiling = (m * t_pre + (t_bound - t_pre)) / t_bound
            print(f"    prefill of the {n} prompts {t_pre:.2f} s = {t_pre / t_bound:.0%} of the lower bound: sharing "
                  f"the prefill alone saves at most {ceiling:.2f}x (the rest of naive / many is the decode batched)")
            results[f"{mode}_{n_img}_vs_naive"] = t_naive / t_many
            results[f"{mode}_{n_img}_vs_bound"] = t_many / t_bound
    print(f"\npeak: {peak(a.device)}")
    return results


if __name__ == "__main__":
    main()
