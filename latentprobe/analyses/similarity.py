"""Similarity of the latents as a record (``latent_similarity``): between the steps of one instance
(:func:`latentprobe.geometry.within_instance`) and between instances at one step
(:func:`latentprobe.geometry.across_instances`): bootstrap intervals over instances within an instance,
and the instance jackknife of the U-statistic across instances."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from latentprobe import schema
from latentprobe.analyses.base import Analysis, ReportSink
from latentprobe.analyses.options import AnalysisOptions, option
from latentprobe.analyses.context import Context
from latentprobe.analyses.readouts import step_matrix_of
from latentprobe.geometry.instances import AcrossInstancesResult, WithinInstanceResult

__all__ = ["Similarity", "SimilarityOptions"]


@dataclass(frozen=True, kw_only=True)
class SimilarityOptions(AnalysisOptions):
    """Options of ``latent_similarity``."""

    center: bool = option(False, doc="subtract the grand mean latent first")


class Similarity(Analysis):
    """Cosine similarity between latent steps (within an instance) and between instances (per step)."""

    key = "latent_similarity"
    title = "Similarity of the latents"
    Options = SimilarityOptions
    tables = {"consecutive": schema.CONSECUTIVE, "across": schema.ACROSS_SUMMARY, "step_matrix": schema.STEP_MATRIX}
    result_types = (WithinInstanceResult, AcrossInstancesResult)

    def run(self, ctx: Context, options: AnalysisOptions, folder: Path | None) -> dict[str, pd.DataFrame]:
        from latentprobe import geometry

        assert isinstance(options, SimilarityOptions)
        z = ctx.trace.stack("z")[0].float().numpy()
        kw = {"center": options.center, "n_boot": int(options.n_boot or 0), "seed": int(options.seed or 0),
              "ci": options.ci}
        within = geometry.within_instance(z, **kw)
        across = geometry.across_instances(z, **kw)
        ctx.save_trace(folder, options.save_trace)
        return {"consecutive": schema.CONSECUTIVE.frame(within.consecutive),
                "across": schema.ACROSS_SUMMARY.frame(across.summary),
                "step_matrix": schema.STEP_MATRIX.frame(within.step_table())}

    def to_tables(self, result: WithinInstanceResult | AcrossInstancesResult | Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        if isinstance(result, Mapping):
            return {k: result[k] for k in self.tables}
        empty = {k: t.frame([]) for k, t in self.tables.items()}
        if isinstance(result, WithinInstanceResult):
            return {**empty, "consecutive": result.consecutive}
        return {**empty, "across": result.summary}

    def from_tables(self, tables: Mapping[str, pd.DataFrame], config: Mapping[str, Any],
                    folder: Path | None = None) -> dict[str, pd.DataFrame]:
        return {k: tables[k] for k in self.tables}

    def summary_of(self, result: WithinInstanceResult | AcrossInstancesResult | Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        if isinstance(result, WithinInstanceResult):
            return result.consecutive
        if isinstance(result, AcrossInstancesResult):
            return result.summary
        return result["consecutive"] if isinstance(result, Mapping) else result

    def figures(self, result: WithinInstanceResult | AcrossInstancesResult | Mapping[str, pd.DataFrame]) -> list[Any]:
        from latentprobe import viz

        if isinstance(result, WithinInstanceResult):
            return [viz.similarity_heatmap(result), viz.consecutive_similarity(result)]
        if isinstance(result, AcrossInstancesResult):
            return [viz.across_instance_summary(result)]
        figs = []
        long = result["step_matrix"]
        if len(long):
            figs.append(viz.similarity_heatmap(step_matrix_of(long)))
        if len(result["consecutive"]):
            figs.append(viz.consecutive_similarity(result["consecutive"]))
        if len(result["across"]):
            figs.append(viz.across_instance_summary(result["across"]))
        return figs

    def section(self, report: ReportSink, result: WithinInstanceResult | AcrossInstancesResult | Mapping[str, pd.DataFrame], *, title: str | None = None, level: int = 2) -> None:
        default = ("Similarity between latent steps" if isinstance(result, WithinInstanceResult) else
                   "Similarity across examples" if isinstance(result, AcrossInstancesResult) else self.title)
        report.add_heading(title or default, level)
        for fig in self.figures(result):
            report.add_figure(fig)

    def headline(self, result: WithinInstanceResult | AcrossInstancesResult | Mapping[str, pd.DataFrame]) -> dict[str, str]:
        out = {}
        tables = self.to_tables(result)
        if len(tables["consecutive"]):
            out["consecutive-step cosine (mean over steps)"] = f"{tables['consecutive']['mean'].mean():.3f}"
        if len(tables["across"]):
            out["across-instance cosine (mean over steps)"] = f"{tables['across']['mean_offdiag'].mean():.3f}"
        return out
