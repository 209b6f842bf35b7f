"""``latentprobe demo``: the whole analysis on the shipped toy models, with known ground truth.

For each toy variant it runs one study file (:data:`DEMO_STUDY`) through the study runner: held-out
examples through the latent loop, then X -> Z (minimal-pair counterfactual image and image swap),
Z -> Y (latent interventions), the TE / NDE / NIE decomposition for the counterfactual image, linear
probes for the queried colour and latent collapse; it prints a summary table and writes one offline
HTML report. The planted variants show what each number looks like when the truth is known.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from latentprobe.errors import InputError

__all__ = ["DemoResult", "run_demo", "demo_study", "TRUTH", "DEMO_STUDY"]

TRUTH = {
    "mediated": "all visual information must pass through the latents: strong X->Z and Z->Y.",
    "bypass": "the answer cannot attend to the latents: Z->Y (and NIE) exactly zero.",
    "blind": "the latents cannot attend to the image: X->Z exactly zero, probes at chance.",
    "free": "ordinary causal attention, like the real models: the truth is unknown.",
    "text": "explicit text imagination (a caption span) instead of latents; the answer cannot attend to the image, "
            "only to the question and the caption.",
}

ZY_INTERVENTIONS = ("swap", "swap_placebo", "zero", "add_noise", "shared_tensor", "mean_ablate", "no_latents")


@dataclass(frozen=True)
class DemoResult:
    """What :func:`run_demo` did.

    Attributes
    ----------
    summary : pandas.DataFrame
        One row per variant: its headline figures and seconds (``out_dir/summary.csv``).
    report_path : Path
        ``out_dir/report.html``.
    out_dir : Path
        The output folder.
    seconds : float
        The wall time.
    """

    summary: pd.DataFrame
    report_path: Path
    out_dir: Path
    seconds: float


#: The demo's study, one per variant (``{...}`` filled by :func:`demo_study`): the toy test split's first
#: ``n`` questions, X -> Z for a counterfactual image and an image swap, Z -> Y re-decoding the answer with
#: the latents held, the decomposition for the counterfactual image, the queried colour probed from several
#: representations, and collapse.
DEMO_STUDY = """[study]
name = "demo-{variant}"
seed = {seed}
description = "latentprobe demo: the {variant} toy ({truth})"

[model]
source = "toy:{variant}"

[data]
benchmark = "toy"
split = "test"
n = {n}
take = "first"

[generation]
max_new_tokens = {max_new_tokens}
scorer = "exact"
batch_size = 32
chunk_size = 100
n_boot = {n_boot}

[analyses.x_to_z]
perturbations = ["counterfactual", "image_swap"]
layers = [0]

[analyses.z_to_y]
interventions = {interventions}
modes = ["redecode"]

[analyses.decompose]
treatment = "counterfactual"

[analyses.representations]
target = "target_colour"
representations = {representations}

[analyses.collapse]
"""


def demo_study(variant: str, *, n_examples: int = 200, seed: int = 0, n_boot: int = 1000) -> str:
    """The study file the demo runs for one toy variant (TOML text).

    Parameters
    ----------
    variant : str
        A toy variant.
    n_examples : int
        Held-out questions (the first ``n`` of the test split).
    seed : int
        ``[study] seed``.
    n_boot : int
        ``[generation] n_boot``.

    Returns
    -------
    str
        The study file's text (:data:`DEMO_STUDY` filled in).
    """
    reps = ["latent_mean", "latent_last", "image_tokens"] + ([] if variant == "text" else ["random_weights"])
    return DEMO_STUDY.format(variant=variant, seed=seed, truth=TRUTH[variant].rstrip("."), n=n_examples,
                             max_new_tokens=16 if variant == "text" else 8, n_boot=n_boot,
                             interventions=json.dumps(list(ZY_INTERVENTIONS)), representations=json.dumps(reps))


def run_demo(out_dir: str | Path, *, n_examples: int = 200, variants: Sequence[str] | None = None, seed: int = 0,
             n_boot: int = 1000, progress: bool = True, echo: Callable[[str], None] = print) -> DemoResult:
    """Run the demo's study on each shipped toy variant, print the summary and write ``out_dir/report.html``.

    Each variant's study file (:func:`demo_study`) runs through the study runner
    (:func:`latentprobe.study.run_study`) into ``out_dir/<variant>/``; the summary row of each variant is
    read from that folder's tables. Tables of all variants are also written as CSV under ``out_dir``.
    What this does not prove: the toy models are tiny and trained on a synthetic task; they show that the
    measurements recover planted causal structure, not how any real model behaves.

    Parameters
    ----------
    out_dir : path
        The output folder.
    n_examples : int
        Held-out questions per variant (the first ``n`` of the test split).
    variants : sequence of str, optional
        Toy variants (default: all five).
    seed : int
        Seeds perturbations, interventions, bootstrap and probes.
    n_boot : int
        Bootstrap resamples of every interval.
    progress : bool
        One line per variant as it finishes.
    echo : callable
        Where lines are printed.

    Returns
    -------
    DemoResult
        The summary table (one row per variant), the report's path, the folder and the wall time.

    Raises
    ------
    InputError
        An unknown variant.
    """
    t0 = time.perf_counter()
    if not progress:
        echo = lambda *_a, **_k: None  # noqa: E731
    from latentprobe.analyses.readouts import step_matrix_of
    from latentprobe.study import load_result, run_study
    from latentprobe.study.analyses import read_table
    from latentprobe.toy import VARIANTS, load
    from latentprobe.toy.shapes import majority_baseline

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    variants = list(variants or VARIANTS)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise InputError(f"unknown toy variant(s) {unknown}; choose from {', '.join(VARIANTS)}.")
    rows: list[dict[str, Any]] = []
    frames: dict[str, list[pd.DataFrame]] = {k: [] for k in ("decomposition", "z_to_y", "x_to_z", "probes", "collapse")}
    step_mats: dict[str, np.ndarray] = {}
    models: dict[str, Any] = {}
    sample_ids: list[str] = []
    (out / "studies").mkdir(exist_ok=True)
    for v in variants:
        tv = time.perf_counter()
        study_file = out / "studies" / f"{v}.toml"
        study_file.write_text(demo_study(v, n_examples=n_examples, seed=seed, n_boot=n_boot))
        folder = out / v
        run_study(study_file, folder, overwrite=True, report=False, progress=False)
        tm = load(v, verify=False)  # the study has just loaded and verified the same weights
        models[v] = tm.runner()
        ex = tm.examples("test", n=n_examples)
        answers = read_table(folder, "answers")
        sample_ids = sample_ids or list(answers["example_id"])
        row: dict[str, Any] = {"variant": v, "n": len(answers),
                               "accuracy": float(np.mean([a == g for a, g in zip(answers["answer"], answers["gold"])])),
                               "majority": majority_baseline(ex), "entered_latent_mode": float(answers["entered"].mean())}
        s = load_result(folder / "x_to_z").summary
        cos = s[(s.metric == "cosine") & (s.layer.isin([0, -1]) | s.source.ne("latent"))]
        for src, name in (("latent", "xz_cos_latent"), ("image_mean", "xz_cos_image_tokens")):
            sel = cos[(cos.perturbation == "counterfactual") & (cos.source == src)]
            row[name] = float(sel.estimate.mean()) if len(sel) else float("nan")
        frames["x_to_z"].append(s.assign(variant=v))
        zs = load_result(folder / "z_to_y").summary
        for metric, name in (("accuracy_change", "zy_swap_acc_change"), ("flip_rate", "zy_swap_flip_rate")):
            sel = zs[(zs.intervention == "swap") & (zs.metric == metric)]
            row[name] = float(sel.estimate.iloc[0]) if len(sel) else float("nan")
        frames["z_to_y"].append(zs.assign(variant=v))
        med = load_result(folder / "decompose")
        for k in ("TE", "NDE", "NIE"):
            e = med.effects[k]
            row[k] = e.estimate
            row[f"{k}_ci"] = f"[{e.ci_low:+.2f}, {e.ci_high:+.2f}]"
        frames["decomposition"].append(med.summary[med.summary.kind == "effect"].assign(variant=v))
        cmp = load_result(folder / "representations")
        frames["probes"].append(cmp.assign(variant=v))
        best = cmp[cmp.representation.str.startswith("latent (")].sort_values("score").iloc[-1]
        row.update(probe_colour_latent=float(best.score), probe_selectivity=float(best.selectivity),
                   probe_chance=float(best.chance),
                   probe_colour_image_tokens=float(cmp[cmp.representation == "image tokens (mean)"].score.iloc[0]))
        col = load_result(folder / "collapse")
        ct = col["collapse"]
        frames["collapse"].append(ct.assign(variant=v))
        lat_raw = ct[(ct.source == "latent") & (ct.centering == "raw")].iloc[0]
        row["across_instance_cos"] = float(lat_raw.across_instance_mean)
        row["effective_rank"] = float(lat_raw.effective_rank)
        step_mats[v] = step_matrix_of(col["step_matrix"])
        row["seconds"] = time.perf_counter() - tv
        rows.append(row)
        echo(f"{v:9s} acc {row['accuracy']:.3f} (majority {row['majority']:.3f})  X->Z cos {row['xz_cos_latent']:.3f}  "
             f"NIE {row['NIE']:+.3f} {row['NIE_ci']}  swap flip {row['zy_swap_flip_rate']:.3f}  "
             f"[{row['seconds']:.0f} s]")

    summary = pd.DataFrame(rows)
    summary.to_csv(out / "summary.csv", index=False)
    tables = {k: pd.concat(f, ignore_index=True) if f else pd.DataFrame() for k, f in frames.items()}
    for k, df in tables.items():
        df.to_csv(out / f"{k}.csv", index=False)

    cols = ["variant", "n", "accuracy", "majority", "xz_cos_latent", "xz_cos_image_tokens", "TE", "NDE", "NIE",
            "NIE_ci", "zy_swap_flip_rate", "probe_colour_latent", "probe_chance", "across_instance_cos"]
    show = summary[[c for c in cols if c in summary]]
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.3f}".format):
        echo("\n" + show.to_string(index=False))

    rep = _report(variants, tables, show, step_mats, models, sample_ids,
                  settings={"n_examples": n_examples, "seed": seed, "n_boot": n_boot, "variants": ", ".join(variants),
                            "Z -> Y interventions": ", ".join(ZY_INTERVENTIONS),
                            "studies": ", ".join(f"studies/{v}.toml" for v in variants),
                            "seconds": round(time.perf_counter() - t0, 1)})
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
                      "fraction of examples), per variant: Tango's paired score intervals and their score-test p.")
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
