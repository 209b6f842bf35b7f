"""GPU smoke test: a random 7B-shaped Qwen2.5-VL through the whole latent loop, with timings.

    python benchmarks/gpu_smoke.py              # one or more GPUs, bf16, < 5 minutes on one H100/H200
    python benchmarks/gpu_smoke.py --tiny       # CPU, a tiny model of the same architecture (CI)
    python benchmarks/gpu_smoke.py --sweep      # also the sweep: 256 and 1,024 image tokens, M = 8 and 32
    python benchmarks/gpu_smoke.py --sweep --sweep-tokens 256 1024 4096   # and 4,096 image tokens
    python benchmarks/gpu_smoke.py --attribution   # also the attribution map's cost in forward-pass equivalents

Builds Qwen2.5-VL-7B's shapes (hidden 3584, 28 layers, vocabulary 152,064, the 32-block vision tower)
with random bf16 weights directly on the GPU (several GPUs: sharded with accelerate's device map, as
``device_map="auto"`` would), a tokenizer with the Qwen2.5-VL and Mirage special tokens, and a chat
template. Then times: building the model, ``run`` on N chat-message examples with one image each and
K latents (open marker forced at the first free step), and ``intervene`` in each mode. Prints the peak
GPU memory. With ``--sweep``, the sweep of ``benchmarks/sweep_cache.py`` on this model, Monet-shaped
(the first latent on the open marker's own slot): ``intervene_many`` in ``propagate`` with the shared and
the copied prefix cache, M conditions on ``--sweep-examples`` examples, printing wall time, the time spent
inside the model's forward passes (CUDA events around every top-level forward; their sum is what the
plain forwards cost, so wall / forwards is the CPU overhead left), the KV cache per example over one
example's prefix cache (limit 1 + 0.1 M), and the peak memory the call added. Exits non-zero on any
error.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's latentprobe, not an installed one
sys.path.insert(0, str(Path(__file__).resolve().parent))

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
            "<|video_pad|>", "<|latent_pad|>", "<|latent_start|>", "<|latent_end|>"]
TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SEVEN_B = dict(
    text=dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
              num_key_value_heads=4, vocab_size=152064, mrope_section=[16, 24, 24], theta=1e6),
    vision=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, window_size=112,
                fullatt_block_indexes=[7, 15, 23, 31]),
)
TINY = dict(
    text=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=512, mrope_section=[2, 3, 3], theta=1e4),
    vision=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, window_size=56,
                fullatt_block_indexes=[0]),
)


def build_tokenizer(vocab_size: int) -> Any:
    """A word-level tokenizer whose first ids are the special tokens, padded with filler words to the model's vocabulary."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = SPECIALS + ["user", "assistant", "what", "colour", "is", "the", "circle", "?"]
    words += [f"w{i}" for i in range(vocab_size - len(words))]
    tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                   unk_token="w0", clean_up_tokenization_spaces=False)
    fast.add_special_tokens({"additional_special_tokens": SPECIALS[1:]})
    fast.chat_template = TEMPLATE
    return fast


def build_model(shape: dict, tok: Any, device: str) -> torch.nn.Module:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    t, v = dict(shape["text"]), shape["vision"]
    voc = tok.get_vocab()
    cfg = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=t["vocab_size"], hidden_size=t["hidden_size"],
                         intermediate_size=t["intermediate_size"], num_hidden_layers=t["num_hidden_layers"],
                         num_attention_heads=t["num_attention_heads"], num_key_value_heads=t["num_key_value_heads"],
                         rope_parameters={"rope_type": "default", "rope_theta": t["theta"],
                                          "mrope_section": t["mrope_section"]},
                         max_position_embeddings=32768, bos_token_id=None, eos_token_id=voc["<|endoftext|>"],
                         pad_token_id=voc["<|endoftext|>"]),
        vision_config=dict(depth=v["depth"], hidden_size=v["hidden_size"], intermediate_size=v["intermediate_size"],
                           num_heads=v["num_heads"], out_hidden_size=t["hidden_size"], patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2, in_channels=3, window_size=v["window_size"],
                           fullatt_block_indexes=v["fullatt_block_indexes"]),
        image_token_id=voc["<|image_pad|>"], video_token_id=voc["<|video_pad|>"],
        vision_start_token_id=voc["<|vision_start|>"], vision_end_token_id=voc["<|vision_end|>"],
    )
    torch.manual_seed(0)
    n_gpu = torch.cuda.device_count() if device == "cuda" else 0
    target = "cuda:0" if n_gpu else "cpu"
    with torch.device(target if n_gpu <= 1 else "cpu"):
        model = Qwen2_5_VLForConditionalGeneration._from_config(cfg, dtype=torch.bfloat16)
    if n_gpu > 1:  # shard over the GPUs, as from_pretrained(device_map="auto") does
        from accelerate import dispatch_model, infer_auto_device_map
        from accelerate.utils import get_balanced_memory

        no_split = model._no_split_modules
        mem = get_balanced_memory(model, dtype=torch.bfloat16, no_split_module_classes=no_split)
        dmap = infer_auto_device_map(model, max_memory=mem, no_split_module_classes=no_split, dtype=torch.bfloat16)
        model = dispatch_model(model, device_map=dmap)
    return model.eval()


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="a tiny model on the CPU (CI smoke test)")
    ap.add_argument("-n", "--examples", type=int, default=8)
    ap.add_argument("-k", "--latents", type=int, default=8)
    ap.add_argument("--image-size", type=int, default=448, help="side in px (448 -> 256 image tokens)")
    ap.add_argument("--answer-tokens", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--sweep", action="store_true", help="also time intervene_many sweeps (shared vs copied cache)")
    ap.add_argument("--attribution", action="store_true", help="also time the attribution map against one forward")
    ap.add_argument("--sweep-tokens", type=int, nargs="*", default=[256, 1024], help="image tokens per example")
    ap.add_argument("--sweep-m", type=int, nargs="*", default=[8, 32], help="conditions per sweep")
    ap.add_argument("--sweep-examples", type=int, default=2)
    args = ap.parse_args(argv)
    device = "cpu" if args.tiny or not torch.cuda.is_available() else "cuda"
    if args.tiny:
        args.image_size = min(args.image_size, 112)
    from latentprobe import Zero, get_preset
    from latentprobe.engine import ForceOpen, LatentRunner

    shape = TINY if args.tiny else SEVEN_B
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    tok = build_tokenizer(shape["text"]["vocab_size"])
    model = build_model(shape, tok, device)
    sync()
    timings["load"] = time.perf_counter() - t0
    spec = get_preset("toy").replace(name="smoke", num_latents=args.latents)
    runner = LatentRunner(model, tok, spec)
    rng = np.random.default_rng(0)
    msgs, lens = [], {}
    for i in range(args.examples):
        img = rng.integers(0, 256, (args.image_size, args.image_size, 3), dtype=np.uint8)
        msgs.append([{"role": "user", "content": [{"type": "image", "image": img},
                                                  {"type": "text", "text": "what colour is the circle ?"}]}])
    n_img = (args.image_size // 28) ** 2
    for i, m in enumerate(msgs):
        text = tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
        lens[i] = len(tok(text, add_special_tokens=False)["input_ids"]) - 1 + n_img
    proc = ForceOpen.for_runner(runner, prompt_lens=lens)  # open at the first free step, never end early
    budget = args.latents + 2 + args.answer_tokens
    t0 = time.perf_counter()
    trace = runner.run(msgs, max_new_tokens=budget, logits_processor=proc, batch_size=args.batch_size, progress=False)
    sync()
    timings[f"run ({args.examples} examples, K={args.latents})"] = time.perf_counter() - t0
    bad = [e.example_id for e in trace if e.num_latents != args.latents]
    if bad:
        raise RuntimeError(f"examples {bad} did not record {args.latents} latents.")
    for mode in ("replay", "propagate", "redecode"):
        t0 = time.perf_counter()
        out = runner.intervene(trace, Zero(), steps=[0], layers=(0,), mode=mode, logits_processor=proc,
                               batch_size=args.batch_size, progress=False)
        sync()
        timings[f"intervene {mode}"] = time.perf_counter() - t0
        if len(out) != len(trace):
            raise RuntimeError(f"intervene {mode}: {len(out)} examples for {len(trace)}.")
    e = trace[0]
    print(f"device: {device} x {max(1, torch.cuda.device_count()) if device == 'cuda' else 1}, "
          f"layers {runner.n_layers}, hidden {runner.hidden_size}, prompt {e.prompt_len} tokens, "
          f"trace dtype {e.hidden.dtype}, hidden per example {e.hidden.numel() * e.hidden.element_size() / 2**20:.1f} MiB")
    for name, sec in timings.items():
        print(f"{name:<40s} {sec:8.2f} s")
    if device == "cuda":
        print(f"{'peak GPU memory (device 0)':<40s} {torch.cuda.max_memory_allocated(0) / 2**30:8.2f} GiB")
    if args.attribution:
        attribution(runner, msgs, trace, proc, args, device)
    if args.sweep:
        sweep(model, tok, args, device)
    return 0


def attribution(runner: Any, msgs: list, trace: Any, proc: Any, args: argparse.Namespace, device: str) -> None:
    """The attribution map on this model, against one forward over the same examples and batches: one forward
    (teacher-forced, no gradients), the map (clean forward with gradients, backward, counterfactual forward), and
    the map with the columns both runs share always / never run apart. The counterfactual asks about another
    word (one token for one: the layout is kept); the metric compares two fixed tokens (random weights)."""
    import latentprobe.causal.attribution as A
    from latentprobe.causal.teacher_forced import _forward, _rows

    cf_msgs = [[{"role": "user", "content": [m[0]["content"][0], {"type": "text", "text": "what colour is the w7 ?"}]}]
               for m in msgs]
    budget = args.latents + 2 + args.answer_tokens
    cf = runner.run(cf_msgs, max_new_tokens=budget, logits_processor=proc, batch_size=args.batch_size, progress=False)
    voc = runner.tokenizer.get_vocab()
    answers = {e.example_id: (voc["what"], voc["colour"]) for e in trace}
    pairs, _ = A._pairs(trace, cf, False, answers=answers)
    layers, groups, b = list(range(runner.n_layers + 1)), set(A.POSITION_GROUPS), args.batch_size

    def timed(fn: Any) -> float:
        out = float("inf")
        for _ in range(2):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            out = min(out, time.perf_counter() - t0)
        return out

    def forward() -> None:
        with torch.no_grad():
            for s in range(0, len(pairs), b):
                _forward(runner, _rows([e for e, _ in pairs[s:s + b]]), [])

    def the_map() -> Any:
        return A._map(runner, pairs, layers, groups, A.logprob_difference, b, answers)

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t_fwd, t_map = timed(forward), timed(the_map)
    peak = torch.cuda.max_memory_allocated(0) / 2**30 if device == "cuda" else float("nan")
    n_cells = len(the_map())
    print(f"\nattribution map ({len(pairs)} pairs, {n_cells} cells: {len(layers)} layers x positions before the answer)")
    print(f"{'one forward':<40s} {t_fwd:8.2f} s")
    print(f"{'attribution map':<40s} {t_map:8.2f} s = {t_map / t_fwd:5.2f} forward equivalents, peak {peak:.2f} GiB")
    for label, frac in (("shared columns always run apart", 0.0), ("never run apart", 2.0)):
        keep, A.SHARED_MIN_FRACTION = A.SHARED_MIN_FRACTION, frac
        try:
            t = timed(the_map)
        finally:
            A.SHARED_MIN_FRACTION = keep
        print(f"  {label:<38s} {t:8.2f} s = {t / t_fwd:5.2f}")


class ForwardClock:
    """Time inside the model's top-level forward passes: CUDA events (or the CPU clock) around each one."""

    def __init__(self, model: torch.nn.Module, device: str) -> None:
        self.device, self.spans, self.open = device, [], None
        self.handles = [model.register_forward_pre_hook(self._start), model.register_forward_hook(self._stop)]

    def _mark(self) -> Any:
        if self.device == "cuda":
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            return e
        return time.perf_counter()

    def _start(self, *_: Any) -> None:
        self.open = self._mark()

    def _stop(self, *_: Any) -> None:
        self.spans.append((self.open, self._mark()))

    def seconds(self) -> float:
        for h in self.handles:
            h.remove()
        sync()
        if self.device == "cuda":
            return sum(a.elapsed_time(b) for a, b in self.spans) / 1e3
        return sum(b - a for a, b in self.spans)


def sweep(model: torch.nn.Module, tok: Any, args: argparse.Namespace, device: str) -> None:
    """The Monet-shaped sweep: shared vs copied prefix cache, at each image size and M (see the module doc)."""
    from sweep_cache import image_processor, prefix_bytes, spy_caches

    from latentprobe import Scale, get_preset
    from latentprobe.engine import ForceOpen, LatentRunner
    from latentprobe.engine.prefix_cache import cache_nbytes

    spec = get_preset("toy").replace(name="monet-shaped", num_latents=args.latents, first_offset=0)
    runner = LatentRunner(model, tok, spec, image_processor=image_processor())
    rng = np.random.default_rng(1)
    n = args.sweep_examples
    budget = args.latents + 2 + args.answer_tokens
    print(f"\nsweep (propagate, Monet-shaped: first latent on the open marker's slot, K={args.latents}, "
          f"{args.answer_tokens} answer tokens, N={n})")
    print(f"{'image tokens':>12} {'M':>3} {'cache':>7} {'wall s':>8} {'forwards s':>10} {'wall/fwd':>8} "
          f"{'KV/prefix':>9} {'limit':>5} {'peak+ GiB':>9}")
    for n_tok in args.sweep_tokens:
        side = 28 * max(1, round(n_tok ** 0.5))
        msgs = [[{"role": "user", "content": [{"type": "image", "image": rng.integers(0, 256, (side, side, 3),
                                                                                       dtype=np.uint8)},
                                              {"type": "text", "text": "what colour is the circle ?"}]}]
                for _ in range(n)]
        lens = {i: len(tok(tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True),
                           add_special_tokens=False)["input_ids"]) - 1 + (side // 28) ** 2 for i, m in enumerate(msgs)}
        proc = ForceOpen.for_runner(runner, prompt_lens=lens)
        trace = runner.run(msgs, max_new_tokens=budget, logits_processor=proc, batch_size=n, progress=False)
        prefix = prefix_bytes(model, int(trace[0].latent_positions[0]))
        for m in args.sweep_m:
            conds = {f"s{i}": Scale(0.5 + 0.1 * i) for i in range(m)}
            for how in ("copied", "shared"):
                kept: list = []
                undo = spy_caches(kept)
                clock = ForwardClock(model, device)
                if device == "cuda":
                    sync()
                    torch.cuda.reset_peak_memory_stats()
                    before = torch.cuda.memory_allocated()
                t0 = time.perf_counter()
                try:
                    runner.intervene_many(trace, conds, mode="propagate", logits_processor=proc, progress=False,
                                          max_batch=max(64, m * n), prefix_cache=how)
                    sync()
                finally:
                    undo()
                wall, fwd = time.perf_counter() - t0, clock.seconds()
                kv = max(cache_nbytes(p.cache) / (len(p.n_real) // m) for p in kept) / prefix
                peak = (torch.cuda.max_memory_allocated() - before) / 2**30 if device == "cuda" else float("nan")
                print(f"{n_tok:>12} {m:>3} {how:>7} {wall:8.2f} {fwd:10.2f} {wall / fwd:8.2f} {kv:9.2f} "
                      f"{1 + 0.1 * m:5.1f} {peak:9.2f}")
                del kept


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # any error is a failed smoke test
        traceback.print_exc()
        sys.exit(1)
