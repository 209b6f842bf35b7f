"""``latentprobe demo``: the whole analysis on the shipped toy models, with known ground truth.

For each toy variant it runs held-out examples through the latent loop, then measures
X -> Z (minimal-pair counterfactual image and image swap), Z -> Y (latent interventions), the
TE / NDE / NIE decomposition for the counterfactual image, linear probes for the queried colour,
and latent collapse; prints a summary table and writes one offline HTML report. The planted
variants show what each number looks like when the truth is known.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from latentprobe.errors import InputError

__all__ = ["DemoResult", "run_demo", "TRUTH"]

TRUTH = {
    "mediated": "all visual information must pass through the latents: strong X->Z and Z->Y.",
    "bypass": "the answer cannot attend to the latents: Z->Y (and NIE) exactly zero.",
    "blind": "the latents cannot attend to the image: X->Z exactly zero, probes at chance.",
    "free": "ordinary causal attention, like the real models: the truth is unknown.",
    "text": "explicit text imagination (a caption span) instead of latents: the truth is unknown.",
}

ZY_INTERVENTIONS = ("swap", "swap_placebo", "zero", "add_noise", "shared_tensor", "mean_ablate", "no_latents")


@dataclass(frozen=True)
class DemoResult:
    summary: pd.DataFrame
    report_path: Path
    out_dir: Path
    seconds: float


def _stack_hidden(trace: Any, layer: int) -> tuple[np.ndarray, list[int]]:
    t, kept = trace.stack("hidden", layer=layer)
    return t.numpy(), kept


def _image_states(trace: Any, kept: Sequence[int], layer: int) -> np.ndarray:
    """Mean over image positions of the residual at ``layer`` (the image-token baseline)."""
    return np.stack([trace[i].captured_hidden[:, layer].mean(0).numpy() for i in kept])


def _random_weights_runner(tm: Any, seed: int) -> Any:
    from latentprobe.engine import LatentRunner
    from latentprobe.toy import build_model

    model = build_model(tm.tokenizer.get_vocab(), seed=seed + 1)
    return LatentRunner(model, tm.tokenizer, tm.spec.replace(open_mode="appended"), mask_rule=tm.mask_rule)


def run_demo(out_dir: str | Path, *, n_examples: int = 200, variants: Sequence[str] | None = None, seed: int = 0,
             n_boot: int = 1000, progress: bool = True, echo: Callable[[str], None] = print) -> DemoResult:
    """Run the analyses on the shipped toy variants and write ``out_dir/report.html``.

    Returns the summary table (one row per variant) and the report's path. Tables are also written
    as CSV under ``out_dir``. What this does not prove: the toy models are tiny and trained on a
    synthetic task; they show that the measurements recover planted causal structure, not how any
    real model behaves.
    ``progress`` prints one line per variant as it finishes.
    """
    t0 = time.perf_counter()
    if not progress:
        echo = lambda *_a, **_k: None  # noqa: E731
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    # the toy models and probes are small: extra intra-op and BLAS threads only contend with each other
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1), warnings.catch_warnings():
            # random-weights controls converge slowly; the demo's tables carry the scores either way
            warnings.simplefilter("ignore", ConvergenceWarning)
            return _run(out_dir, n_examples=n_examples, variants=variants, seed=seed, n_boot=n_boot, echo=echo,
                        t0=t0)
    finally:
        torch.set_num_threads(threads)


def _run(out_dir: str | Path, *, n_examples: int, variants: Sequence[str] | None, seed: int, n_boot: int,
         echo: Callable[[str], None], t0: float) -> DemoResult:
    from latentprobe import causal, geometry, probing, viz
    from latentprobe.perturbations import ImageSwap
    from latentprobe.report import Report
    from latentprobe.toy import VARIANTS, load
    from latentprobe.toy.perturbations import Counterfactual, toy_inputs
    from latentprobe.toy.shapes import majority_baseline

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    variants = list(variants or VARIANTS)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise InputError(f"unknown toy variant(s) {unknown}; choose from {', '.join(VARIANTS)}.")
    torch.manual_seed(seed)

    rows: list[dict[str, Any]] = []
    decomp_frames, zy_frames, xz_frames, probe_frames, collapse_frames = [], [], [], [], []
    step_mats: dict[str, np.ndarray] = {}
    models: dict[str, Any] = {}
    sample_ids: list[str] = []
    for v in variants:
        tv = time.perf_counter()
        tm = load(v)
        ex = tm.examples("test", n=n_examples)
        inputs = toy_inputs(ex)
        runner = tm.runner()
        models[v] = runner
        sample_ids = sample_ids or [e.example_id for e in ex]
        mnt = 16 if v == "text" else 8
        trace = runner.run(tm.prompts(ex), tm.images(ex), example_ids=[e.example_id for e in ex],
                           max_new_tokens=mnt, capture_positions="image", batch_size=32, progress=False)
        acc = tm.accuracy(trace, ex)
        row: dict[str, Any] = {"variant": v, "n": len(ex), "accuracy": acc, "majority": majority_baseline(ex),
                               "entered_latent_mode": float(np.mean(trace.entered))}
        common = dict(n_boot=n_boot, seed=seed, batch_size=32, chunk_size=100, progress=False, max_new_tokens=mnt)

        # X -> Z: a minimal-pair counterfactual image and an image swap, against image-token states
        xz = causal.x_to_z(runner, inputs, [Counterfactual(seed=seed), ImageSwap(seed=seed)], layers=[0],
                              **common)
        s = xz.summary
        cos = s[(s.metric == "cosine") & (s.layer.isin([0, -1]) | s.source.ne("latent"))]
        for src, name in (("latent", "xz_cos_latent"), ("image_mean", "xz_cos_image_tokens")):
            sel = cos[(cos.perturbation == "counterfactual") & (cos.source == src)]
            row[name] = float(sel.estimate.mean()) if len(sel) else float("nan")
        xz_frames.append(s.assign(variant=v))

        # Z -> Y: latent interventions, answers re-decoded with all latents held (redecode)
        suite = causal.default_interventions(trace, seed=seed)
        chosen = {k: suite[k] for k in ZY_INTERVENTIONS if k in suite}
        zy = causal.z_to_y(runner, trace, chosen, modes=("redecode",), gold=inputs, n_boot=n_boot, seed=seed,
                              batch_size=32, chunk_size=100, progress=False)
        zs = zy.summary
        sw = zs[(zs.intervention == "swap") & (zs.metric == "accuracy_change")]
        row["zy_swap_acc_change"] = float(sw.estimate.iloc[0]) if len(sw) else float("nan")
        fl = zs[(zs.intervention == "swap") & (zs.metric == "flip_rate")]
        row["zy_swap_flip_rate"] = float(fl.estimate.iloc[0]) if len(fl) else float("nan")
        zy_frames.append(zs.assign(variant=v))

        # mediation decomposition for the counterfactual image (outcome: correct w.r.t. the clean gold)
        med = causal.decompose(runner, inputs, Counterfactual(seed=seed), **common)
        for k in ("TE", "NDE", "NIE"):
            e = med.effects[k]
            row[k] = e.estimate
            row[f"{k}_ci"] = f"[{e.ci_low:+.2f}, {e.ci_high:+.2f}]"
        decomp_frames.append(med.summary[med.summary.kind == "effect"].assign(variant=v))

        # probes: the queried object's colour from the mediator vs image-token states
        n_layers = tm.model.config.text_config.num_hidden_layers
        colour = np.array([e.attributes.get("target_colour", "none") for e in ex])
        groups = np.array([e.image_id for e in ex])
        try:
            lat, kept = _stack_hidden(trace, n_layers)
            keep = [i for i in kept if colour[i] != "none"]
            pos = [kept.index(i) for i in keep]
            reps = {"latent (mean over steps)": lat[pos].mean(1), "latent (last step)": lat[pos, -1],
                    "image tokens (mean)": _image_states(trace, keep, n_layers)}
            if v != "text":  # the same architecture with random weights (latent mode opened by the runner)
                rnd = _random_weights_runner(tm, seed)
                rtr = rnd.run([tm.prompts(ex)[i] for i in keep], [ex[i].image() for i in keep],
                              max_new_tokens=mnt, batch_size=32, progress=False)
                reps["random-weights model latents"] = rtr.stack("hidden", layer=n_layers)[0].numpy().mean(1)
            probe = probing.LinearProbe()
            cmp = probing.compare_representations(reps, colour[keep], groups[keep], task="classification",
                                                  target_name="target_colour", n_splits=4, seed=seed, probe=probe)
            probe_frames.append(cmp.assign(variant=v))
            best = cmp[cmp.representation.str.startswith("latent (")].sort_values("score").iloc[-1]
            row["probe_colour_latent"] = float(best.score)
            row["probe_selectivity"] = float(best.selectivity)
            row["probe_chance"] = float(best.chance)
            img = cmp[cmp.representation == "image tokens (mean)"]
            row["probe_colour_image_tokens"] = float(img.score.iloc[0])
        except Exception as err:  # too few examples or classes: report, do not stop the demo
            echo(f"  [{v}] probe skipped: {err}")

        # collapse: how alike are the latents, against image-token states and random vectors
        try:
            z, kept = trace.stack("z")
            img_states = torch.stack([trace[i].captured_hidden[:, 0] for i in kept])  # [n, 16, d]
            idx = np.linspace(0, img_states.shape[1] - 1, z.shape[1]).round().astype(int)
            ct = geometry.collapse_table(z.numpy(), baselines={"image_tokens": img_states[:, idx].numpy()},
                                           seed=seed)
            collapse_frames.append(ct.assign(variant=v))
            lat_raw = ct[(ct.source == "latent") & (ct.centering == "raw")].iloc[0]
            row["across_instance_cos"] = float(lat_raw.across_instance_mean)
            row["effective_rank"] = float(lat_raw.effective_rank)
            step_mats[v] = geometry.within_instance(z.numpy(), n_boot=0).step_matrix
        except Exception as err:
            echo(f"  [{v}] collapse skipped: {err}")

        row["seconds"] = time.perf_counter() - tv
        rows.append(row)
        echo(f"{v:9s} acc {acc:.3f} (majority {row['majority']:.3f})  X->Z cos {row.get('xz_cos_latent', float('nan')):.3f}  "
             f"NIE {row['NIE']:+.3f} {row['NIE_ci']}  swap flip {row['zy_swap_flip_rate']:.3f}  "
             f"[{row['seconds']:.0f} s]")

    summary = pd.DataFrame(rows)
    summary.to_csv(out / "summary.csv", index=False)
    frames = {"decomposition": decomp_frames, "z_to_y": zy_frames, "x_to_z": xz_frames, "probes": probe_frames,
              "collapse": collapse_frames}
    tables = {k: pd.concat(f, ignore_index=True) if f else pd.DataFrame() for k, f in frames.items()}
    for k, df in tables.items():
        df.to_csv(out / f"{k}.csv", index=False)

    cols = ["variant", "n", "accuracy", "majority", "xz_cos_latent", "xz_cos_image_tokens", "TE", "NDE", "NIE",
            "NIE_ci", "zy_swap_flip_rate", "probe_colour_latent", "probe_chance", "across_instance_cos"]
    show = summary[[c for c in cols if c in summary]]
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.3f}".format):
        echo("\n" + show.to_string(index=False))

    # ------------------------------------------------------------------ report
    rep = _report(variants, tables, show, step_mats, models, sample_ids,
                  settings={"n_examples": n_examples, "seed": seed, "n_boot": n_boot, "variants": ", ".join(variants),
                            "Z -> Y interventions": ", ".join(ZY_INTERVENTIONS), "seconds": round(time.perf_counter() - t0, 1)})
    path = rep.write(out / "report.html")
    (out / "settings.json").write_text(json.dumps({"n_examples": n_examples, "seed": seed, "n_boot": n_boot,
                                                   "variants": variants}, indent=1))
    return DemoResult(summary=summary, report_path=path, out_dir=out, seconds=time.perf_counter() - t0)


def _report(variants: Sequence[str], tables: dict[str, pd.DataFrame], show: pd.DataFrame,
            step_mats: dict[str, np.ndarray], models: dict[str, Any], sample_ids: list[str],
            settings: dict[str, Any]) -> Any:
    """The demo's report: one section per analysis, one sub-section per variant, provenance last."""
    from latentprobe import viz
    from latentprobe.report import Report

    n = settings["n_examples"]
    rep = Report("latentprobe demo: planted causal graphs",
                 subtitle=f"{len(variants)} toy variants, {n} held-out questions each, seed {settings['seed']}")
    rep.add_heading("What the variants are")
    rep.add_table(pd.DataFrame({"variant": variants, "known truth": [TRUTH[v] for v in variants]}), order=False)
    rep.add_note("The toy models are tiny and trained on synthetic shapes. They show that the measurements "
                 "recover planted causal structure; they say nothing about how a real model behaves.",
                 kind="info", title="What this does not prove")
    rep.add_heading("Summary")
    rep.add_table(show, order=False, caption="One row per variant. `xz_cos_*`: cosine between clean and "
                  "counterfactual-image states (1 = unchanged). TE/NDE/NIE: effects of the counterfactual image on "
                  "correctness (treated − clean, fraction of examples). `zy_swap_flip_rate`: fraction of answers "
                  "that change when latents are swapped between examples.")
    tab = tables["decomposition"]
    if len(tab):
        rep.add_heading("Mediation: TE, NDE, NIE")
        rep.add_figure(viz.decomposition_bars(tab, by="variant"),
                       caption="Counterfactual image (the queried object's colour changed). NIE: input clean, "
                               "latents from the counterfactual run; NDE: input changed, latents held clean. "
                               + viz.caption_for("decomposition_bars"))
        keep = [c for c in ("variant", "effect", "n", "estimate", "ci_low", "ci_high", "p_value", "note") if c in tab]
        rep.add_table(tab[keep], caption="Effects of the counterfactual image on correctness (treated − clean, "
                      "fraction of examples), per variant: paired bootstrap intervals, McNemar exact p.")
    tab = tables["z_to_y"]
    if len(tab):
        rep.add_heading("Z -> Y: latent interventions")
        rep.add_text("Each intervention replaces the latents and re-decodes the answer with all latents held "
                     "(`redecode`); the control is the same re-decode without a change (`none`). Read the "
                     "`bypass` variant as the check: its answer cannot attend to the latents, so every "
                     "intervention that keeps the latent positions leaves it unchanged.")
        for v in variants:
            sub = tab[tab.variant == v].drop(columns="variant")
            if len(sub):
                rep.add_result(sub, title=v, level=3)
    tab = tables["x_to_z"]
    if len(tab):
        rep.add_heading("X -> Z: do the latents change with the image?")
        for v in variants:
            sub = tab[tab.variant == v].drop(columns="variant")
            if (sub.source == "latent").any():
                rep.add_result(sub, title=v, level=3)
    tab = tables["probes"]
    if len(tab):
        rep.add_heading("Probes: the queried object's colour")
        for v in variants:
            sub = tab[tab.variant == v].drop(columns="variant")
            if len(sub):
                rep.add_result(sub, title=v, level=3)
    tab = tables["collapse"]
    if len(tab):
        rep.add_heading("Collapse: how alike are the latents?")
        for v in variants:
            sub = tab[tab.variant == v].drop(columns="variant")
            if len(sub):
                rep.add_result(sub, title=v, level=3)
            if v in step_mats:
                rep.add_figure(viz.similarity_heatmap(step_mats[v], title=f"{v}: step x step cosine of latents "
                                                                         "(mean over examples)"))
    first = next(iter(models.values()), None)
    runners = {f"toy:{v}": "; ".join(f"{k}: {t}" for k, t in r._summary()[1]) for v, r in models.items()}
    rep.add_provenance(settings=settings, runner=runners or None, spec=first.spec if first is not None else None,
                       sample={"n": len(sample_ids), "selection": "the first n questions of the toy test split "
                               "(fixed by the toy's training seed; no sampling)",
                               "example ids": ", ".join(sample_ids)})
    return rep
