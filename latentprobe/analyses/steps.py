"""The step-structure analysis as a record: ``[analyses.steps]`` runs :func:`latentprobe.causal.step_influence`.

The oracle condition takes its latents from the run of a perturbation of the same inputs
(``oracle_perturbation``, e.g. the toys' ``"counterfactual"``), run with the study's generation settings.
It runs in units of ``batch_size`` examples, each stored as it finishes (a stopped study resumes at the next unit;
workers share the units out); K and the swap partners come from the whole clean trace, so the units' rows are
those of one whole run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from latentprobe import schema_steps
from latentprobe.analyses.base import Analysis, ReportSink, Unit, example_units
from latentprobe.analyses.context import Context
from latentprobe.analyses.options import AnalysisOptions, option
from latentprobe.causal.steps import StepResult

__all__ = ["Steps", "StepsOptions"]

_CONDITION_TEXT = {
    "early_exit": "early exit after k latents (later slots removed, markers kept, answer re-decoded)",
    "count": "the run with K' latents",
    "oracle": "every latent replaced by the perturbed run's (answer re-decoded)",
    "format_only": "markers and slots kept, latents replaced by the slot token's embedding",
    "no_latents": "slots removed, markers kept",
}


@dataclass(frozen=True, kw_only=True)
class StepsOptions(AnalysisOptions):
    """Options of ``steps`` (:func:`latentprobe.causal.step_influence`)."""

    intervention: str = option("swap", choices=("swap", "noise"), doc="do(z_i) of the influence matrix")
    early_exit: bool = option(True, doc="close the latent span after k = 1..K latents and re-decode")
    counts: tuple[int, ...] = option((), min_value=1, doc="latent counts K' to run (K itself reproduces the clean run)")
    oracle_perturbation: str | None = option(None, choices="perturbations",
                                             doc="inject the latents of this perturbation's run (e.g. counterfactual)")
    format_only: bool = option(True, doc="markers kept, latents replaced by the slot token's embedding")
    no_latents: bool = option(True, doc="slots removed, markers kept")
    scorer: str | None = option(None, choices="scorers", doc="scorer (default: [generation] scorer)")


class Steps(Analysis):
    """Step structure: the step -> step influence matrix, early exit, K', oracle injection, format only."""

    key = "steps"
    title = "Step structure: how the latent steps depend on one another"
    Options = StepsOptions
    tables = {"summary": schema_steps.STEP_SUMMARY, "table": schema_steps.STEP_ROWS}
    rows_table = "table"
    result_types = (StepResult,)
    frame_keys = frozenset({"condition", "step", "target_step", "metric", "estimate"})

    def check(self, options: AnalysisOptions, ctx: Context) -> None:
        assert isinstance(options, StepsOptions)
        if options.oracle_perturbation is not None:
            ctx.perturbation(options.oracle_perturbation, 0)

    def plan(self, ctx: Context, options: AnalysisOptions) -> list[Unit]:
        """One unit per ``batch_size`` examples of the clean trace, each stored as it finishes."""
        return example_units(len(ctx.trace), int(options.batch_size or 1))

    def run_unit(self, ctx: Context, options: AnalysisOptions, unit: Unit) -> pd.DataFrame:
        from latentprobe.causal.steps import step_rows

        assert isinstance(options, StepsOptions)
        idx = list(unit.data)  # type: ignore[call-overload]
        rows, _ = step_rows(ctx.runner, ctx.trace, oracle=self._oracle(ctx, options, idx), indices=idx,
                            **self._kwargs(ctx, options))
        return rows

    def summarise(self, ctx: Context, options: AnalysisOptions, rows: pd.DataFrame) -> StepResult:
        from latentprobe.causal.steps import _summarize, step_rows

        assert isinstance(options, StepsOptions)
        # the configuration from no example (nothing runs): K, the kept selection, the conditions
        _, config = step_rows(ctx.runner, ctx.trace, indices=[], oracle=None, **self._kwargs(ctx, options))
        seed, n_boot = int(options.seed or 0), int(options.n_boot or 0)
        config = {**config, "oracle": options.oracle_perturbation is not None, "n_boot": n_boot, "ci": options.ci}
        return StepResult(rows, _summarize(rows, ci=options.ci, n_boot=n_boot, seed=seed), config)

    def run(self, ctx: Context, options: AnalysisOptions, folder: Path | None) -> StepResult:
        res = super().run(ctx, options, folder)
        ctx.save_trace(folder, options.save_trace)
        return res

    @staticmethod
    def _kwargs(ctx: Context, options: StepsOptions) -> dict[str, Any]:
        return dict(intervention=options.intervention, gold=ctx.inputs, early_exit=options.early_exit,
                    counts=list(options.counts), format_only=options.format_only, no_latents=options.no_latents,
                    scorer=ctx.scoring(options.scorer), seed=int(options.seed or 0),
                    batch_size=int(options.batch_size or 1))

    @staticmethod
    def _oracle(ctx: Context, options: StepsOptions, idx: list[int]) -> Any:
        """The oracle run of these examples: the perturbation's inputs with the study's generation settings."""
        if options.oracle_perturbation is None:
            return None
        moved = ctx.perturbation(options.oracle_perturbation, int(options.seed or 0)).apply(ctx.inputs, idx)
        return ctx.runner.run(
            list(moved.prompts), None if moved.images is None else list(moved.images),
            example_ids=list(moved.example_ids), max_new_tokens=ctx.max_new_tokens, seed=ctx.seed,
            batch_size=int(options.batch_size or 1), generation=ctx.generation, progress=False,
            **({"logits_processor": ctx.logits_processor} if ctx.logits_processor is not None else {}))

    def from_tables(self, tables: Mapping[str, pd.DataFrame], config: Mapping[str, Any],
                    folder: Path | None = None) -> StepResult:
        return StepResult(table=tables["table"], summary=tables["summary"], config=dict(config))

    def figures(self, result: StepResult | pd.DataFrame) -> list[Any]:
        from latentprobe import viz

        if not isinstance(result, StepResult) or not (result.table.condition == "influence").any():
            return []
        return [viz.influence_heatmap(result)]

    def section(self, report: ReportSink, result: StepResult | pd.DataFrame, *, title: str | None = None,
                level: int = 2) -> None:
        s = self.summary_of(result)
        report.add_heading(title or "Step structure: how the latent steps depend on one another", level)
        for fig in self.figures(result):
            report.add_figure(fig)
        ans = s[(s["target_step"] == -1) & s["metric"].isin(["flip", "accuracy_change", "moved"])]
        keep = ["condition", "step", "metric", "n", "estimate", "ci_low", "ci_high", "p_value", "note"]
        if len(ans):
            report.add_table(ans[keep], caption=(
                "The answer under each condition, compared example by example with the clean run. step: the step "
                "intervened on (influence), the latents kept k (early_exit) or the count K' (count). flip: fraction "
                "of answers that changed (Wilson interval); accuracy_change: condition − clean (fraction, Tango's "
                "paired interval and p); moved: among examples whose oracle run answers differently, the fraction "
                "whose answer became the oracle's. Conditions: " + "; ".join(
                    f"{k}: {v}" for k, v in _CONDITION_TEXT.items() if (s["condition"] == k).any()) + "."))

    def headline(self, result: StepResult | pd.DataFrame) -> dict[str, str]:
        s = self.summary_of(result)
        out = {}
        inf = s[(s["condition"] == "influence") & (s["metric"] == "flip")]
        if len(inf):
            out["answer flip rate after do(z_i), mean over steps"] = f"{inf['estimate'].mean():.3f}"
        orc = s[(s["condition"] == "oracle") & (s["metric"] == "moved")]
        if len(orc):
            r = orc.iloc[0]
            out["oracle injection: answers moved"] = f"{r['estimate']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
        return out
