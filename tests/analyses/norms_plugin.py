"""A third-party analysis, defined entirely outside the package: the L2 norm of the latents per step at one
residual layer, with a bootstrap CI over examples. Importing this module registers it.

It uses work units (four examples a unit) so that a killed study resumes unit by unit. ``NORMS_SLOW=<s>``
in the environment makes each unit sleep that long (the kill-and-resume test needs a run slow enough to
be killed mid-way).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from latentprobe import register_analysis, register_benchmark
from latentprobe.analyses import Analysis, AnalysisOptions, Context, Unit, option
from latentprobe.schema import Column, Table
from latentprobe.stats import bootstrap_ci


class NORM_ROWS(Table):
    """One row per example x latent step."""

    EXAMPLE_ID = Column("example_id", "str", "id of the example")
    STEP = Column("step", "int64", "latent step")
    NORM = Column("norm", "float64", "L2 norm of the residual at the latent position")


class NORM_SUMMARY(Table):
    """One row per latent step: the mean norm over examples with its bootstrap CI."""

    STEP = Column("step", "int64", "latent step")
    ESTIMATE = Column("estimate", "float64", "mean norm over examples")
    CI_LOW = Column("ci_low", "float64", "lower bound of the bootstrap CI")
    CI_HIGH = Column("ci_high", "float64", "upper bound of the bootstrap CI")
    N = Column("n", "int64", "examples")


@dataclass(frozen=True, kw_only=True)
class NormOptions(AnalysisOptions):
    layer: int = option(0, min_value=0, doc="residual layer (0 = the fed latent)")
    per_unit: int = option(4, min_value=1, doc="examples per unit")


@dataclass(frozen=True)
class NormResult:
    summary: pd.DataFrame
    rows: pd.DataFrame


class LatentNorms(Analysis):
    key = "latent_norms"
    title = "Latent norms per step"
    Options = NormOptions
    tables = {"summary": NORM_SUMMARY, "rows": NORM_ROWS}
    rows_table = "rows"
    result_types = (NormResult,)

    def plan(self, ctx: Context, options: AnalysisOptions) -> list[Unit]:
        kept = ctx.trace.kept_indices()
        n = options.per_unit  # type: ignore[attr-defined]
        return [Unit(key=f"chunk{i // n}", data=kept[i:i + n]) for i in range(0, len(kept), n)]

    def run_unit(self, ctx: Context, options: AnalysisOptions, unit: Unit) -> pd.DataFrame:
        time.sleep(float(os.environ.get("NORMS_SLOW", "0")))
        rows = []
        for i in unit.data:
            e = ctx.trace[i]
            norms = e.hidden[:, options.layer].float().norm(dim=-1)  # type: ignore[attr-defined]
            rows += [{"example_id": e.example_id, "step": s, "norm": float(v)} for s, v in enumerate(norms)]
        return NORM_ROWS.frame(rows)

    def summarise(self, ctx: Context, options: AnalysisOptions, rows: pd.DataFrame) -> NormResult:
        out = []
        for step, g in rows.groupby("step"):
            e = bootstrap_ci(g["norm"].to_numpy(), n_boot=int(options.n_boot or 0), seed=int(options.seed or 0),
                             confidence=options.ci)
            out.append({"step": step, "estimate": e.estimate, "ci_low": e.ci_low, "ci_high": e.ci_high, "n": e.n})
        return NormResult(NORM_SUMMARY.frame(out), rows)

    def from_tables(self, tables: Any, config: Any, folder: Any = None) -> NormResult:
        return NormResult(tables["summary"], tables["rows"])

    def figures(self, result: Any) -> list[Any]:
        s = result.summary
        fig = go.Figure(go.Scatter(x=s["step"], y=s["estimate"], mode="lines+markers", name="mean norm",
                                   error_y={"type": "data", "symmetric": False, "array": s["ci_high"] - s["estimate"],
                                            "arrayminus": s["estimate"] - s["ci_low"]}))
        fig.update_layout(title="Latent norm per step", xaxis_title="latent step", yaxis_title="L2 norm")
        return [fig]

    def headline(self, result: Any) -> dict[str, str]:
        return {"mean latent norm": f"{np.mean(result.summary['estimate']):.2f}"}


register_analysis(LatentNorms())


def load_sums(root: Any, *, n: int = 8) -> list:
    """A benchmark loader from outside the package: text questions with a gold answer and a category."""
    from latentprobe.data import Example

    return [Example(example_id=f"sums/{i}", question=f"what is {i} plus {i} ?", gold=str(2 * i),
                    category=("small", "large")[i >= n // 2], source="sums") for i in range(n)]


register_benchmark("sums", load_sums, overwrite=True)
