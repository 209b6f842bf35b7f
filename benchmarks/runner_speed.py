"""Speed ratios of the runner, measured in one run on the toy architecture (random weights).

Prints:
* nnsight-traced forward / plain forward (overhead of capture through nnsight),
* one-by-one / batched generation time (what batching buys),
* propagate / replay and redecode / replay time for the same trace,
* a sweep of 4 interventions: ``intervene`` once per condition / ``intervene_many`` (shared prefixes).

Plain-HF baselines and full-size sweeps: ``benchmarks/sweep_speed.py``.

Usage: python benchmarks/runner_speed.py [--n 64] [--batch 32] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import time

import torch
from nnsight import NNsight

from latentprobe import LatentRunner, Scale, Zero
from latentprobe.toy import build_model, build_tokenizer, make_dataset, prompt_for, toy_spec
from latentprobe.toy.model import mask_rule


def timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    torch.set_num_threads(1)  # stable ratios on a shared machine
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    tok = build_tokenizer()
    model = build_model(tok.get_vocab()).to(a.device)
    spec = toy_spec("free").replace(open_mode="appended")  # random weights never emit the open marker
    runner = LatentRunner(model, tok, spec, mask_rule=mask_rule("free"))
    ex = make_dataset(n_images=a.n, questions_per_image=1, seed=1)[: a.n]
    prompts, images = [prompt_for(e.question) for e in ex], [e.image() for e in ex]
    print(f"device={a.device} n={a.n} batch={a.batch} torch={torch.__version__}")

    # 1. nnsight overhead on a prefill-sized forward
    embeds = torch.randn(a.batch, 40, model.config.text_config.hidden_size, device=a.device)
    nn_model = NNsight(model)
    with torch.no_grad():
        plain = timed(lambda: model(inputs_embeds=embeds), repeat=5)

        def traced():
            with nn_model.trace(inputs_embeds=embeds):
                nn_model.model.language_model.norm.output.save()
        nns = timed(traced, repeat=5)
    print(f"nnsight trace / plain forward: {nns / plain:.2f}x  ({plain * 1e3:.1f} ms vs {nns * 1e3:.1f} ms)")

    # 2. batching
    t_batch = timed(lambda: runner.run(prompts, images, max_new_tokens=8, batch_size=a.batch, progress=False))
    k = min(16, a.n)
    t_single = timed(lambda: runner.run(prompts[:k], images[:k], max_new_tokens=8, batch_size=1, progress=False))
    per_ex_single, per_ex_batch = t_single / k, t_batch / a.n
    print(f"one-by-one / batched time per example: {per_ex_single / per_ex_batch:.1f}x "
          f"({per_ex_single * 1e3:.1f} ms vs {per_ex_batch * 1e3:.1f} ms)")

    # 3. modes
    trace = runner.run(prompts, images, max_new_tokens=8, batch_size=a.batch, progress=False)
    t_rep = timed(lambda: runner.intervene(trace, Zero(), steps=[1], mode="replay", batch_size=a.batch, progress=False))
    t_pro = timed(lambda: runner.intervene(trace, Zero(), steps=[1], mode="propagate", batch_size=a.batch, progress=False))
    t_red = timed(lambda: runner.intervene(trace, Zero(), steps=[1], mode="redecode", batch_size=a.batch, progress=False))
    print(f"propagate / replay: {t_pro / t_rep:.2f}x   redecode / replay: {t_red / t_rep:.2f}x   "
          f"(replay {t_rep * 1e3 / a.n:.2f} ms per example)")

    # 4. a sweep: each condition alone vs all on shared prefixes
    conds = {f"scale{s}": Scale(s) for s in (0.0, 0.5, 2.0, 4.0)}
    for mode in ("propagate", "redecode"):
        t_one = timed(lambda: [runner.intervene(trace, c, mode=mode, batch_size=a.batch, progress=False)
                               for c in conds.values()])
        t_many = timed(lambda: runner.intervene_many(trace, conds, mode=mode, max_batch=4 * a.batch))
        print(f"sweep of {len(conds)} ({mode}): intervene per condition / intervene_many: {t_one / t_many:.2f}x")


if __name__ == "__main__":
    main()
