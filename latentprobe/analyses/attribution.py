"""The ``attribution`` analysis record: attribution patching over layer x position, checked by exact patching
on its top cells (:func:`latentprobe.causal.attribution_patching`); study key ``[analyses.attribution]``. The map
and the check run in units stored in the analysis folder as they finish (a stopped study resumes at the next
unit; workers share the units out)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from latentprobe import schema
from latentprobe.analyses.base import Analysis, ReportSink
from latentprobe.analyses.context import Context
from latentprobe.analyses.options import AnalysisOptions, option
from latentprobe.causal.attribution import POSITION_GROUPS, AttributionResult

__all__ = ["Attribution", "AttributionOptions"]


@dataclass(frozen=True, kw_only=True)
class AttributionOptions(AnalysisOptions):
    """Options of ``attribution`` (:func:`latentprobe.causal.attribution_patching`)."""

    perturbation: str = option(choices="perturbations", doc="gives the counterfactual input (it must keep the layout)")
    layers: tuple[int, ...] | None = option(None, all_value=True, min_value=0, doc='residual layers or "all"')
    positions: tuple[str, ...] | None = option(None, all_value=True, choices=POSITION_GROUPS,
                                               doc='position groups or "all"')
    verify_top: int | None = option(20, all_value=True, min_value=0,
                                    doc='cells checked by exact patching (largest |estimate|), or "all"')


class Attribution(Analysis):
    """Attribution patching: the first-order map of patching effects, and its agreement with exact patching."""

    key = "attribution"
    title = "Attribution patching: where patching from the counterfactual moves the answer"
    Options = AttributionOptions
    tables = {"summary": schema.ATTRIBUTION_SUMMARY, "table": schema.ATTRIBUTION, "dropped": schema.STATUS}
    result_types = (AttributionResult,)
    frame_keys = frozenset({"n_cells", "n_verified", "spearman", "spearman_abs"})

    def check(self, options: AnalysisOptions, ctx: Context) -> None:
        assert isinstance(options, AttributionOptions)
        ctx.perturbation(options.perturbation, 0)

    def run(self, ctx: Context, options: AnalysisOptions, folder: Path | None) -> AttributionResult:
        from latentprobe.causal import attribution_patching

        assert isinstance(options, AttributionOptions)
        seed = int(options.seed or 0)
        return attribution_patching(
            ctx.runner, ctx.inputs, ctx.perturbation(options.perturbation, seed),
            layers=None if options.layers is None else list(options.layers),
            positions=None if options.positions is None else list(options.positions),
            verify_top="all" if options.verify_top is None else int(options.verify_top),
            batch_size=int(options.batch_size or 1), max_new_tokens=ctx.max_new_tokens, seed=seed,
            logits_processor=ctx.logits_processor, out_dir=folder, progress=bool(options.progress))

    def from_tables(self, tables: Mapping[str, pd.DataFrame], config: Mapping[str, Any],
                    folder: Path | None = None) -> AttributionResult:
        return AttributionResult.from_tables(tables["table"], tables["summary"], tables["dropped"], dict(config))

    def figures(self, result: AttributionResult | pd.DataFrame) -> list[Any]:
        from latentprobe import viz

        if isinstance(result, pd.DataFrame) or result.table.empty:
            return []
        return [viz.attribution_heatmap(result)]

    def section(self, report: ReportSink, result: AttributionResult | pd.DataFrame, *, title: str | None = None,
                level: int = 2) -> None:
        s = self.summary_of(result)
        report.add_heading(title or self.title, level)
        for fig in self.figures(result):
            report.add_figure(fig)
        report.add_table(s, caption=(
            "Agreement of attribution patching with exact patching on the checked cells (the largest |estimates|): "
            "Spearman rank correlation of the signed values, over the checked cells the perturbation reaches, and of "
            "their magnitudes (does the map find the cells that matter). Seconds: the map (one clean forward with "
            "gradients, one counterfactual forward, one backward per batch) and the check (one forward per cell). "
            "Latents are fixed inputs: the map estimates replay-mode patching."))
        if isinstance(result, AttributionResult) and len(result.verify):
            A = schema.ATTRIBUTION
            top = result.verify.sort_values(A.ATTRIBUTION, key=abs, ascending=False).head(10)
            report.add_table(top[[A.EXAMPLE_ID, A.LAYER, A.POSITION_GROUP, A.POSITION, A.STEP, A.ATTRIBUTION, A.EFFECT]],
                             caption="The ten cells of largest |estimate|, with their exact patching effect.")
        if isinstance(result, AttributionResult) and len(result.dropped):
            report.add_note(f"{len(result.dropped)} example(s) left out (reasons: "
                            f"{', '.join(sorted(set(result.dropped['reason'])))}).")

    def headline(self, result: AttributionResult | pd.DataFrame) -> dict[str, str]:
        s = self.summary_of(result)
        if s.empty:
            return {}
        return {"attribution vs exact patching (Spearman, signed / |.|)":
                f"{s['spearman'].iloc[0]:.3f} / {s['spearman_abs'].iloc[0]:.3f}"}
