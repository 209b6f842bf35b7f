"""The latent-only behavioural probe: can a derived question be answered from the latents alone?

Runs a shipped toy model on an original question about an image (latents Z), then answers a derived question
about the same image three ways: with the image (the ceiling), with a blank image (the floor), and with a blank
image but the original run's latents fed (``latents_only``). If the latents carry the image's content,
``latents_only`` beats ``blank``; the paired difference comes with Tango's interval and its p-value.

    python examples/probing/latent_only.py --variant mediated --out results/latent_only
    python examples/probing/latent_only.py --variant blind --quick

The planted truth: ``mediated`` latents carry the image (latents_only well above blank); ``blind`` latents do
not (latents_only about blank).
"""

from __future__ import annotations

import time

import pandas as pd
import plotly.graph_objects as go

from _common import example_parser, out_dir, parse_common, write_tables
from latentprobe.behavioural import behavioural_probe
from latentprobe.toy import load, toy_derived_inputs
from latentprobe.toy.model import LATENT_VARIANTS


def accuracy_figure(summary, variant):
    """Accuracy per condition with its interval."""
    s = summary
    fig = go.Figure(go.Bar(x=s["condition"], y=s["accuracy"],
                           error_y={"type": "data", "symmetric": False, "array": s["ci_high"] - s["accuracy"],
                                    "arrayminus": s["accuracy"] - s["ci_low"]}))
    fig.update_layout(title=f"Derived questions answered from the image, nothing, or the latents (toy '{variant}')",
                      yaxis_title="accuracy", xaxis_title="condition", yaxis_range=[0, 1])
    return fig


def main(argv=None):
    ap = example_parser(__doc__)
    ap.add_argument("--variant", default="mediated", choices=LATENT_VARIANTS, help="which shipped toy model")
    ap.add_argument("--n", type=int, default=300, help="test examples drawn (derived questions exist for some)")
    ap.add_argument("--batch-size", type=int, default=64, help="sequences per forward")
    ap.add_argument("--quick", action="store_true", help="120 examples, 300 bootstrap resamples")
    ap.add_argument("--out", default=None, help="folder for the summary, tests and rows (CSV, parquet) and a figure")
    args = parse_common(ap, argv, n_boot=2000)
    if args.quick:
        args.n, args.n_boot = 120, 300
    t0 = time.time()
    tm = load(args.variant)
    original, derived = toy_derived_inputs(tm.examples("test", n=args.n))
    res = behavioural_probe(tm.runner(), original, derived, max_new_tokens=min(args.max_new_tokens, 8),
                            batch_size=args.batch_size, n_boot=args.n_boot, seed=args.seed)
    pd.set_option("display.width", 200)
    print(f"\nLatent-only behavioural probe on toy '{args.variant}': {len(derived)} derived questions "
          f"(dropped: {res.dropped or 'none'})")
    print(res.summary[["condition", "accuracy", "ci_low", "ci_high", "n"]].round(3).to_string(index=False))
    acc = res.summary.set_index("condition")["accuracy"]
    t = res.tests.set_index("name").loc["latents_only - blank"]
    print(f"\nsummary: image {acc['image']:.3f}, blank {acc['blank']:.3f}, latents_only {acc['latents_only']:.3f}; "
          f"latents_only - blank {t['estimate']:+.3f} [{t['ci_low']:+.3f}, {t['ci_high']:+.3f}], p {t['p_value']:.2g}")
    out = out_dir(args.out)
    if out is not None:
        write_tables(out, summary=res.summary, tests=res.tests, rows=res.rows)
        accuracy_figure(res.summary, args.variant).write_html(out / "latent_only.html", include_plotlyjs="cdn")
        print(f"\ntables and figure written to {out}")
    print(f"({time.time() - t0:.0f} s)")
    return res


if __name__ == "__main__":
    main()
