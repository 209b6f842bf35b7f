"""The ``latentprobe`` command."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="latentprobe")
def main() -> None:
    """latentprobe: do latent reasoning tokens actually carry the reasoning?"""


@main.command()
def presets() -> None:
    """List the latent-reasoning protocols (LatentSpec presets)."""
    from latentprobe.presets import get_preset, list_presets

    for name in list_presets():
        s = get_preset(name)
        click.echo(f"{name:10s} {s.base:28s} open={s.open_mode:9s} K={s.num_latents:<3d} offset={s.first_offset} "
                   f"stop={s.stop:9s} slots={s.slot_policy:11s} f={s.projection} mediator={s.mediator}")


@main.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("latentprobe-demo"),
              show_default=True, help="Folder for the HTML report, tables and traces.")
@click.option("--n", "n_examples", type=int, default=200, show_default=True, help="Held-out examples per variant.")
@click.option("--variants", default="mediated,bypass,blind,free,text", show_default=True,
              help="Comma-separated toy variants.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo(out_dir: Path, n_examples: int, variants: str, seed: int, quiet: bool) -> None:
    """Run the whole analysis on the shipped toy models and write an HTML report (no downloads)."""
    from latentprobe.demo import run_demo

    names = [v.strip() for v in variants.split(",") if v.strip()]
    result = run_demo(out_dir, n_examples=n_examples, variants=names, seed=seed, progress=not quiet,
                      echo=click.echo)
    click.echo(f"\nreport: {result.report_path}")


@main.group()
def toy() -> None:
    """The embedded toy models."""


@toy.command("train")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the trained weights ({variant}.safetensors + {variant}.json).")
@click.option("--variant", "variants", multiple=True, help="Variant(s) to train (default: all).")
@click.option("--seed", type=int, default=0, show_default=True)
def toy_train(out_dir: Path, variants: tuple[str, ...], seed: int) -> None:
    """Retrain the shipped toy variants (deterministic for a seed on CPU)."""
    from latentprobe.toy.model import VARIANTS
    from latentprobe.toy.training import train_all

    chosen = tuple(variants) or VARIANTS
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown:
        raise click.BadParameter(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}.")
    metrics = train_all(out_dir, seed=seed, variants=chosen)
    for v, m in metrics.items():
        click.echo(f"{v:9s} test accuracy {m.get('test_accuracy', float('nan')):.3f}")


@main.command("trace")
@click.argument("variant")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--n", "n_examples", type=int, default=32, show_default=True)
def trace_cmd(variant: str, out_dir: Path, n_examples: int) -> None:
    """Run a shipped toy variant on held-out examples and save the LatentTrace (safetensors + JSON)."""
    from latentprobe.toy import load

    tm = load(variant)
    ex = tm.examples("test", n=n_examples)
    tr = tm.runner().run(tm.prompts(ex), tm.images(ex), example_ids=[e.example_id for e in ex], max_new_tokens=12)
    tr.save(out_dir)
    click.echo(f"{len(tr)} examples, accuracy {tm.accuracy(tr, ex):.3f}; saved to {out_dir}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
