"""Activation patching as an analysis record (study key ``[analyses.patching]``; :func:`latentprobe.causal.patch`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from latentprobe.analyses.base import Analysis, ReportSink, Unit, example_units
from latentprobe.analyses.context import Context
from latentprobe.analyses.options import AnalysisOptions, option
from latentprobe.causal.patch_schema import PATCH_ROWS, PATCH_SUMMARY
from latentprobe.causal.patch_stats import PatchResult
from latentprobe.causal.patching import GROUPS, ROUTES

__all__ = ["Patching", "PatchingOptions"]


@dataclass(frozen=True, kw_only=True)
class PatchingOptions(AnalysisOptions):
    """Options of ``patching`` (:func:`latentprobe.causal.patch`)."""

    perturbation: str = option(choices="perturbations", doc="the counterfactual source of each example (X -> Z "
                               "perturbation)")
    positions: tuple[str, ...] = option(GROUPS, choices=GROUPS, doc="position groups patched")
    layers: tuple[int, ...] | None = option(None, all_value=True, min_value=0,
                                            doc='residual layers (0 = the fed latent, latents only) or "all" (1..L)')
    modes: tuple[str, ...] = option(("replay", "propagate", "redecode"), choices="modes", doc="intervention modes")
    routes: bool = option(True, doc="add route patching (image with latents frozen, and the reverse; redecode)")
    align: str = option("none", choices=("none", "end"), doc="groups of different lengths: refuse, or match the "
                        "last positions")


class Patching(Analysis):
    """Activation patching: which position groups and layers carry the information the answer uses."""

    key = "patching"
    title = "Activation patching: where does the information flow?"
    Options = PatchingOptions
    tables = {"summary": PATCH_SUMMARY, "table": PATCH_ROWS}
    rows_table = "table"
    result_types = (PatchResult,)
    frame_keys = frozenset({"position_group", "layer", "mode", "metric", "estimate", "p_holm"})

    def check(self, options: AnalysisOptions, ctx: Context) -> None:
        assert isinstance(options, PatchingOptions)
        ctx.perturbation(options.perturbation, 0)

    def plan(self, ctx: Context, options: AnalysisOptions) -> list[Unit]:
        """One unit per ``batch_size`` examples: each stored as it finishes, so a stopped study resumes at the next
        unit, and workers share the units out."""
        return example_units(len(ctx.inputs), int(options.batch_size or 1))

    def run_unit(self, ctx: Context, options: AnalysisOptions, unit: Unit) -> pd.DataFrame:
        from latentprobe.causal.patching import patch_rows

        assert isinstance(options, PatchingOptions)
        seed = int(options.seed or 0)
        rows, _ = patch_rows(ctx.runner, ctx.inputs, ctx.perturbation(options.perturbation, seed),
                             positions=list(options.positions),
                             layers=None if options.layers is None else list(options.layers),
                             modes=list(options.modes), routes=options.routes,
                             align=None if options.align == "none" else options.align,
                             max_new_tokens=ctx.max_new_tokens, batch_size=int(options.batch_size or 1), seed=seed,
                             logits_processor=ctx.logits_processor,
                             indices=list(unit.data))  # type: ignore[call-overload]
        return rows

    def summarise(self, ctx: Context, options: AnalysisOptions, rows: pd.DataFrame) -> PatchResult:
        from latentprobe.causal.patch_stats import summarize_patching

        assert isinstance(options, PatchingOptions)
        seed = int(options.seed or 0)
        groups = list(options.positions)
        wanted = [(e, m, g) for e in ctx.inputs.example_ids for m in options.modes
                  for g in groups + (list(ROUTES) if options.routes and m == "redecode" else [])]
        have = set(zip(rows["example_id"], rows["mode"], rows["position_group"])) if len(rows) else set()
        skipped = [{"example_id": e, "mode": m, "group": g,
                    "reason": "not patched: the group is empty here, the mode regenerates its positions, or the two "
                              "runs' latent counts differ (latentprobe.causal.patch)"}
                   for e, m, g in wanted if (e, m, g) not in have]
        config = {"analysis": "patching", "positions": groups, "layers": options.layers, "modes": list(options.modes),
                  "routes": bool(options.routes), "align": options.align, "seed": seed, "skipped": skipped,
                  "n_boot": int(options.n_boot or 0), "ci": options.ci, "units": "batch_size examples each"}
        return PatchResult(table=rows, summary=summarize_patching(rows, n_boot=int(options.n_boot or 0), seed=seed,
                                                                  ci=options.ci), config=config)

    def from_tables(self, tables: Mapping[str, pd.DataFrame], config: Mapping[str, Any],
                    folder: Path | None = None) -> PatchResult:
        return PatchResult(table=tables["table"], summary=tables["summary"], config=dict(config))

    def figures(self, result: PatchResult | pd.DataFrame) -> list[Any]:
        from latentprobe import viz

        s = self.summary_of(result)
        return [viz.patching_heatmap(s)] if (s["metric"] == "flip_rate").any() else []

    def section(self, report: ReportSink, result: PatchResult | pd.DataFrame, *, title: str | None = None,
                level: int = 2) -> None:
        s = self.summary_of(result)
        report.add_heading(title or "Activation patching: which positions and layers carry the answer?", level)
        for fig in self.figures(result):
            report.add_figure(fig)
        keep = [c for c in ("mode", "position_group", "layer", "metric", "n", "estimate", "ci_low", "ci_high",
                            "p_value", "p_holm", "p_bh", "note") if c in s.columns]
        table = s[s["metric"].isin(("flip_rate", "to_source_rate", "accuracy_change"))][keep]
        report.add_table(table, caption="Each cell writes the counterfactual run's residual (output of decoder layer "
                         "layer − 1) at one position group into the base run and reads the answer in one mode. "
                         "flip_rate: fraction of examples whose answer differs from the same mode's unpatched control "
                         "(Wilson interval; p: paired score test against no flips); to_source_rate: the answer became "
                         "the counterfactual run's; accuracy_change: patched − control (Tango's score interval). "
                         "p_holm / p_bh: Holm and Benjamini-Hochberg adjustment over the cells of each metric. Route "
                         "cells: image|latents_frozen patches the image tokens while the latents' residuals stay at "
                         "the base run's values at every layer (redecode).")
        config = getattr(result, "config", {}) or {}
        if config.get("skipped"):
            n = len(config["skipped"])
            report.add_note(f"{n} example x mode x group cells were not patched: a mode cannot write positions it "
                            "regenerates (propagate: from the first latent on; redecode: the answer), or the group is "
                            "empty. config.json lists them.", title="Cells left out")

    def headline(self, result: PatchResult | pd.DataFrame) -> dict[str, str]:
        s = self.summary_of(result)
        s = s[s["metric"] == "flip_rate"]
        out = {}
        for mode, g in s.groupby("mode", sort=False):
            top = g.sort_values("estimate", ascending=False).iloc[0]
            out[f"patching ({mode})"] = (f"largest flip rate {top['estimate']:.3f} at {top['position_group']}, "
                                         f"layer {int(top['layer'])}")
        return out
