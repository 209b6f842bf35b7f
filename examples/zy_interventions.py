"""Z -> Y: does the answer change when the latents change?

Runs a toy model, then re-runs it with its latents intervened on: the paper's four interventions
(one shared tensor for every latent, added Gaussian noise, replacement by Gaussian noise, near-zero
scaling) and a wider suite (zero, mean ablation, another example's latents, repeat the first
latent, no latents at all, a random direction of matched norm, and a placebo that moves each
latent as far as the swap would, in a random direction). Every condition is compared with the
no-op control of the same mode (replay / propagate / redecode).

    python examples/zy_interventions.py --variant mediated --n 60 --out results/zy

``--random-init`` runs an untrained model when the shipped weights are not available (then only
the structural fact holds: in ``bypass`` nothing changes).
"""

from __future__ import annotations

import time

import pandas as pd
import torch

from latentprobe.causal import MODES, z_to_y
from _toy_setup import example_parser, parse_common, setup  # noqa: E402  (examples/ is on sys.path when run as a script)
from latentprobe.toy.model import VARIANTS
from latentprobe.toy.perturbations import toy_inputs


def main(argv=None):
    ap = example_parser(__doc__)
    ap.add_argument("--variant", default="mediated", choices=VARIANTS, help="which shipped toy model")
    ap.add_argument("--n", type=int, default=60, help="number of test examples")
    ap.add_argument("--out", default=None, help="folder for resumable results (parquet) and the summary CSV")
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES,
                    help="how the answer is regenerated after the intervention")
    args = parse_common(ap, argv, n_boot=1000)
    t0 = time.time()
    runner, examples, proc = setup(args)
    inputs = toy_inputs(examples)
    trace = runner.run(**inputs.run_kwargs(), max_new_tokens=args.max_new_tokens, logits_processor=proc,
                       seed=args.seed, batch_size=16, progress=False)
    res = z_to_y(runner, trace, modes=args.modes, gold=inputs.gold, out_dir=args.out, seed=args.seed,
                 n_boot=args.n_boot, logits_processor=proc, batch_size=16)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 20)
    pd.set_option("display.max_rows", 200)
    n_entered = sum(trace.entered)
    print(f"\nZ -> Y on toy '{args.variant}': {len(trace)} examples, {n_entered} entered latent mode")
    print("changes are intervened minus the same mode's no-op control; estimate [95% CI], p = McNemar exact\n")
    print(res.table().to_string(index=False))
    print(f"\ndropped: {res.drop_counts() or 'none'}")
    if args.out:
        res.summary.to_csv(f"{args.out}/z_to_y_summary.csv", index=False)
    print(f"({time.time() - t0:.1f} s)")
    return res


if __name__ == "__main__":
    main()
