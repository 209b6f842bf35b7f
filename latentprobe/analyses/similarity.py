"""Similarity of the latents as a record (``latent_similarity``): between the steps of one instance
(:func:`latentprobe.geometry.within_instance`) and between instances at one step
(:func:`latentprobe.geometry.across_instances`): bootstrap intervals over instances within an instance,
and the instance jackknife of the U-statistic across instances. Next to the latents' maps, the same maps of
text-token, image-token and prompt-last states at matched indices, where the run captured them
(:func:`latentprobe.geometry.baseline_states`): table ``across_sources``, matrices in ``maps.npz``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from latentprobe import schema
from latentprobe.schema_similarity import ACROSS_SOURCES
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
    baselines: bool = option(True, doc="the same maps of captured text, image and prompt-last states")


class Similarity(Analysis):
    """Cosine similarity between latent steps (within an instance) and between instances (per step)."""

    key = "latent_similarity"
    title = "Similarity of the latents"
    Options = SimilarityOptions
    tables = {"consecutive": schema.CONSECUTIVE, "across": schema.ACROSS_SUMMARY, "step_matrix": schema.STEP_MATRIX,
              "across_sources": ACROSS_SOURCES}
    result_types = (WithinInstanceResult, AcrossInstancesResult)

    def run(self, ctx: Context, options: AnalysisOptions, folder: Path | None) -> dict[str, pd.DataFrame]:
        from latentprobe import geometry

        assert isinstance(options, SimilarityOptions)
        z = ctx.trace.stack("z")[0].float().numpy()
        kw = {"center": options.center, "n_boot": int(options.n_boot or 0), "seed": int(options.seed or 0),
              "ci": options.ci}
        within = geometry.within_instance(z, **kw)
        across = geometry.across_instances(z, **kw)
        sources = {"latent": across}
        if options.baselines:
            kept = ctx.trace.stack("z")[1]
            for name, states in geometry.baseline_states(ctx.trace, kept, z.shape[1]).items():
                sources[name] = geometry.across_instances(states, **kw)
        ctx.save_trace(folder, options.save_trace)
        rows = [{"source": name, **r} for name, res in sources.items() for r in res.summary.to_dict("records")]
        out = {"consecutive": schema.CONSECUTIVE.frame(within.consecutive),
               "across": schema.ACROSS_SUMMARY.frame(across.summary),
               "step_matrix": schema.STEP_MATRIX.frame(within.step_table()),
               "across_sources": ACROSS_SOURCES.frame(rows)}
        maps = {name: res.matrices for name, res in sources.items() if res.matrices is not None}
        return {**out, "maps": maps} if maps else out

    def save_extras(self, result: Any, folder: Path) -> None:
        import numpy as np

        from latentprobe.atomic import atomic_write

        maps = result.get("maps") if isinstance(result, Mapping) else None
        if maps:
            atomic_write(folder / "maps.npz", lambda fh: np.savez(fh, **{k: np.asarray(v) for k, v in maps.items()}),
                         binary=True)

    def to_tables(self, result: WithinInstanceResult | AcrossInstancesResult | Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        if isinstance(result, Mapping):
            return {k: result[k] for k in self.tables}
        empty = {k: t.frame([]) for k, t in self.tables.items()}
        if isinstance(result, WithinInstanceResult):
            return {**empty, "consecutive": result.consecutive}
        return {**empty, "across": result.summary}

    def from_tables(self, tables: Mapping[str, pd.DataFrame], config: Mapping[str, Any],
                    folder: Path | None = None) -> dict[str, Any]:
        import numpy as np

        out: dict[str, Any] = {k: tables[k] if k in tables else self.tables[k].frame([]) for k in self.tables}
        if folder is not None and (folder / "maps.npz").exists():
            with np.load(folder / "maps.npz") as z:
                out["maps"] = {k: z[k] for k in z.files}
        return out

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
        sources = result.get("across_sources")
        if sources is not None and len(sources) and sources["source"].nunique() > 1:
            figs.append(viz.across_instance_summary(sources, by="source", title="Mean cosine between instances per "
                                                    "step: latents and prompt states at matched indices"))
        elif len(result["across"]):
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
