"""Probe image attributes per residual layer x latent step, with control tasks and selectivity.

Runs a shipped toy model on questions about a shape's colour, reads the residuals at every latent step and
layer, and probes the queried colour (``target_colour``) with nested grouped cross-validation (one image never
straddles train and test), a label-shuffle baseline and a control task keyed by the question (selectivity =
score - control). ``--numeric`` adds a regression probe of a count (``count_red``, ridge, R^2) with its
shuffled-target control.

    python examples/probing/attributes.py --variant mediated --out results/attributes
    python examples/probing/attributes.py --variant blind --quick

The planted truth: ``mediated`` latents read the image (high score, high selectivity); ``blind`` latents
cannot attend to the image (chance, selectivity about 0). A probe's score is decodability, not use.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from _common import example_parser, out_dir, parse_common, toy_trace, write_tables
from latentprobe import probing, viz
from latentprobe.toy.model import LATENT_VARIANTS


def main(argv=None):
    ap = example_parser(__doc__)
    ap.add_argument("--variant", default="mediated", choices=LATENT_VARIANTS, help="which shipped toy model")
    ap.add_argument("--n", type=int, default=200, help="number of test examples")
    ap.add_argument("--layers", type=int, nargs="+", default=None, help="residual layers (default all)")
    ap.add_argument("--n-splits", type=int, default=4, help="outer folds of the grouped cross-validation")
    ap.add_argument("--numeric", action="store_true", help="also probe count_red by ridge regression (R^2)")
    ap.add_argument("--quick", action="store_true", help="64 examples, layers 0 and 4, 3 folds, one C")
    ap.add_argument("--out", default=None, help="folder for scores.csv/.parquet and the heatmaps (HTML)")
    args = parse_common(ap, argv, n_boot=0)
    if args.quick:
        args.n, args.layers, args.n_splits = 64, [0, 4], 3
    t0 = time.time()
    runner, ex, trace = toy_trace(args.variant, args.n, args.max_new_tokens)
    layers = list(range(runner.n_layers + 1)) if args.layers is None else args.layers
    X = trace.features(layers=layers)  # [n, L, K, d]
    kept = trace.kept_indices()
    groups = np.array([ex[i].image_id for i in kept])
    y = np.array([ex[i].attributes["target_colour"] for i in kept])
    types = probing.recurring_types([ex[i].question for i in kept], groups, n_splits=args.n_splits, seed=args.seed)
    probe = probing.LinearProbe(Cs=(1.0,)) if args.quick else None
    feats = {(layer, s): X[:, j, s] for j, layer in enumerate(layers) for s in range(X.shape[2])}
    with threadpool_limits(limits=1, user_api="blas"):
        res = probing.probe_sweep(feats, y, groups, target_name="target_colour", n_splits=args.n_splits,
                                  seed=args.seed, control_types=types, probe=probe, progress=False,
                                  n_perm=0 if args.quick else None)
        frames = [res.scores]
        if args.numeric:
            counts = probing.numeric_values([ex[i].attributes["count_red"] for i in kept], name="count_red")
            num = probing.probe_sweep(feats, counts, groups, task="regression", target_name="count_red",
                                      n_splits=args.n_splits, seed=args.seed, control_types="shuffled",
                                      probe=None if probe is None else probing.LinearProbe(task="regression",
                                                                                           Cs=(1.0,)),
                                      progress=False, n_perm=0 if args.quick else None)
            frames.append(num.scores)
    scores = pd.concat(frames, ignore_index=True)
    pd.set_option("display.width", 200)
    print(f"\nProbes on toy '{args.variant}': {len(kept)} examples, {len(np.unique(groups))} images, "
          f"layers {layers}, {X.shape[2]} latent steps")
    for target, sub in scores.groupby("target", sort=False):
        print(f"\n-- {target}: held-out score (rows: residual layer, columns: latent step)")
        print(sub.pivot(index="layer", columns="step", values="score").round(3).to_string())
        best = sub.loc[sub["score"].idxmax()]
        print(f"summary {target}: best score {best['score']:.3f} at layer {best['layer']}, step {best['step']}; "
              f"chance {best['chance']:.3f}; control {best['control']:.3f}; selectivity {best['selectivity']:+.3f} "
              f"[{best['selectivity_ci_low']:+.3f}, {best['selectivity_ci_high']:+.3f}]")
    out = out_dir(args.out)
    if out is not None:
        write_tables(out, scores=scores)
        for target, sub in scores.groupby("target", sort=False):
            for value in ("score", "selectivity"):
                viz.probe_heatmap(sub, value).write_html(out / f"{target}_{value}.html", include_plotlyjs="cdn")
        print(f"\ntables and figures written to {out}")
    print(f"({time.time() - t0:.0f} s)")
    return scores


if __name__ == "__main__":
    main()
