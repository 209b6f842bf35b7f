"""Step structure: how do the latent steps depend on one another, and which of them does the answer read?

Runs a toy model, then: the step -> step influence matrix (another example's latent swapped in at step i,
the later latents and the answer generated again), early exit after k latents, runs with K' latents,
oracle injection of the latents of the counterfactual input's run, and the format-only and no-latents
conditions. On ``mediated`` the oracle's latents carry the counterfactual answer; on ``bypass`` the
answer never reads the latents.

    python examples/steps.py --variant mediated --n 40 --out results/steps

``--quick`` runs 12 examples with 200 bootstrap draws; ``--out`` writes the tables (CSV) and the
influence heatmap (HTML).
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from latentprobe import viz
from latentprobe.causal import step_influence
from _toy_setup import example_parser, parse_common, setup  # noqa: E402  (examples/ is on sys.path when run as a script)
from latentprobe.toy.model import LATENT_VARIANTS
from latentprobe.toy.perturbations import Counterfactual, toy_inputs


def main(argv=None):
    ap = example_parser(__doc__)
    ap.add_argument("--variant", default="mediated", choices=LATENT_VARIANTS, help="which shipped toy model")
    ap.add_argument("--n", type=int, default=40, help="number of test examples")
    ap.add_argument("--counts", type=int, nargs="*", default=[2, 6], help="latent counts K' to run")
    ap.add_argument("--quick", action="store_true", help="12 examples and 200 bootstrap draws")
    ap.add_argument("--out", default=None, help="folder for the tables (CSV) and the heatmap (HTML)")
    args = parse_common(ap, argv, n_boot=1000)
    if args.quick:
        args.n, args.n_boot = min(args.n, 12), min(args.n_boot, 200)
    t0 = time.time()
    runner, examples, proc = setup(args)
    inputs = toy_inputs(examples)
    kw = dict(max_new_tokens=args.max_new_tokens, logits_processor=proc, seed=args.seed, progress=False)
    trace = runner.run(**inputs.run_kwargs(), **kw)
    oracle = runner.run(**Counterfactual(seed=args.seed).apply(inputs).run_kwargs(), **kw)
    res = step_influence(runner, trace, gold=inputs, counts=args.counts, oracle=oracle, seed=args.seed,
                         n_boot=args.n_boot)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 20)
    pd.set_option("display.max_rows", 200)
    print(f"\nStep structure on toy '{args.variant}': {res.config['n_kept']} examples with K = "
          f"{res.config['num_latents']} latents")
    print("\ninfluence matrix (mean 1 - cosine of z_j after do(z_i); answer: flip rate):")
    print(res.matrix().round(3).to_string())
    s = res.summary
    s = s[(s.target_step == -1) & s.metric.isin(["flip", "accuracy_change", "moved"])]
    print("\nthe answer under each condition, estimate [95% CI]:")
    print(s[["condition", "step", "metric", "n", "estimate", "ci_low", "ci_high"]].to_string(index=False))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        res.table.to_csv(out / "steps_table.csv", index=False)
        res.summary.to_csv(out / "steps_summary.csv", index=False)
        viz.influence_heatmap(res).write_html(out / "influence_heatmap.html", include_plotlyjs="cdn")
    print(f"({time.time() - t0:.1f} s)")
    return res


if __name__ == "__main__":
    main()
