"""The causal analyses as records: X -> Z (``x_to_z``), Z -> Y (``z_to_y``) and the TE / NDE / NIE
decomposition (``decompose``).

Each runs its function of :mod:`latentprobe.causal` with ``out_dir`` set to the analysis folder: those
functions plan their own chunks of examples (``chunk_size`` examples a unit) and resume chunk by chunk
in their own stores, so these records override :meth:`~latentprobe.analyses.Analysis.run`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from latentprobe import schema
from latentprobe.analyses.base import Analysis, ReportSink
from latentprobe.analyses.options import AnalysisOptions, OptionError, option
from latentprobe.analyses.context import Context
from latentprobe.causal.results import MediationResult, XZResult, ZYResult
from latentprobe.errors import StudyError
from latentprobe.report.notes import INDEPENDENT_INTERVENTIONS, PROPAGATE_REDECODE_NOTE
from latentprobe.report.sections import drops_note, ood_note, once
from latentprobe.report.causal_notes import prefix_section, zy_ood_section

__all__ = ["XToZ", "ZToY", "Decompose", "XToZOptions", "ZToYOptions", "DecomposeOptions"]

_ZY_METRICS = ("accuracy", "accuracy_change", "flip_rate", "kl")


def _ci(row: Any) -> str:
    return f"{row['estimate']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"


# --------------------------------------------------------------------------- X -> Z
@dataclass(frozen=True, kw_only=True)
class XToZOptions(AnalysisOptions):
    """Options of ``x_to_z`` (:func:`latentprobe.causal.x_to_z`)."""

    perturbations: tuple[str, ...] = option(choices="perturbations", doc="input perturbations")
    layers: tuple[int, ...] | None = option(None, all_value=True, min_value=0, doc='residual layers (0 = the fed latent) or "all"')
    baselines: bool = option(True, doc="also compare prompt-token states (all prompt positions are captured)")


class XToZ(Analysis):
    """X -> Z: when the input changes, do the latents change? (cosine and relative L2 per step and layer)."""

    key = "x_to_z"
    title = "X -> Z: do the latents change with the input?"
    Options = XToZOptions
    tables = {"summary": schema.XZ_SUMMARY, "rows": schema.XZ_ROWS, "dropped": schema.STATUS,
              "across": schema.XZ_ACROSS, "status": schema.STATUS, "by_prefix": schema.XZ_BY_PREFIX}
    result_types = (XZResult,)
    frame_keys = frozenset({"perturbation", "source", "step", "layer", "metric", "estimate"})

    def check(self, options: AnalysisOptions, ctx: Context) -> None:
        assert isinstance(options, XToZOptions)
        for name in options.perturbations:
            ctx.perturbation(name, 0)

    def run(self, ctx: Context, options: AnalysisOptions, folder: Path | None) -> XZResult:
        from latentprobe.causal import x_to_z

        assert isinstance(options, XToZOptions)
        perts = [ctx.perturbation(p, int(options.seed or 0)) for p in options.perturbations]
        res = x_to_z(ctx.runner, ctx.inputs, perts, layers=None if options.layers is None else list(options.layers),
                     baselines=options.baselines, out_dir=folder, max_new_tokens=ctx.max_new_tokens,
                     n_boot=int(options.n_boot or 0), ci=options.ci, seed=int(options.seed or 0),
                     batch_size=int(options.batch_size or 1),
                     chunk_size=ctx.chunk_size, progress=options.progress, logits_processor=ctx.logits_processor)
        ctx.save_trace(folder, options.save_trace)
        return res

    def save_extras(self, result: XZResult | pd.DataFrame, folder: Path) -> None:
        import numpy as np

        from latentprobe.atomic import atomic_write

        mats = getattr(result, "across_matrices", None) or {}
        arrays = {f"layer_{k}": np.asarray(v) for k, v in mats.items()}
        if arrays:
            atomic_write(folder / "across_matrices.npz", lambda fh: np.savez(fh, **arrays), binary=True)

    def from_tables(self, tables: Mapping[str, pd.DataFrame], config: Mapping[str, Any],
                    folder: Path | None = None) -> XZResult:
        import numpy as np

        mats: dict[int, Any] = {}
        if folder is not None and (folder / "across_matrices.npz").exists():
            with np.load(folder / "across_matrices.npz") as z:
                mats = {int(k.split("_")[1]): z[k] for k in z.files}
        return XZResult(rows=tables["rows"], summary=tables["summary"], dropped=tables["dropped"], config=dict(config),
                        across=tables["across"], across_matrices=dict(mats), status=tables["status"],
                        by_prefix=tables.get("by_prefix", schema.XZ_BY_PREFIX.empty()))

    def figures(self, result: XZResult | pd.DataFrame) -> list[Any]:
        from latentprobe import viz

        s = self.summary_of(result)
        layers = list(dict.fromkeys(s.loc[s["source"] == "latent", "layer"]))
        return [viz.xz_lines(s, layer=None if len(layers) <= 2 else [layers[0], layers[-1]])]

    def section(self, report: ReportSink, result: XZResult | pd.DataFrame, *, title: str | None = None, level: int = 2) -> None:
        s = self.summary_of(result)
        report.add_heading(title or "X → Z: do the latents change with the input?", level)
        for fig in self.figures(result):
            report.add_figure(fig)
        lat = s[s["source"] == "latent"]
        if len(lat):
            agg = (lat.groupby(["perturbation", "layer", "metric"], sort=False)
                   .agg(n=("n", "min"), mean_over_steps=("estimate", "mean"), min_step=("estimate", "min"),
                        max_step=("estimate", "max")).reset_index())
            report.add_table(agg, caption="Latents: the per-step estimates (mean over examples) summarised over "
                             "latent steps. cosine: 1 = unchanged; rel_l2: 0 = unchanged.")
        base = s[s["source"] != "latent"]
        if len(base):
            keep = [c for c in ("perturbation", "source", "layer", "metric", "n", "estimate", "ci_low", "ci_high")
                    if c in base]
            report.add_table(base[keep], caption="The same comparison at prompt positions (baselines).")
        prefix_section(report, result)
        ood_note(report, s["perturbation"])
        drops_note(report, result)

    def headline(self, result: XZResult | pd.DataFrame) -> dict[str, str]:
        s = self.summary_of(result)
        lat = s[(s["source"] == "latent") & (s["metric"] == "cosine")]
        return {f"cosine clean vs {p} (latents, mean over steps)": f"{g['estimate'].mean():.3f}"
                for p, g in lat.groupby("perturbation", sort=False)}


# --------------------------------------------------------------------------- Z -> Y
@dataclass(frozen=True, kw_only=True)
class ZToYOptions(AnalysisOptions):
    """Options of ``z_to_y`` (:func:`latentprobe.causal.z_to_y`)."""

    interventions: tuple[str, ...] = option(choices="interventions", doc="latent interventions")
    modes: tuple[str, ...] = option(("propagate", "redecode"), choices="modes", doc="intervention modes")
    layers: tuple[int, ...] = option((0,), min_value=0, doc='residual layers intervened on (0 = the fed latent); '
                                     'a list: "all" is refused')
    steps: tuple[int, ...] | None = option(None, all_value=True, min_value=0, doc='latent steps intervened on, or "all"')
    scorer: str | None = option(None, choices="scorers", doc="scorer (default: [generation] scorer)")
    rewrites: str | None = option(None, doc='JSONL of text-span rewrites keyed by example_id ("rewrite", "placebo"; '
                                           'a relative path starts at the study file): adds the conditions rewrite '
                                           'and rewrite_placebo, mediator="text" models only')


class ZToY(Analysis):
    """Z -> Y: when the latents change, does the answer change? (accuracy change, flips, KL)."""

    key = "z_to_y"
    title = "Z -> Y: does the answer change with the latents?"
    Options = ZToYOptions
    tables = {"summary": schema.ZY_SUMMARY, "rows": schema.ZY_ROWS, "dropped": schema.STATUS}
    result_types = (ZYResult,)
    frame_keys = frozenset({"intervention", "mode", "metric", "estimate", "ci_low", "ci_high"})

    def check(self, options: AnalysisOptions, ctx: Context) -> None:
        from latentprobe.analyses.names import check_names

        assert isinstance(options, ZToYOptions)
        check_names(options.interventions, "interventions", where=f"{ctx.where}: [analyses.{self.key}]")
        if options.rewrites is not None:  # read before anything runs: a missing or malformed file stops here
            for iv in _rewrites(options.rewrites, ctx.where).values():
                iv.texts()

    def run(self, ctx: Context, options: AnalysisOptions, folder: Path | None) -> ZYResult:
        from latentprobe.analyses.names import is_import_string, make_intervention
        from latentprobe.causal import default_interventions, z_to_y

        assert isinstance(options, ZToYOptions)
        seed = int(options.seed or 0)
        suite = default_interventions(ctx.trace, seed=seed)
        missing = [n for n in options.interventions if not is_import_string(n) and n not in suite]
        if missing:
            raise StudyError(f"{ctx.where}: [analyses.{self.key}] key 'interventions': {missing} cannot be built for "
                             "this run (swaps need at least 2 examples that entered latent mode); remove them or "
                             "sample more examples.")
        chosen = {n: make_intervention(n, ctx.trace, seed, suite) for n in options.interventions}
        if options.rewrites is not None:
            chosen.update(_rewrites(options.rewrites, ctx.where))
        scorer = ctx.scoring(options.scorer)
        res = z_to_y(ctx.runner, ctx.trace, chosen, modes=options.modes, gold=ctx.inputs, layers=list(options.layers),
                     steps=None if options.steps is None else list(options.steps), out_dir=folder,
                     n_boot=int(options.n_boot or 0), ci=options.ci, seed=seed, batch_size=int(options.batch_size or 1),
                     chunk_size=ctx.chunk_size, progress=options.progress, scorer=scorer,
                     logits_processor=ctx.logits_processor)
        ctx.save_trace(folder, options.save_trace)
        return res

    def from_tables(self, tables: Mapping[str, pd.DataFrame], config: Mapping[str, Any],
                    folder: Path | None = None) -> ZYResult:
        return ZYResult(rows=tables["rows"], summary=tables["summary"], dropped=tables["dropped"], config=dict(config))

    def figures(self, result: ZYResult | pd.DataFrame) -> list[Any]:
        from latentprobe import viz

        s = self.summary_of(result)
        metrics = [m for m in _ZY_METRICS if (s["metric"] == m).any()]
        return [viz.zy_bars(s, metrics=metrics)] if (s["mode"] != "run").any() and metrics else []

    def section(self, report: ReportSink, result: ZYResult | pd.DataFrame, *, title: str | None = None, level: int = 2) -> None:
        s = self.summary_of(result)
        report.add_heading(title or "Z → Y: does the output change when the latents are intervened on?", level)
        for fig in self.figures(result):
            report.add_figure(fig)
        metrics = [m for m in _ZY_METRICS if (s["metric"] == m).any()]
        keep = [c for c in ("intervention", "mode", "metric", "n", "estimate", "ci_low", "ci_high", "p_value", "note",
                            "ood") if c in s.columns]
        table = s[s["metric"].isin(metrics)][keep] if metrics else s[keep]
        report.add_table(table, caption="accuracy and flip_rate: fractions of examples; accuracy_change: "
                         "intervention − control (fraction; 0.1 = 10 percentage points), Tango's paired score interval and its score-test p; kl: "
                         "KL(control ‖ intervention) of the first answer token, nats. Control: the intervention "
                         "`none` in the same mode; mode `run`: the original run. ood: the condition feeds latents "
                         "out of distribution (next table).")
        if not (s["metric"] == "accuracy").any():
            report.add_note("The data have no gold answers, so no accuracy is computed: the rows compare each "
                            "intervention's answers with the no-op control's (flip rate) and the first answer "
                            "token's distributions (KL).", title="No gold answers")
        config = getattr(result, "config", {}) or {}
        modes = set(s["mode"])
        if {"propagate", "redecode"} <= modes and config.get("steps") is None and (
                set(s["intervention"]) & set(INDEPENDENT_INTERVENTIONS)):
            once(report, "propagate-redecode", PROPAGATE_REDECODE_NOTE, title="Propagate and redecode")
        if "ood" in s.columns:  # measured (latentprobe.causal.ood); summaries written before it: the fixed list
            zy_ood_section(report, s, config.get("n_kept"))
            ood_note(report, ["drop_latents"] if config.get("drop_latents") else [])
        else:
            ood_note(report, list(s["intervention"]) + (["drop_latents"] if config.get("drop_latents") else []))
        drops_note(report, result)

    def answers(self, result: ZYResult | pd.DataFrame) -> pd.DataFrame:
        r = result.rows
        return schema.ANSWER_ROWS.frame(pd.DataFrame({
            "example_id": r["example_id"], "condition": f"{self.key}: " + r["intervention"] + " (" + r["mode"] + ")",
            "answer": r["answer"], "parsed": r["parsed"], "parse_method": r["parse_method"], "correct": r["correct"],
            "n_latents": r["n_latents"]}))

    def headline(self, result: ZYResult | pd.DataFrame) -> dict[str, str]:
        s = self.summary_of(result)
        s = s[(s["intervention"] != schema.CONTROL_INTERVENTION) & (s["mode"] != schema.RUN_MODE)]
        out = {}
        for (intervention, mode), g in s.groupby(["intervention", "mode"], sort=False):
            m = g.set_index("metric")
            parts = [f"accuracy change {_ci(m.loc['accuracy_change'])}"] if "accuracy_change" in m.index else []
            if "flip_rate" in m.index:
                parts.append(f"flip rate {m.loc['flip_rate', 'estimate']:.3f}")
            out[f"{intervention} ({mode})"] = "; ".join(parts)
        return out


# --------------------------------------------------------------------------- decomposition
@dataclass(frozen=True, kw_only=True)
class DecomposeOptions(AnalysisOptions):
    """Options of ``decompose`` (:func:`latentprobe.causal.decompose`)."""

    treatment: str = option(choices="perturbations", doc="the input perturbation whose effect is decomposed")
    against: str = option("clean", choices=("clean", "treated"), doc="the reference of the natural effects")
    outcome: str = option("correct", choices=("correct", "gold_logprob"), doc="the outcome")
    scorer: str | None = option(None, choices="scorers", doc="scorer (default: [generation] scorer)")


class Decompose(Analysis):
    """Mediation: the total effect of a treatment split into its natural direct and indirect effects."""

    key = "decompose"
    title = "Mediation: total, direct and indirect effects"
    Options = DecomposeOptions
    tables = {"summary": schema.MEDIATION_SUMMARY, "rows": schema.MEDIATION_ROWS, "dropped": schema.STATUS}
    result_types = (MediationResult,)
    frame_keys = frozenset({"effect", "kind", "estimate"})
    needs_gold = True

    def check(self, options: AnalysisOptions, ctx: Context) -> None:
        assert isinstance(options, DecomposeOptions)
        ctx.perturbation(options.treatment, 0)
        gold = ctx.inputs.gold
        if gold is None or not any(g is not None for g in gold):
            raise StudyError(f"{ctx.where}: [analyses.{self.key}]: the data have no gold answers (e.g. VSP, whose "
                             "plans are judged by simulating them), and both outcomes (correct, gold_logprob) need "
                             "them; remove the table.")

    def run(self, ctx: Context, options: AnalysisOptions, folder: Path | None) -> MediationResult:
        from latentprobe.causal import decompose

        assert isinstance(options, DecomposeOptions)
        seed = int(options.seed or 0)
        res = decompose(ctx.runner, ctx.inputs, ctx.perturbation(options.treatment, seed), against=options.against,
                        outcome=options.outcome, out_dir=folder, max_new_tokens=ctx.max_new_tokens,
                        n_boot=int(options.n_boot or 0), ci=options.ci, seed=seed, batch_size=int(options.batch_size or 1),
                        chunk_size=ctx.chunk_size, progress=options.progress, logits_processor=ctx.logits_processor,
                        scorer=ctx.scoring(options.scorer))
        ctx.save_trace(folder, options.save_trace)
        return res

    def from_tables(self, tables: Mapping[str, pd.DataFrame], config: Mapping[str, Any],
                    folder: Path | None = None) -> MediationResult:
        import math

        from latentprobe.stats import Effect

        s = tables["summary"]
        effects = {}
        for _, r in s[s["kind"] == "effect"].iterrows():
            p = r.get("p_value")
            effects[str(r["effect"])] = Effect(
                name=str(r["effect"]), estimate=float(r["estimate"]), ci_low=float(r["ci_low"]),
                ci_high=float(r["ci_high"]), n=int(r["n"]),
                p_value=None if p is None or (isinstance(p, float) and math.isnan(p)) else float(p),
                method=str(r.get("method") or ""), note="" if pd.isna(r.get("note")) else str(r["note"]))
        prop = s[s["effect"] == "proportion_mediated"] if len(s) else s
        return MediationResult(rows=tables["rows"], summary=s, dropped=tables["dropped"], config=dict(config),
                               effects=effects,
                               proportion_mediated=float(prop["estimate"].iloc[0]) if len(prop) else float("nan"),
                               proportion_note=str(prop["note"].iloc[0]) if len(prop) and not pd.isna(
                                   prop["note"].iloc[0]) else "")

    def figures(self, result: MediationResult | pd.DataFrame) -> list[Any]:
        from latentprobe import viz

        s = self.summary_of(result)
        effects = s[s["kind"] == "effect"]
        return [viz.decomposition_bars(effects)] if len(effects) else []

    def section(self, report: ReportSink, result: MediationResult | pd.DataFrame, *, title: str | None = None, level: int = 2) -> None:
        s = self.summary_of(result)
        treatment = s["treatment"].iloc[0] if "treatment" in s.columns and len(s) else None
        report.add_heading(title or "Mediation: TE, NDE, NIE" + (f" ({treatment})" if treatment else ""), level)
        for fig in self.figures(result):
            report.add_figure(fig)
        keep = [c for c in ("effect", "kind", "n", "estimate", "ci_low", "ci_high", "p_value", "note") if c in s]
        report.add_table(s[keep], caption="Effects (kind `effect`): treated − clean on the outcome; levels (kind "
                         "`level`): the mean outcome in each condition. NDE: input treated, latents held clean; NIE: "
                         "input clean, latents from the treated run.")
        note = getattr(result, "proportion_note", "")
        if note:
            report.add_note(str(note), title="Proportion mediated")
        ood_note(report, [treatment] if treatment else [])
        drops_note(report, result)

    def answers(self, result: MediationResult | pd.DataFrame) -> pd.DataFrame:
        r = result.rows
        return schema.ANSWER_ROWS.frame(pd.DataFrame({
            "example_id": r["example_id"], "condition": f"{self.key}: " + r["condition"], "answer": r["answer"],
            "parsed": r["parsed"], "parse_method": r["parse_method"], "correct": r["correct"],
            "n_latents": r["n_latents"]}))

    def headline(self, result: MediationResult | pd.DataFrame) -> dict[str, str]:
        s = self.summary_of(result)
        return {str(r["effect"]): _ci(r) for _, r in s[s["kind"] == "effect"].iterrows()}


def _rewrites(path: str, where: str) -> dict[str, Any]:
    """The directed rewrite and its same-length placebo of a JSONL file (relative: from the study file's folder)."""
    from latentprobe.interventions import RewriteSpan

    p = Path(path).expanduser()
    if not p.is_absolute():
        p = (Path(where).parent if Path(where).is_file() else Path.cwd()) / p
    return {"rewrite": RewriteSpan(str(p), "rewrite"), "rewrite_placebo": RewriteSpan(str(p), "placebo")}
