"""X -> Z: do the latents change when the input changes?

Runs a toy model on clean inputs and on controlled perturbations of them (image swap, blank
image, Gaussian-noise image, occlusion of the queried object, question swap, whole-instance swap,
minimal-pair counterfactual) and compares the latents at each step and layer with the clean ones
(cosine similarity, relative L2), next to the same comparison for prompt-token states. It also
prints the paper's inter-instance similarity of clean latents.

    python examples/xz_similarity.py --variant mediated --n 60 --out results/xz

``--random-init`` runs an untrained model (forced into latent mode) when the shipped weights are
not available: the structural facts (``blind`` latents ignore the image) hold even then.
"""

from __future__ import annotations

import time

import pandas as pd
import torch

from latentprobe.causal import x_to_z
from latentprobe.perturbations import (
    BlankImage, ImageSwap, InstanceSwap, NoiseImage, QuestionSwap,
)
from _toy_setup import example_parser, parse_common, setup  # noqa: E402  (examples/ is on sys.path when run as a script)
from latentprobe.toy.model import VARIANTS
from latentprobe.toy.perturbations import Counterfactual, OccludeTarget, toy_inputs


def cell(est, lo, hi):
    return f"{est:.3f} [{lo:.3f}, {hi:.3f}]"


def main(argv=None):
    ap = example_parser(__doc__)
    ap.add_argument("--variant", default="mediated", choices=VARIANTS, help="which shipped toy model")
    ap.add_argument("--n", type=int, default=60, help="number of test examples")
    ap.add_argument("--out", default=None, help="folder for resumable results (parquet) and the summary CSV")
    args = parse_common(ap, argv, n_boot=1000)
    t0 = time.time()
    runner, examples, proc = setup(args)
    inputs = toy_inputs(examples)
    perts = [ImageSwap(seed=args.seed), BlankImage(), NoiseImage(seed=args.seed), OccludeTarget(),
             Counterfactual(seed=args.seed), QuestionSwap(seed=args.seed), InstanceSwap(seed=args.seed)]
    res = x_to_z(runner, inputs, perts, out_dir=args.out, seed=args.seed, n_boot=args.n_boot,
                 max_new_tokens=args.max_new_tokens, logits_processor=proc)
    s = res.summary
    last = runner.n_layers
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)

    print(f"\nX -> Z on toy '{args.variant}' ({len(inputs)} examples): mean cosine(clean, perturbed) [95% CI]")
    for layer, title in ((0, "fed latent z (layer 0)"), (last, f"residual after the last layer (layer {last})")):
        sl = s[(s["layer"] == layer) & (s["metric"] == "cosine")]
        table = {}
        for _, r in sl.iterrows():
            col = f"z step {r['step']}" if r["source"] == "latent" else r["source"]
            table.setdefault(r["perturbation"], {})[col] = cell(r["estimate"], r["ci_low"], r["ci_high"])
            table[r["perturbation"]]["n"] = int(r["n"])
        print(f"\n-- {title}")
        frame = pd.DataFrame.from_dict(table, orient="index")
        print(frame[[c for c in frame.columns if c != "n"] + ["n"]].to_string())
    rel = s[(s["source"] == "latent") & (s["metric"] == "rel_l2") & (s["layer"] == 0)]
    print("\n-- relative L2 ||z' - z|| / ||z|| of the fed latents, averaged over steps")
    print(rel.groupby("perturbation", sort=False)["estimate"].mean().round(4).to_string())
    a = res.across[res.across["layer"] == 0]
    print("\n-- inter-instance cosine of clean latents (different examples, same step)")
    print(a.pivot(index="step", columns="center", values="mean_offdiag").rename(
        columns={False: "raw", True: "centred"}).round(4).to_string())
    print(f"\ndropped: {res.drop_counts() or 'none'}")
    if args.out:
        s.to_csv(f"{args.out}/x_to_z_summary.csv", index=False)
        res.across.to_csv(f"{args.out}/x_to_z_across.csv", index=False)
    print(f"({time.time() - t0:.1f} s)")
    return res


if __name__ == "__main__":
    main()
