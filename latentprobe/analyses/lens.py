"""The logit lens as a record (``lens``): the clean run's residuals at latent and chosen positions read through
the model's final norm and unembedding (:func:`latentprobe.readouts.lens`), with target ranks, entropy and
early commitment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from latentprobe.analyses.base import Analysis, ReportSink
from latentprobe.analyses.context import Context
from latentprobe.analyses.options import AnalysisOptions, OptionError, option
from latentprobe.readouts.lens import HEADS, POSITION_GROUPS, LensResult
from latentprobe.readouts.tables import LENS_CELLS, LENS_COMMITMENT, LENS_ROWS, LENS_TRAJECTORY

__all__ = ["Lens", "LensOptions", "LENS_CAPTION"]

#: What the section's readouts show and what they do not prove.
LENS_CAPTION = (
    "Each residual (layer x position) is read through the model's final norm and unembedding, as if the rest "
    "of the network did nothing (the logit lens); at the last layer this is the model's own next-token "
    "distribution. A readout shows what the unembedding makes of a state; it does not show that the model uses "
    "that token: intermediate layers are not trained to be read this way (a tuned lens corrects the basis), "
    "and a latent that decodes to the answer need not cause it (the Z → Y interventions test that)."
)


@dataclass(frozen=True, kw_only=True)
class LensOptions(AnalysisOptions):
    """Options of ``lens`` (:func:`latentprobe.readouts.lens` on the clean run)."""

    positions: tuple[str, ...] = option(("latents", "close", "first_answer"), choices=POSITION_GROUPS,
                                        doc="position groups to read")
    layers: tuple[int, ...] | None = option(None, all_value=True, min_value=0, doc='residual layers, or "all"')
    top_k: int = option(5, min_value=1, doc="top tokens kept per cell")
    head: str = option("model", choices=HEADS, doc="'model' (lm_head's own input), 'none', or 'projection'")
    targets: tuple[str, ...] | None = option(None, doc="example fields whose value per example is a target token "
                                                      "(an intermediate result, say)")
    gold: bool = option(True, doc="score the gold answer's first token where the examples have one")

    def validate(self) -> None:
        self._fixed_ci("the lens is a readout of each example; it reports no interval")
        if any(not t for t in self.targets or ()):
            raise OptionError("LensOptions", "targets", "holds an empty name", 'write e.g. targets = ["cot"]')


class Lens(Analysis):
    """What the latents say through the unembedding, per latent step x layer."""

    key = "lens"
    title = "Lens: what the latents say through the unembedding"
    Options = LensOptions
    tables = {"trajectory": LENS_TRAJECTORY, "commitment": LENS_COMMITMENT, "cells": LENS_CELLS,
              "tokens": LENS_ROWS}
    result_types = (LensResult,)
    frame_keys = frozenset({"position_group", "target", "median_rank", "top1_rate"})

    def run(self, ctx: Context, options: AnalysisOptions, folder: Path | None) -> LensResult:
        from latentprobe.analyses.readouts import field_values
        from latentprobe.readouts import lens

        assert isinstance(options, LensOptions)
        trace, inputs = ctx.trace, ctx.inputs
        gold = None
        if options.gold and inputs.gold is not None and any(g not in (None, "") for g in inputs.gold):
            gold = {eid: (g or None) for eid, g in zip(inputs.example_ids, inputs.gold)}
        targets = {}
        for name in options.targets or ():
            vals = field_values(inputs, name, where=f"{ctx.where} [analyses.lens] targets: ")
            targets[name] = {eid: (None if v in ("none", "") else v) for eid, v in zip(inputs.example_ids, vals)}
        res = lens(ctx.runner, trace, positions=options.positions, layers=options.layers, top_k=options.top_k,
                   gold=gold, targets=targets or None, head=options.head, batch_size=int(options.batch_size or 8))
        ctx.save_trace(folder, options.save_trace)
        return res

    def to_tables(self, result: LensResult | Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        if isinstance(result, Mapping):
            return {k: result[k] for k in self.tables}
        return {"trajectory": result.trajectory, "commitment": result.commitment, "cells": result.cells,
                "tokens": result.table}

    def from_tables(self, tables: Mapping[str, pd.DataFrame], config: Mapping[str, Any],
                    folder: Path | None = None) -> LensResult:
        return LensResult(tables["tokens"], tables["cells"], tables["commitment"], tables["trajectory"], dict(config))

    def summary_of(self, result: LensResult | Mapping[str, pd.DataFrame] | pd.DataFrame) -> pd.DataFrame:
        if isinstance(result, pd.DataFrame):
            return result
        return self.to_tables(result)["trajectory"]

    def figures(self, result: LensResult | Mapping[str, pd.DataFrame] | pd.DataFrame) -> list[Any]:
        from latentprobe import viz

        traj = self.summary_of(result)
        figs = []
        for group, target in (("latents", "answer"), ("latents", "gold")):
            if ((traj["position_group"] == group) & (traj["target"] == target)).any():
                figs.append(viz.lens_rank_heatmap(traj, target, group=group))
        return figs

    def section(self, report: ReportSink, result: LensResult | Mapping[str, pd.DataFrame] | pd.DataFrame, *,
                title: str | None = None, level: int = 2) -> None:
        report.add_heading(title or self.title, level)
        report.add_text(LENS_CAPTION)
        for fig in self.figures(result):
            report.add_figure(fig)
        if isinstance(result, pd.DataFrame):
            return
        tables = self.to_tables(result)
        com = tables["commitment"]
        if len(com):
            report.add_table(com, caption="Early commitment: the first latent step (then layer) whose lens top-1 is "
                             "the run's own answer's first token (`lens/commitment.csv`). Reading the answer early "
                             "does not show that it was computed there.")
        cells = tables["cells"]
        if len(cells):
            last = cells[cells["layer"] == cells["layer"].max()]
            summary = (last.groupby(["position_group", "step"], sort=True)
                       .agg(mean_entropy=("entropy", "mean"), n=("example_id", "nunique")).reset_index())
            report.add_table(summary, caption="Mean entropy (nats) of the last layer's readout per position "
                             "(`lens/cells.csv` has every layer; `lens/tokens.csv` the top tokens and targets).")

    def headline(self, result: LensResult | Mapping[str, pd.DataFrame] | pd.DataFrame) -> dict[str, str]:
        if isinstance(result, pd.DataFrame):
            return {}
        com = self.to_tables(result)["commitment"]
        if not len(com):
            return {}
        share = float(com["committed"].mean())
        hit = com[com["committed"]]
        out = {"answer token read out at some latent (share of examples)": f"{share:.2f}"}
        if len(hit):
            out["earliest latent step reading it (median)"] = f"{hit['first_step'].median():.1f}"
        return out
