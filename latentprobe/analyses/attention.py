"""Attention flow as a record (``attention``, study key ``[analyses.attention]``): where each latent, the close
marker and the answer tokens attend, per layer and head (:func:`latentprobe.readouts.attention`).

It reads the clean trace with one teacher-forced forward per example (latents as recorded), computing only the
chosen query rows; nothing is generated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from latentprobe import readout_schema as RS
from latentprobe.analyses.base import Analysis, ReportSink
from latentprobe.analyses.context import Context
from latentprobe.analyses.options import AnalysisOptions, option
from latentprobe.readouts.attention import QUERY_GROUPS, AttentionResult

__all__ = ["Attention", "AttentionOptions"]


@dataclass(frozen=True, kw_only=True)
class AttentionOptions(AnalysisOptions):
    """Options of ``attention``."""

    queries: tuple[str, ...] = option(("latents", "close", "answer"), choices=QUERY_GROUPS,
                                      doc="query rows: latents, open, close, answer, last_prompt")
    layers: tuple[int, ...] | None = option(None, all_value=True, min_value=0, doc='decoder layers, or "all"')
    heads: tuple[int, ...] | None = option(None, all_value=True, min_value=0, doc='query heads, or "all"')
    top_k: int = option(5, min_value=0, doc="most attended positions kept per row")
    average_heads: bool = option(False, doc="one row per layer with the mean over heads (head -1)")


class Attention(Analysis):
    """Attention mass from latent, marker and answer positions to the regions of the sequence."""

    key = "attention"
    title = "Attention flow from the latent positions"
    Options = AttentionOptions
    tables = {"mass": RS.ATTENTION_MASS, "entropy": RS.ATTENTION_ENTROPY, "top": RS.ATTENTION_TOP}
    result_types = (AttentionResult,)
    frame_keys = frozenset({"query_group", "region", "mass"})

    def run(self, ctx: Context, options: AnalysisOptions, folder: Path | None) -> AttentionResult:
        from latentprobe.readouts.attention import attention

        assert isinstance(options, AttentionOptions)
        res = attention(ctx.runner, ctx.trace, queries=options.queries, layers=options.layers, heads=options.heads,
                        top_k=options.top_k, average_heads=options.average_heads, progress=bool(options.progress))
        ctx.save_trace(folder, options.save_trace)
        return res

    def from_tables(self, tables: Mapping[str, pd.DataFrame], config: Mapping[str, Any],
                    folder: Path | None = None) -> AttentionResult:
        return AttentionResult(tables["mass"], tables["entropy"], tables["top"], dict(config))

    def to_tables(self, result: object) -> dict[str, pd.DataFrame]:
        if isinstance(result, AttentionResult):
            return {"mass": result.table, "entropy": result.entropy, "top": result.top}
        return super().to_tables(result)

    def _tables(self, result: AttentionResult | Mapping[str, pd.DataFrame] | pd.DataFrame) -> dict[str, pd.DataFrame]:
        if isinstance(result, pd.DataFrame):
            return {"mass": result, "entropy": RS.ATTENTION_ENTROPY.empty(), "top": RS.ATTENTION_TOP.empty()}
        return self.to_tables(result)

    def figures(self, result: AttentionResult | Mapping[str, pd.DataFrame] | pd.DataFrame) -> list[Any]:
        from latentprobe import viz

        mass = self._tables(result)["mass"]
        if mass.empty:
            return []
        figs = [viz.attention_regions(mass)]
        groups = set(mass["query_group"])
        for group, region in (("latents", "image"), ("latents", "latents"), ("answer", "latents")):
            if group in groups:
                figs.append(viz.attention_heatmap(mass, region=region, query_group=group))
        return figs

    def section(self, report: ReportSink, result: AttentionResult | Mapping[str, pd.DataFrame] | pd.DataFrame, *,
                title: str | None = None, level: int = 2) -> None:
        report.add_heading(title or self.title, level)
        report.add_text("Attention probabilities of the chosen query rows, recomputed from the queries and keys the "
                        "model passes to its own attention function (its mask, rotary positions and grouped heads), "
                        "summed over regions of the sequence. Where heads read from is not what they read, nor "
                        "whether it matters for the answer: pair this section with Z → Y and the decomposition.")
        for fig in self.figures(result):
            report.add_figure(fig)
        tables = self._tables(result)
        mass = tables["mass"]
        if len(mass):
            means = mass.groupby(["query_group", "region"], sort=False, as_index=False)["mass"].mean()
            wide = means.pivot(index="query_group", columns="region", values="mass").reset_index()
            report.add_table(wide, caption="Mean attention mass per query group and region (over examples, steps, "
                             "layers and heads); each row sums to 1. Full rows: `attention/mass.csv`; entropies and "
                             "the most attended tokens: `attention/entropy.csv`, `attention/top.csv`.")

    def headline(self, result: AttentionResult | Mapping[str, pd.DataFrame] | pd.DataFrame) -> dict[str, str]:
        mass = self._tables(result)["mass"]
        out = {}
        for group, region in (("latents", "image"), ("answer", "latents")):
            sel = mass[(mass["query_group"] == group) & (mass["region"] == region)]["mass"]
            if len(sel):
                out[f"attention mass {group} -> {region} (mean)"] = f"{sel.mean():.3f}"
        return out
