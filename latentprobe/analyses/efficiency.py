"""The decoding cost as a record (``efficiency``): per-example token counts and decode time of the study's clean
run (:func:`latentprobe.efficiency.decode_costs`) and their means with intervals
(:func:`latentprobe.efficiency.cost_summary`).

The time is the clean run's (batch wall-clock time divided by the batch size, ``[generation] batch_size``):
set ``batch_size = 1`` for per-example latency. Compare models from one machine and one setting only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from latentprobe import schema_efficiency as SE
from latentprobe.analyses.base import Analysis, ReportSink
from latentprobe.analyses.context import Context
from latentprobe.analyses.options import AnalysisOptions, option

__all__ = ["Efficiency", "EfficiencyOptions"]


@dataclass(frozen=True, kw_only=True)
class EfficiencyOptions(AnalysisOptions):
    """Options of ``efficiency``."""

    label: str | None = option(None, doc="the model column's value (default: the preset's name)")

    def validate(self) -> None:
        self._fixed_ci("cost_summary reports 95% intervals")


class Efficiency(Analysis):
    """Decoding cost per example: generated positions, latent steps, answer tokens and wall-clock seconds."""

    key = "efficiency"
    title = "Decoding cost"
    Options = EfficiencyOptions
    tables = {"summary": SE.DECODE_COST_SUMMARY, "costs": SE.DECODE_COSTS}
    frame_keys = frozenset({"model", "metric", "mean", "ci_low"})

    def run(self, ctx: Context, options: AnalysisOptions, folder: Path | None) -> dict[str, pd.DataFrame]:
        from latentprobe.efficiency import cost_summary, decode_costs

        assert isinstance(options, EfficiencyOptions)
        costs = decode_costs(ctx.trace, model=options.label)
        ctx.save_trace(folder, options.save_trace)
        return {"summary": cost_summary(costs, n_boot=int(options.n_boot or 0), seed=int(options.seed or 0)),
                "costs": costs}

    def from_tables(self, tables: Mapping[str, pd.DataFrame], config: Mapping[str, Any],
                    folder: Path | None = None) -> dict[str, pd.DataFrame]:
        return {k: tables[k] for k in self.tables}

    def figures(self, result: Mapping[str, pd.DataFrame] | pd.DataFrame) -> list[Any]:
        from latentprobe import viz

        summary = self.summary_of(result)
        return [viz.efficiency_bars(summary)] if len(summary) else []

    def section(self, report: ReportSink, result: Mapping[str, pd.DataFrame] | pd.DataFrame, *,
                title: str | None = None, level: int = 2) -> None:
        report.add_heading(title or self.title, level)
        for fig in self.figures(result):
            report.add_figure(fig)
        report.add_table(self.summary_of(result), caption="Mean cost per example with 95% bootstrap intervals: "
                         "decode_seconds is the batch's wall-clock time divided by its size; generated_tokens counts "
                         "every position after the prompt (latent steps, markers, text).")

    def headline(self, result: Mapping[str, pd.DataFrame] | pd.DataFrame) -> dict[str, str]:
        s = self.summary_of(result)
        out = {}
        for metric, label in (("decode_seconds", "seconds per example"), ("generated_tokens", "generated positions")):
            for _, r in s[s["metric"] == metric].iterrows():
                out[f"{r['model']}: {label}"] = f"{r['mean']:.3g}"
        return out
