"""Similarity of the latents as a record (``latent_similarity``): between the steps of one instance
(:func:`latentprobe.geometry.within_instance`) and between instances at one step
(:func:`latentprobe.geometry.across_instances`): bootstrap intervals over instances within an instance,
and the instance jackknife of the U-statistic across instances. Next to the latents' maps, the same maps of
text-token, image-token and prompt-last states at matched indices, where the run captured them
(:func:`latentprobe.geometry.baseline_states`): table ``across_sources``, matrices in ``maps.npz``.

With ``baseline`` a second model (``toy:<variant>``, a folder or a hub id, run with ``baseline_preset``,
``"plain"`` by default: no latent protocol) answers the same inputs, and the states along its first K
generated tokens (a text chain of thought) give the same curves, drawn next to the latents'
(tables ``consecutive_baseline`` and ``across_baseline``).

With ``positions`` (groups of :data:`latentprobe.readouts.PROBE_POSITION_GROUPS`) the residuals of the latents and
of those groups at ``layers`` (:func:`latentprobe.readouts.position_features`) give, per layer and group, the
across-instance cosine and spread and the latents' difference to each group with a paired interval
(:func:`latentprobe.geometry.position_similarity`): tables ``positions`` and ``position_gap``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from latentprobe import schema
from latentprobe.readouts.positions import PROBE_POSITION_GROUPS
from latentprobe.schema_similarity import ACROSS_SOURCES, POSITION_SIMILARITY, POSITION_SIMILARITY_GAP
from latentprobe.analyses.base import Analysis, ReportSink
from latentprobe.analyses.options import AnalysisOptions, option
from latentprobe.analyses.context import Context
from latentprobe.analyses.readouts import step_matrix_of
from latentprobe.geometry.instances import AcrossInstancesResult, WithinInstanceResult
from latentprobe.geometry.positions import PositionSimilarityResult

__all__ = ["Similarity", "SimilarityOptions"]

_Result = WithinInstanceResult | AcrossInstancesResult | PositionSimilarityResult | Mapping[str, pd.DataFrame]


@dataclass(frozen=True, kw_only=True)
class SimilarityOptions(AnalysisOptions):
    """Options of ``latent_similarity``."""

    center: bool = option(False, doc="subtract the grand mean latent first")
    baselines: bool = option(True, doc="the same maps of captured text, image and prompt-last states")
    states: str = option("fed", choices=("fed", "source"),
                         doc="fed: the vectors fed at the steps (z); source: the final-norm outputs that produced "
                             "them (h_src; the same for identity-f latents, the text states for a text span)")
    steps: int | None = option(None, min_value=1, doc="compare the first steps of every example with at least that "
                                                      "many (text spans vary in length); default: the examples "
                                                      "with the most common count")
    baseline: str | None = option(None, doc="a second model run on the same inputs (toy:<variant>, a folder or a hub "
                                            "id): its text-span curve is drawn next to the latents'")
    baseline_preset: str = option("plain", doc="the baseline's preset (no latent protocol by default)")
    baseline_states: str = option("source", choices=("fed", "source"), doc="the baseline's states (as states)")
    positions: tuple[str, ...] | None = option(None, choices=PROBE_POSITION_GROUPS,
                                        doc="position groups compared with the latents (across-instance cosine, "
                                            "spread and the latents' difference, per layer)")
    layers: tuple[int, ...] | None = option(None, all_value=True, min_value=0,
                                            doc='residual layers of positions, or "all"')


class Similarity(Analysis):
    """Cosine similarity between latent steps (within an instance) and between instances (per step)."""

    key = "latent_similarity"
    title = "Similarity of the latents"
    Options = SimilarityOptions
    tables = {"consecutive": schema.CONSECUTIVE, "across": schema.ACROSS_SUMMARY, "step_matrix": schema.STEP_MATRIX,
              "across_sources": ACROSS_SOURCES, "consecutive_baseline": schema.CONSECUTIVE,
              "across_baseline": schema.ACROSS_SUMMARY, "positions": POSITION_SIMILARITY,
              "position_gap": POSITION_SIMILARITY_GAP}
    result_types = (WithinInstanceResult, AcrossInstancesResult, PositionSimilarityResult)

    def run(self, ctx: Context, options: AnalysisOptions, folder: Path | None) -> dict[str, pd.DataFrame]:
        from latentprobe import geometry

        assert isinstance(options, SimilarityOptions)
        field = {"fed": "z", "source": "h_src"}
        z, kept = _states(ctx.trace, field[options.states], options.steps, ctx.where)
        kw = {"center": options.center, "n_boot": int(options.n_boot or 0), "seed": int(options.seed or 0),
              "ci": options.ci}
        within = geometry.within_instance(z, **kw)
        across = geometry.across_instances(z, **kw)
        out = {"consecutive": schema.CONSECUTIVE.frame(within.consecutive),
               "across": schema.ACROSS_SUMMARY.frame(across.summary),
               "step_matrix": schema.STEP_MATRIX.frame(within.step_table()),
               "consecutive_baseline": schema.CONSECUTIVE.frame([]), "across_baseline": schema.ACROSS_SUMMARY.frame([])}
        if options.baseline is not None:
            base = _baseline_states(ctx, options, z.shape[1], field[options.baseline_states])
            out["consecutive_baseline"] = schema.CONSECUTIVE.frame(geometry.within_instance(base, **kw).consecutive)
            out["across_baseline"] = schema.ACROSS_SUMMARY.frame(geometry.across_instances(base, **kw).summary)
        sources = {"latent": across}
        if options.baselines:
            for name, states in geometry.baseline_states(ctx.trace, kept, z.shape[1]).items():
                sources[name] = geometry.across_instances(states, **kw)
        ctx.save_trace(folder, options.save_trace)
        rows = [{"source": name, **r} for name, res in sources.items() for r in res.summary.to_dict("records")]
        out["across_sources"] = ACROSS_SOURCES.frame(rows)
        out["positions"], out["position_gap"] = _positions(ctx, options, self.key)
        maps = {name: res.matrices for name, res in sources.items() if res.matrices is not None}
        return {**out, "maps": maps} if maps else out

    def save_extras(self, result: Any, folder: Path) -> None:
        from latentprobe.atomic import atomic_write

        maps = result.get("maps") if isinstance(result, Mapping) else None
        if maps:
            atomic_write(folder / "maps.npz", lambda fh: np.savez(fh, **{k: np.asarray(v) for k, v in maps.items()}),
                         binary=True)

    def to_tables(self, result: _Result) -> dict[str, pd.DataFrame]:
        if isinstance(result, Mapping):
            return {k: result[k] if k in result else t.frame([]) for k, t in self.tables.items()}
        empty = {k: t.frame([]) for k, t in self.tables.items()}
        if isinstance(result, WithinInstanceResult):
            return {**empty, "consecutive": result.consecutive}
        if isinstance(result, PositionSimilarityResult):
            return {**empty, "positions": result.table, "position_gap": result.gap}
        return {**empty, "across": result.summary}

    def from_tables(self, tables: Mapping[str, pd.DataFrame], config: Mapping[str, Any],
                    folder: Path | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {k: tables[k] if k in tables else t.frame([]) for k, t in self.tables.items()}
        if folder is not None and (folder / "maps.npz").exists():
            with np.load(folder / "maps.npz") as z:
                out["maps"] = {k: z[k] for k in z.files}
        return out

    def summary_of(self, result: _Result) -> pd.DataFrame:
        if isinstance(result, WithinInstanceResult):
            return result.consecutive
        if isinstance(result, AcrossInstancesResult):
            return result.summary
        if isinstance(result, PositionSimilarityResult):
            return result.table
        return result["consecutive"] if isinstance(result, Mapping) else result

    def figures(self, result: _Result) -> list[Any]:
        from latentprobe import viz

        if isinstance(result, WithinInstanceResult):
            return [viz.similarity_heatmap(result), viz.consecutive_similarity(result)]
        if isinstance(result, AcrossInstancesResult):
            return [viz.across_instance_summary(result)]
        if isinstance(result, PositionSimilarityResult):
            return [viz.position_similarity_lines(result)]
        figs = []
        long = result["step_matrix"]
        if len(long):
            figs.append(viz.similarity_heatmap(step_matrix_of(long)))
        for key, draw in (("consecutive", viz.consecutive_similarity), ("across", viz.across_instance_summary)):
            base = result.get(f"{key}_baseline")
            if base is not None and len(base) and len(result[key]):  # the text chain of thought next to the latents
                figs.append(draw({"latent": result[key], "text chain of thought (baseline)": base}))
            elif len(result[key]):
                figs.append(draw(result[key]))
        sources = result.get("across_sources")
        if sources is not None and len(sources) and sources["source"].nunique() > 1:
            figs.append(viz.across_instance_summary(sources, by="source", title="Mean cosine between instances per "
                                                    "step: latents and prompt states at matched indices"))
        positions = result.get("positions")
        if positions is not None and len(positions):
            figs.append(viz.position_similarity_lines(positions))
        return figs

    def section(self, report: ReportSink, result: _Result, *, title: str | None = None, level: int = 2) -> None:
        default = ("Similarity between latent steps" if isinstance(result, WithinInstanceResult) else
                   "Similarity across examples" if isinstance(result, AcrossInstancesResult) else
                   "Similarity across examples per position group" if isinstance(result, PositionSimilarityResult)
                   else self.title)
        report.add_heading(title or default, level)
        for fig in self.figures(result):
            report.add_figure(fig)

    def headline(self, result: _Result) -> dict[str, str]:
        out = {}
        tables = self.to_tables(result)
        if len(tables["consecutive"]):
            out["consecutive-step cosine (mean over steps)"] = f"{tables['consecutive']['mean'].mean():.3f}"
        if len(tables["across"]):
            out["across-instance cosine (mean over steps)"] = f"{tables['across']['mean_offdiag'].mean():.3f}"
        gap = tables["position_gap"]
        if len(gap):  # the latents against each group at the deepest layer compared
            last = gap[gap["layer"] == gap["layer"].max()]
            for r in last.itertuples():
                out[f"latents - {r.position_group} cosine (layer {r.layer})"] = (
                    f"{r.difference:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]")
        return out


def _positions(ctx: Context, options: SimilarityOptions, key: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tables ``positions`` and ``position_gap`` (empty without ``positions``)."""
    from latentprobe.errors import StudyError
    from latentprobe.geometry import position_similarity
    from latentprobe.readouts import position_features

    if not options.positions:
        return POSITION_SIMILARITY.frame([]), POSITION_SIMILARITY_GAP.frame([])
    n_res = int(ctx.runner.n_layers) + 1
    bad = [v for v in options.layers or () if v >= n_res]
    if bad:
        raise StudyError(f"{ctx.where}: [analyses.{key}] key 'layers': {bad} out of range: this run has {n_res} "
                         f"residual layers (0..{n_res - 1}); list values in that range or write layers = \"all\".")
    layers = list(range(n_res)) if options.layers is None else list(options.layers)
    groups = list(dict.fromkeys(("latents", *options.positions)))
    pf = position_features(ctx.runner, ctx.trace, groups, layers=layers, batch_size=int(options.batch_size or 8))
    res = position_similarity(pf, ci=options.ci)
    return res.table, res.gap


def _baseline_states(ctx: Context, options: SimilarityOptions, k: int, field: str) -> Any:
    """The baseline model's states along its first ``k`` text-span steps, ``[n, k, d]`` (examples with fewer
    steps are left out, as the latents' are)."""
    from latentprobe.errors import StudyError

    load = ctx.hook("baseline_runner")
    if load is None:
        raise StudyError(f"{ctx.where}: [analyses.latent_similarity] baseline={options.baseline!r} needs a study "
                         "(the study loads the second model); with the Python API compare two traces directly.")
    runner = load(options.baseline, options.baseline_preset, k)
    inputs = ctx.inputs
    trace = runner.run(list(inputs.prompts), None if inputs.images is None else list(inputs.images),
                       example_ids=list(inputs.example_ids), max_new_tokens=ctx.max_new_tokens, seed=ctx.seed,
                       batch_size=int(options.batch_size or 1), progress=False)
    return _states(trace, field, k, f"{ctx.where}: the baseline {options.baseline!r}")[0]


def _states(trace: Any, field: str, k: int | None, where: str) -> tuple[np.ndarray, list[int]]:
    """``[n, k, d]``: the first ``k`` steps of the examples with at least ``k`` (``None``: the modal count's), and
    those examples' indices in ``trace``."""
    from latentprobe.errors import StudyError

    if k is None:
        stacked, kept = trace.stack(field)[:2]
        return stacked.float().numpy(), [int(i) for i in kept]
    keep = [i for i, e in enumerate(trace) if e.num_latents >= k]
    if len(keep) < 2:
        raise StudyError(f"{where}: {len(keep)} example(s) have {k} steps or more; at least 2 are needed "
                         "(lower steps, or raise max_new_tokens).")
    return np.stack([getattr(trace[i], field)[:k].float().numpy() for i in keep]), keep
