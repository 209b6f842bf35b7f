"""The decodability gap: is an image attribute decodable in the latents, and at the positions downstream?

Runs a shipped toy model, gathers the residuals of the latents and of other position groups (the close
marker, the first answer token, the last prompt token, the image positions mean-pooled, the question text
mean-pooled) at the chosen layers, probes the queried colour at every group on the same folds with controls,
and prints per layer each group's score and the gap (latents minus group) with its paired group-bootstrap
interval.

    python examples/probing/gap.py --variant blind --out results/gap
    python examples/probing/gap.py --variant mediated --quick

The planted truth: in ``blind`` the latents cannot attend to the image, so they sit at chance while the
image positions (and the close marker and answer, which may read the image) decode the colour: the gap is
negative. In ``mediated`` the latents carry the image, so they decode it too. Information decodable
downstream but not in the latents reaches the answer some other way; a probe is still not use.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from threadpoolctl import threadpool_limits

from _common import example_parser, out_dir, parse_common, toy_trace, write_tables
from latentprobe import probing, readouts
from latentprobe.toy.model import LATENT_VARIANTS

GROUPS = ("latents", "close", "first_answer", "last_prompt", "image", "question")


def gap_figure(res, layer):
    """Bars: each group's held-out score (steps pooled) at one layer, the latents' score as a line."""
    g = res.gap[res.gap["layer"] == layer]
    fig = go.Figure(go.Bar(x=g["position_group"], y=g["score"], name="position group",
                           error_y={"type": "data", "symmetric": False, "array": (g["gap"] - g["gap_ci_low"]),
                                    "arrayminus": (g["gap_ci_high"] - g["gap"])}))
    fig.add_hline(y=float(g["reference_score"].iloc[0]), line_dash="dash", annotation_text="latents")
    fig.add_hline(y=float(g["chance"].iloc[0]), line_dash="dot", annotation_text="chance")
    fig.update_layout(title=f"Decodability by position group, layer {layer} (error bars: gap interval)",
                      yaxis_title="held-out score", xaxis_title="position group")
    return fig


def main(argv=None):
    ap = example_parser(__doc__)
    ap.add_argument("--variant", default="blind", choices=LATENT_VARIANTS, help="which shipped toy model")
    ap.add_argument("--n", type=int, default=200, help="number of test examples")
    ap.add_argument("--groups", nargs="+", default=list(GROUPS), choices=GROUPS, help="position groups probed")
    ap.add_argument("--layers", type=int, nargs="+", default=[0, 2, 4], help="residual layers")
    ap.add_argument("--n-splits", type=int, default=4, help="outer folds of the grouped cross-validation")
    ap.add_argument("--quick", action="store_true", help="64 examples, layer 4, groups latents/close/image, 3 folds")
    ap.add_argument("--out", default=None, help="folder for scores and gap tables (CSV, parquet) and a figure (HTML)")
    args = parse_common(ap, argv, n_boot=0)
    if args.quick:
        args.n, args.layers, args.n_splits, args.groups = 64, [4], 3, ["latents", "close", "image"]
    t0 = time.time()
    runner, ex, trace = toy_trace(args.variant, args.n, args.max_new_tokens)
    pf = readouts.position_features(runner, trace, ["latents", *args.groups], layers=args.layers)
    kept = list(pf.kept)
    groups = np.array([ex[i].image_id for i in kept])
    y = np.array([ex[i].attributes["target_colour"] for i in kept])
    types = probing.recurring_types([ex[i].question for i in kept], groups, n_splits=args.n_splits, seed=args.seed)
    with threadpool_limits(limits=1, user_api="blas"):
        res = probing.probe_positions(pf.features, y, groups, layer_names=pf.layers, target_name="target_colour",
                                      n_splits=args.n_splits, seed=args.seed, control_types=types,
                                      probe=probing.LinearProbe(Cs=(1.0,)) if args.quick else None,
                                      n_perm=0 if args.quick else None)
    pd.set_option("display.width", 200)
    print(f"\nDecodability gap on toy '{args.variant}': target_colour, {len(kept)} examples "
          f"({len(pf.dropped)} dropped), residuals from the {pf.source}")
    print("best held-out score per group (rows: residual layer; latents: best step)")
    print(res.pivot().round(3).to_string())
    print("\ngap = latents - group (steps mean-pooled, same folds) [95% paired group-bootstrap interval]")
    for _, r in res.gap.iterrows():
        print(f"  layer {r['layer']} {r['position_group']:>12}: latents {r['reference_score']:.3f}, "
              f"group {r['score']:.3f}, gap {r['gap']:+.3f} [{r['gap_ci_low']:+.3f}, {r['gap_ci_high']:+.3f}]")
    last = max(pf.layers)
    g = res.gap[res.gap["layer"] == last].set_index("position_group")
    chance = float(res.scores["chance"].iloc[0])
    majority = float(res.scores["majority"].iloc[0])
    summary = ", ".join([f"latents {g['reference_score'].iloc[0]:.3f}"] +
                        [f"{name} {g.loc[name, 'score']:.3f} (gap {g.loc[name, 'gap']:+.3f})" for name in g.index])
    print(f"\nsummary layer {last}: chance {chance:.3f}; majority {majority:.3f}; {summary}")
    out = out_dir(args.out)
    if out is not None:
        write_tables(out, scores=res.scores, gap=res.gap)
        gap_figure(res, last).write_html(out / "gap.html", include_plotlyjs="cdn")
        print(f"\ntables and figure written to {out}")
    print(f"({time.time() - t0:.0f} s)")
    return res


if __name__ == "__main__":
    main()
