"""The paper's behavioural probe as a record (``behavioural``): a derived question about the same
image answered from the image, from nothing, and from the original run's latents alone
(:func:`latentprobe.behavioural.behavioural_probe`).

The derived questions come from the model family's ``derived_inputs`` hook (the toy supplies one:
:func:`latentprobe.toy.behavioural.toy_derived_inputs`) or, on a real benchmark, from a JSON-lines file
(``derived = "file.jsonl"``: :func:`latentprobe.study.derived.read_derived`); a study without derived questions is
refused before any work. A second model, given by a ``[model]`` table of its own
(``[analyses.behavioural.model]``, the keys of the study's ``[model]``), answers the same derived questions with
the image and with a blank image (:func:`latentprobe.behavioural.second_model_summary`): rows
``"second_model: image"`` and ``"second_model: blank"`` of the summary.
"""

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
from latentprobe.behavioural import BehaviouralProbeResult
from latentprobe.errors import StudyError

__all__ = ["Behavioural", "BehaviouralOptions"]


@dataclass(frozen=True, kw_only=True)
class BehaviouralOptions(AnalysisOptions):
    """Options of ``behavioural``."""

    scorer: str | None = option(None, choices="scorers", doc="scorer (default: [generation] scorer)")
    derived: str | None = option(None, doc="JSON-lines file of derived questions (example_id, question, answer)")
    model: dict[str, Any] | None = option(None, doc="a second model: a [model] table of its own "
                                                    "([analyses.behavioural.model])")

    def validate(self) -> None:
        self._fixed_ci("behavioural_probe reports 95% intervals")


class Behavioural(Analysis):
    """Can a derived question be answered from the latents alone (``latents_only`` against ``blank``)?"""

    key = "behavioural"
    title = "Behavioural probe: answering from the latents alone"
    Options = BehaviouralOptions
    tables = {"summary": schema.BEHAVIOURAL_SUMMARY, "tests": schema.EFFECTS, "rows": schema.BEHAVIOURAL_ROWS}
    result_types = (BehaviouralProbeResult,)
    frame_keys = frozenset({"condition", "accuracy", "n_unparseable"})

    def check(self, options: AnalysisOptions, ctx: Context) -> None:
        assert isinstance(options, BehaviouralOptions)
        if options.derived is None and ctx.hook("derived_inputs") is None:
            raise StudyError(f"{ctx.where}: [analyses.{self.key}]: these data have no derived questions (the toy "
                             "data have them); give derived = \"questions.jsonl\" (example_id, question, answer per "
                             "line) or remove the table.")
        if options.derived is not None and ctx.hook("derived_from_file") is None:
            raise StudyError(f"{ctx.where}: [analyses.{self.key}] key 'derived': derived questions from a file need "
                             "a real benchmark's examples; remove the key.")
        if options.model is not None and ctx.hook("load_model") is None:
            raise StudyError(f"{ctx.where}: [analyses.{self.key}.model]: a second model is loaded by the study "
                             "runner (latentprobe run); remove the table here.")

    def _derive(self, ctx: Context, options: BehaviouralOptions) -> Any:
        """``runner -> (original, derived)``."""
        if options.derived is not None:
            return ctx.hook("derived_from_file")(options.derived)  # type: ignore[misc]
        hook = ctx.hook("derived_inputs")
        return lambda runner: hook(ctx.inputs)  # type: ignore[misc]

    def run(self, ctx: Context, options: AnalysisOptions, folder: Path | None) -> BehaviouralProbeResult:
        from latentprobe.behavioural import behavioural_probe, second_model_summary

        assert isinstance(options, BehaviouralOptions)
        derive = self._derive(ctx, options)
        original, derived = derive(ctx.runner)
        kw = dict(max_new_tokens=ctx.max_new_tokens, batch_size=int(options.batch_size or 1),
                  n_boot=int(options.n_boot or 0), seed=int(options.seed or 0), progress=options.progress,
                  scorer=ctx.scoring(options.scorer))
        res = behavioural_probe(ctx.runner, original, derived, **kw)  # type: ignore[arg-type]
        summary = schema.BEHAVIOURAL_SUMMARY.frame(res.summary)
        if options.model is not None:
            second = ctx.hook("load_model")(options.model, f"analyses.{self.key}.model")  # type: ignore[misc]
            extra = second_model_summary(second, derive(second)[1], keep=list(res.rows.example_id), **kw)  # type: ignore[arg-type]
            summary = schema.BEHAVIOURAL_SUMMARY.frame(pd.concat([summary, extra], ignore_index=True))
        ctx.save_trace(folder, options.save_trace)
        return BehaviouralProbeResult(summary, schema.EFFECTS.frame(res.tests),
                                      schema.BEHAVIOURAL_ROWS.frame(res.rows), res.dropped)

    def config_of(self, result: BehaviouralProbeResult) -> dict[str, Any]:
        return {"dropped": dict(result.dropped)}

    def from_tables(self, tables: Mapping[str, pd.DataFrame], config: Mapping[str, Any],
                    folder: Path | None = None) -> BehaviouralProbeResult:
        return BehaviouralProbeResult(tables["summary"], tables["tests"], tables["rows"],
                                      dict(config.get("dropped", {})))

    def section(self, report: ReportSink, result: BehaviouralProbeResult, *, title: str | None = None, level: int = 2) -> None:
        report.add_heading(title or self.title, level)
        report.add_table(result.summary, caption="Accuracy on the derived questions: `image` (with the image, the "
                         "ceiling), `blank` (a blank image, the floor) and `latents_only` (a blank image with the "
                         "original run's latents); `second_model: ...` rows: the second model on the same examples. "
                         "Unreadable answers count as wrong (`n_unparseable`).")
        report.add_table(result.tests, caption="Paired accuracy differences (Tango's score interval, score-test p).")
        dropped = {k: v for k, v in result.dropped.items() if v}
        if dropped:
            report.add_note("; ".join(f"{v} {k}" for k, v in dropped.items()), kind="warning", title="Left out")

    def headline(self, result: BehaviouralProbeResult) -> dict[str, str]:
        return {f"derived-question accuracy ({r['condition']})": f"{r['accuracy']:.3f} [{r['ci_low']:.3f}, "
                f"{r['ci_high']:.3f}]" for _, r in result.summary.iterrows()}
