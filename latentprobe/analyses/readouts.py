"""Readouts of the clean run as records: linear probes over layers x steps (``probes``), one target
probed from several representations (``representations``) and latent collapse (``collapse``).

They read the clean trace only (no generation beyond it, except the random-weights baseline), take
seconds, and are recomputed when a killed study had not finished them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from latentprobe import schema
from latentprobe.analyses.base import Analysis, ReportSink
from latentprobe.analyses.options import AnalysisOptions, OptionError, option
from latentprobe.analyses.probe_controls import (CONTROL_LABELS_DOC, CONTROL_TYPES_DOC, question_types,
                                                 selectivity_text, unlearnable_note)
from latentprobe.analyses.context import Context
from latentprobe.analyses.probe_targets import TASKS, positions_tables, target_labels
from latentprobe.errors import LatentProbeError, StudyError
from latentprobe.perturbations import InputSet
from latentprobe.probing.sweep import ProbeSweepResult
from latentprobe.probing.significance import permutations_for
from latentprobe.stats.multiplicity import add_adjusted_columns
from latentprobe.report.notes import SMALL_SAMPLE_N, SMALL_SAMPLE_NOTE
from latentprobe.report.sections import once, probe_note
from latentprobe.readouts.positions import PROBE_POSITION_GROUPS
from latentprobe.schema_probing import PROBE_GAP, PROBE_POSITIONS

__all__ = ["Probes", "ProbesOptions", "Representations", "RepresentationsOptions", "Collapse", "CollapseOptions",
           "field_values", "step_matrix_of", "control_types_of", "REPRESENTATION_LABELS"]


def field_values(inputs: InputSet, name: str, *, where: str = "") -> np.ndarray:
    """Per-example values of field ``name``: the example's metadata, its ``attributes``, or the toy example's.

    Parameters
    ----------
    inputs : InputSet
        The examples.
    name : str
        The field.
    where : str
        Prefix of the error message (the study file and table).

    Returns
    -------
    numpy.ndarray
        One string per example (``"none"`` where it has no value).

    Raises
    ------
    StudyError
        No example has the field (the message lists the fields that exist), or a value is a list (a probe
        target must be one label per example).
    """
    out: list[Any] = []
    fields: set[str] = set()
    for eid, m in zip(inputs.example_ids, inputs.meta):
        toy = m.get("toy")
        attrs = dict(m.get("attributes") or {})
        if toy is not None:
            attrs = {"category": toy.template, **toy.attributes}
        fields.update(k for k in m if k not in ("toy", "attributes"))
        fields.update(attrs)
        value = m[name] if name in m and name not in ("toy", "attributes") else attrs.get(name)
        if isinstance(value, (list, tuple, set, dict)):
            raise StudyError(f"{where}the field {name!r} holds a {type(value).__name__} (example {eid!r}: "
                             f"{str(value)[:60]}), not one label per example; a probe target must be a scalar field "
                             "(category, source, or a number or text attribute).")
        out.append(value)
    if all(v is None for v in out):
        raise StudyError(f"{where}no example has the field {name!r}; choose from {', '.join(sorted(fields))}.")
    return np.array(["none" if v is None else str(v) for v in out])


def step_matrix_of(long: pd.DataFrame) -> np.ndarray:
    """The ``[K, K]`` matrix of a :class:`latentprobe.schema.STEP_MATRIX` table (the inverse of
    :meth:`latentprobe.geometry.WithinInstanceResult.step_table`).

    Parameters
    ----------
    long : pandas.DataFrame
        ``step_a``, ``step_b``, ``cosine`` (not empty).

    Returns
    -------
    numpy.ndarray
        ``[K, K]``; NaN where the table has no cell.
    """
    k = int(long["step_a"].max()) + 1
    mat = np.full((k, k), np.nan)
    mat[long["step_a"].to_numpy(int), long["step_b"].to_numpy(int)] = long["cosine"].to_numpy(float)
    return mat


def _groups(ctx: Context) -> np.ndarray:
    """Probe CV groups: one image never straddles train and test (``image_id``, else the example id)."""
    return np.array([str(m.get("image_id", eid)) for m, eid in zip(ctx.inputs.meta, ctx.inputs.example_ids)])


def control_types_of(inputs: InputSet, key: str, groups: np.ndarray, rows: np.ndarray | list[int], *,
                     n_splits: int, seed: int, where: str = "") -> np.ndarray:
    """The control types of a probe over the examples ``rows``: ``key`` ``"question"``
    (:func:`latentprobe.analyses.probe_controls.question_types`), ``"groups"`` (the CV groups) or an example field
    (:func:`field_values`).

    Parameters
    ----------
    inputs : InputSet
        The examples.
    key : str
        The study file's ``control_types``.
    groups : numpy.ndarray
        The CV groups of all examples.
    rows : array of int
        The probed examples (indices into ``inputs``), in the probe's order.
    n_splits, seed : int
        The probe's folds.
    where : str
        Prefix of error messages.

    Returns
    -------
    numpy.ndarray
        One type per probed example.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if key == "groups":
        return groups[rows]
    if key == "question":
        return question_types(inputs, groups, rows, n_splits=n_splits, seed=seed)
    return field_values(inputs, key, where=where)[rows]


# --------------------------------------------------------------------------- probes
@dataclass(frozen=True, kw_only=True)
class ProbesOptions(AnalysisOptions):
    """Options of ``probes`` (:func:`latentprobe.probing.probe_sweep` over residual layers x latent steps)."""

    targets: tuple[str, ...] = option(doc='example fields to decode, "gold", or "intermediate:<step>" (a gold chain\'s step)')
    task: str = option("classification", choices=TASKS, doc="labels; numbers (ridge, R^2); numbers in quantile bins")
    bins: int = option(4, min_value=2, doc='quantile bins of task = "binned"')
    positions: tuple[str, ...] = option(("latents",), choices=PROBE_POSITION_GROUPS,
                                        doc="position groups probed; more than the latents adds the decodability gap")
    layers: tuple[int, ...] | None = option(None, all_value=True, min_value=0, doc='residual layers, or "all"')
    steps: tuple[int, ...] | None = option(None, all_value=True, min_value=0, doc='latent steps, or "all"')
    n_splits: int = option(4, min_value=2, doc="outer folds of the grouped cross-validation")
    controls: bool = option(True, doc="label-shuffle and control-task baselines")
    control_types: str = option("question", doc=CONTROL_TYPES_DOC)
    control_labels: str = option("within_type", choices=("within_type", "per_type"), doc=CONTROL_LABELS_DOC)

    def validate(self) -> None:
        self._fixed_ci("probe intervals are 95% Student-t intervals over outer folds")
        if any(not t for t in self.targets):
            raise OptionError("ProbesOptions", "targets", "holds an empty name", 'write e.g. targets = ["category"]')


class Probes(Analysis):
    """What is linearly decodable from the latents, per residual layer and latent step, with controls."""

    key = "probes"
    title = "Probes: what can be read from the latents?"
    Options = ProbesOptions
    tables = {"scores": schema.PROBE_SCORES, "skipped": schema.PROBES_SKIPPED, "positions": PROBE_POSITIONS,
              "gap": PROBE_GAP}
    frame_keys = frozenset({"target", "layer", "step", "score"})
    result_types = (ProbeSweepResult,)

    def check(self, options: AnalysisOptions, ctx: Context) -> None:
        assert isinstance(options, ProbesOptions)
        for target in options.targets:
            target_labels(ctx.inputs, target, options.task, fields=field_values, bins=options.bins,
                          where=f"{ctx.where}: [analyses.{self.key}] key 'targets': ")
        if options.control_types not in ("question", "groups"):
            field_values(ctx.inputs, options.control_types, where=f"{ctx.where}: [analyses.{self.key}] key 'control_types': ")
        if ctx.runner is not None:  # in a checkpoint's preflight the model is not loaded yet: checked in run
            self._in_range(ctx, options.layers, int(ctx.runner.n_layers) + 1, "layers", "residual layers")

    def _in_range(self, ctx: Context, values: tuple[int, ...] | None, n: int, key: str, what: str) -> None:
        bad = [v for v in values or () if v >= n]
        if bad:
            raise StudyError(f"{ctx.where}: [analyses.{self.key}] key '{key}': {bad} out of range: this run has {n} "
                             f"{what} (0..{n - 1}); list values in that range or write {key} = \"all\".")

    def run(self, ctx: Context, options: AnalysisOptions, folder: Path | None) -> dict[str, pd.DataFrame]:
        from latentprobe.probing import probe_sweep

        assert isinstance(options, ProbesOptions)
        trace = ctx.trace
        n_res = int(ctx.runner.n_layers) + 1
        self._in_range(ctx, options.layers, n_res, "layers", "residual layers")
        layers = list(range(n_res)) if options.layers is None else list(options.layers)
        features: dict[tuple[int, int], np.ndarray] = {}
        kept: list[int] = []
        for layer in layers:
            stacked, kept = trace.stack("hidden", layer=layer)
            arr = stacked.float().numpy()
            self._in_range(ctx, options.steps, arr.shape[1], "steps", "latent steps (the modal latent count)")
            steps = range(arr.shape[1]) if options.steps is None else options.steps
            for s in steps:
                features[(layer, s)] = arr[:, s]
        groups_all = _groups(ctx)
        frames, skipped, pos, gaps = [], [], [], []
        n_perm = permutations_for(len(options.targets) * len(features))
        if set(options.positions) - {"latents"}:  # every group on the same folds, and the gap
            pos, gaps, skipped = positions_tables(self, ctx, options, groups_all, n_perm, fields=field_values,
                                                  types_of=control_types_of)
        for target in options.targets:
            y, present, task = target_labels(ctx.inputs, target, options.task, fields=field_values, bins=options.bins,
                                             where=f"{ctx.where}: [analyses.{self.key}] key 'targets': ")
            use = present[kept]
            rows = np.asarray(kept, dtype=np.int64)[use]
            seed = int(options.seed or 0)
            try:
                types = "shuffled" if options.task != "classification" else control_types_of(
                    ctx.inputs, options.control_types, groups_all, rows, n_splits=options.n_splits, seed=seed,
                    where=f"{ctx.where}: [analyses.{self.key}] key 'control_types': ")
                res = probe_sweep({k: v[use] for k, v in features.items()}, y[rows], groups_all[rows], task=task,
                                  target_name=target, n_splits=options.n_splits, seed=seed, control_types=types,
                                  control_labels=options.control_labels, controls=options.controls,
                                  progress=options.progress, n_perm=n_perm)
                frames.append(res.scores)
            except LatentProbeError as err:  # too few examples or classes for this target: recorded, not fatal
                skipped.append({"target": target, "reason": " ".join(str(err).split())})
        ctx.save_trace(folder, options.save_trace)
        # one family over targets x layers x steps: Holm and BH are recomputed over the whole table
        scores = add_adjusted_columns(pd.concat(frames, ignore_index=True)) if frames else []
        return {"scores": schema.PROBE_SCORES.frame(scores), "skipped": schema.PROBES_SKIPPED.frame(skipped),
                "positions": PROBE_POSITIONS.frame(add_adjusted_columns(pd.concat(pos, ignore_index=True)) if pos else []),
                "gap": PROBE_GAP.frame(pd.concat(gaps, ignore_index=True) if gaps else [])}

    def to_tables(self, result: Mapping[str, pd.DataFrame] | ProbeSweepResult | pd.DataFrame) -> dict[str, pd.DataFrame]:
        if isinstance(result, Mapping):
            return {k: result[k] for k in self.tables}
        return {"scores": result.scores, "skipped": schema.PROBES_SKIPPED.frame([]), "positions": PROBE_POSITIONS.empty(),
                "gap": PROBE_GAP.empty()}

    def from_tables(self, tables: Mapping[str, pd.DataFrame], config: Mapping[str, Any],
                    folder: Path | None = None) -> dict[str, pd.DataFrame]:
        return {k: tables[k] if k in tables else self.tables[k].empty() for k in self.tables}

    def summary_of(self, result: Mapping[str, pd.DataFrame] | ProbeSweepResult | pd.DataFrame) -> pd.DataFrame:
        if isinstance(result, pd.DataFrame):
            return result
        return result["scores"] if isinstance(result, Mapping) else result.scores

    def figures(self, result: Mapping[str, pd.DataFrame] | ProbeSweepResult | pd.DataFrame) -> list[Any]:
        from latentprobe import viz

        s = self.summary_of(result)
        return [viz.probe_heatmap(s[s["target"] == t]) for t in dict.fromkeys(s["target"])]

    def section(self, report: ReportSink, result: Mapping[str, pd.DataFrame] | ProbeSweepResult | pd.DataFrame, *, title: str | None = None, level: int = 2) -> None:
        s = self.summary_of(result)
        report.add_heading(title or "Probes: where is the target linearly decodable?", level)
        for target, fig in zip(dict.fromkeys(s["target"]), self.figures(result)):
            sub = s[s["target"] == target]
            report.add_figure(fig)
            best = sub.sort_values("score", ascending=False).head(10)
            report.add_table(best, caption=f"Target `{target}`: the ten best (layer, step) cells by held-out score.")
            n = int(sub["n"].max()) if len(sub) else 0
            if n < SMALL_SAMPLE_N:
                groups = int(sub["n_groups"].max()) if len(sub) else 0
                once(report, f"probe-small:{n}", SMALL_SAMPLE_NOTE.format(n=n, n_groups=groups), kind="warning",
                     title="Small sample")
        unlearnable_note(report, s)
        gap = result.get("gap") if isinstance(result, Mapping) else None
        if gap is not None and len(gap):
            report.add_table(gap, caption="Decodability gap: the latents' score minus each downstream group's "
                             "(steps mean-pooled, same folds), with its paired group-bootstrap interval.")
        skipped = result.get("skipped") if isinstance(result, Mapping) else None
        if skipped is not None:
            for _, r in skipped.iterrows():
                report.add_note(f"{r['target']}: {r['reason']}", kind="warning", title="Probe skipped")
        probe_note(report)

    def headline(self, result: Mapping[str, pd.DataFrame] | ProbeSweepResult | pd.DataFrame) -> dict[str, str]:
        s = self.summary_of(result)
        out = {}
        for target, sub in s.groupby("target", sort=False):
            best = sub.sort_values("score", ascending=False).iloc[0]
            out[f"probe {target}: best cell (layer {best['layer']}, step {best['step']})"] = (
                f"{best['score']:.3f} (chance {best['chance']:.3f}, selectivity {best['selectivity']:+.3f}"
                f"{selectivity_text(best)})")
        return out


# --------------------------------------------------------------------------- representations
#: Display names of the representations (the ``representation`` column).
REPRESENTATION_LABELS = {"latent_mean": "latent (mean over steps)", "latent_last": "latent (last step)",
                         "image_tokens": "image tokens (mean)", "random_weights": "random-weights model latents"}


@dataclass(frozen=True, kw_only=True)
class RepresentationsOptions(AnalysisOptions):
    """Options of ``representations`` (:func:`latentprobe.probing.compare_representations`)."""

    target: str = option(doc="the example field to decode")
    representations: tuple[str, ...] = option(("latent_mean", "latent_last", "image_tokens"),
                                              choices=tuple(REPRESENTATION_LABELS), doc="what to probe it from")
    layer: int | None = option(None, min_value=0, doc="residual layer (default: the last)")
    n_splits: int = option(4, min_value=2, doc="outer folds of the grouped cross-validation")
    controls: bool = option(True, doc="label-shuffle and control-task baselines")
    control_types: str = option("question", doc=CONTROL_TYPES_DOC)
    control_labels: str = option("within_type", choices=("within_type", "per_type"), doc=CONTROL_LABELS_DOC)

    def validate(self) -> None:
        self._fixed_ci("probe intervals are 95% Student-t intervals over outer folds")


class Representations(Analysis):
    """One target probed from the latents, the image tokens and a random-weights model's latents."""

    key = "representations"
    title = "Probes: representations compared"
    Options = RepresentationsOptions
    tables = {"scores": schema.PROBE_COMPARISON}
    frame_keys = frozenset({"representation", "score"})

    def check(self, options: AnalysisOptions, ctx: Context) -> None:
        assert isinstance(options, RepresentationsOptions)
        field_values(ctx.inputs, options.target, where=f"{ctx.where}: [analyses.{self.key}] key 'target': ")
        if options.control_types not in ("question", "groups"):
            field_values(ctx.inputs, options.control_types, where=f"{ctx.where}: [analyses.{self.key}] key 'control_types': ")
        if "image_tokens" in options.representations and ctx.capture_positions != "image":
            raise StudyError(f"{ctx.where}: [analyses.{self.key}] key 'representations': image_tokens needs the image "
                             "tokens' states, which this model's clean run does not capture; remove it.")
        if "random_weights" in options.representations and ctx.hook("random_runner") is None:
            raise StudyError(f"{ctx.where}: [analyses.{self.key}] key 'representations': random_weights needs a "
                             "random-weights copy of the model, which this model family does not provide; remove it.")

    def run(self, ctx: Context, options: AnalysisOptions, folder: Path | None) -> pd.DataFrame:
        from latentprobe.probing import LinearProbe, compare_representations

        assert isinstance(options, RepresentationsOptions)
        trace, seed = ctx.trace, int(options.seed or 0)
        layer = int(ctx.runner.n_layers) if options.layer is None else options.layer
        y = field_values(ctx.inputs, options.target, where=f"{ctx.where}: [analyses.{self.key}] key 'target': ")
        groups = _groups(ctx)
        lat_t, kept = trace.stack("hidden", layer=layer)
        lat = lat_t.numpy()
        keep = [i for i in kept if y[i] != "none"]
        pos = [kept.index(i) for i in keep]
        reps: dict[str, np.ndarray] = {}
        for name in options.representations:
            label = REPRESENTATION_LABELS[name]
            if name == "latent_mean":
                reps[label] = lat[pos].mean(1)
            elif name == "latent_last":
                reps[label] = lat[pos, -1]
            elif name == "image_tokens":
                reps[label] = np.stack([trace[i].captured_hidden[:, layer].mean(0).numpy() for i in keep])
            else:
                rnd = ctx.hook("random_runner")(seed)  # type: ignore[misc]
                inp = ctx.inputs
                rtr = rnd.run([inp.prompts[i] for i in keep], None if inp.images is None else [inp.images[i] for i in keep],
                              max_new_tokens=ctx.max_new_tokens, batch_size=int(options.batch_size or 1), progress=False)
                reps[label] = rtr.stack("hidden", layer=layer)[0].numpy().mean(1)
        types = control_types_of(ctx.inputs, options.control_types, groups, keep, n_splits=options.n_splits, seed=seed,
                                 where=f"{ctx.where}: [analyses.{self.key}] key 'control_types': ")
        table = compare_representations(reps, y[keep], groups[keep], task="classification", target_name=options.target,
                                        n_splits=options.n_splits, seed=seed, probe=LinearProbe(),
                                        controls=options.controls, control_types=types,
                                        control_labels=options.control_labels)
        ctx.save_trace(folder, options.save_trace)
        return schema.PROBE_COMPARISON.frame(table)

    def to_tables(self, result: pd.DataFrame) -> dict[str, pd.DataFrame]:
        return {"scores": self.summary_of(result)}

    def from_tables(self, tables: Mapping[str, pd.DataFrame], config: Mapping[str, Any],
                    folder: Path | None = None) -> pd.DataFrame:
        return tables["scores"]

    def figures(self, result: pd.DataFrame) -> list[Any]:
        from latentprobe import viz

        return [viz.probe_controls(self.summary_of(result))]

    def section(self, report: ReportSink, result: pd.DataFrame, *, title: str | None = None, level: int = 2) -> None:
        report.add_heading(title or self.title, level)
        for fig in self.figures(result):
            report.add_figure(fig)
        report.add_table(self.summary_of(result), caption="Held-out score per representation with its baselines "
                         "(majority class, shuffled labels, control task; selectivity = score − control, with its "
                         "paired group-bootstrap interval).")
        unlearnable_note(report, self.summary_of(result))
        probe_note(report)

    def headline(self, result: pd.DataFrame) -> dict[str, str]:
        s = self.summary_of(result)
        return {f"probe {r['target']} from {r['representation']}": f"{r['score']:.3f} (chance {r['chance']:.3f})"
                for _, r in s.iterrows()}


# --------------------------------------------------------------------------- collapse
@dataclass(frozen=True, kw_only=True)
class CollapseOptions(AnalysisOptions):
    """Options of ``collapse`` (:func:`latentprobe.geometry.collapse_table`)."""

    def validate(self) -> None:
        self._fixed_ci("the collapse table has no intervals")


class Collapse(Analysis):
    """How alike are the latents: within an instance, across instances, against baselines."""

    key = "collapse"
    title = "Collapse: how alike are the latents?"
    Options = CollapseOptions
    tables = {"collapse": schema.COLLAPSE_TABLE, "step_matrix": schema.STEP_MATRIX}
    frame_keys = frozenset({"source", "centering", "within_instance_mean", "across_instance_mean"})

    def run(self, ctx: Context, options: AnalysisOptions, folder: Path | None) -> dict[str, pd.DataFrame]:
        from latentprobe import geometry

        trace = ctx.trace
        z_t, kept = trace.stack("z")
        z = z_t.float().numpy()
        # text-token, image-token and prompt-last states at indices matched to the steps, where the run captured them
        baselines = geometry.baseline_states(trace, kept, z.shape[1])
        table = geometry.collapse_table(z, baselines=baselines, seed=int(options.seed or 0))
        long = schema.STEP_MATRIX.frame(geometry.within_instance(z, n_boot=0).step_table())
        ctx.save_trace(folder, options.save_trace)
        return {"collapse": schema.COLLAPSE_TABLE.frame(table), "step_matrix": long}

    def to_tables(self, result: Mapping[str, pd.DataFrame] | pd.DataFrame) -> dict[str, pd.DataFrame]:
        if isinstance(result, Mapping):
            return {k: result[k] for k in self.tables}
        return {"collapse": result, "step_matrix": schema.STEP_MATRIX.frame([])}

    def from_tables(self, tables: Mapping[str, pd.DataFrame], config: Mapping[str, Any],
                    folder: Path | None = None) -> dict[str, pd.DataFrame]:
        return {k: tables[k] for k in self.tables}

    def summary_of(self, result: Mapping[str, pd.DataFrame] | pd.DataFrame) -> pd.DataFrame:
        return result["collapse"] if isinstance(result, Mapping) else result

    def step_matrix(self, result: Mapping[str, pd.DataFrame] | pd.DataFrame) -> np.ndarray | None:
        """The step x step cosine matrix of a study result.

        Parameters
        ----------
        result : mapping or pandas.DataFrame
            A study's collapse result (``{"collapse": ..., "step_matrix": ...}``) or a bare collapse table.

        Returns
        -------
        numpy.ndarray or None
            ``[K, K]`` (mean over examples), or ``None`` for a bare collapse table.
        """
        long = result.get("step_matrix") if isinstance(result, Mapping) else None
        return None if long is None or long.empty else step_matrix_of(long)

    def figures(self, result: Mapping[str, pd.DataFrame] | pd.DataFrame) -> list[Any]:
        from latentprobe import viz

        figs = [viz.collapse_bars(self.summary_of(result))]
        mat = self.step_matrix(result)
        if mat is not None:
            figs.append(viz.similarity_heatmap(mat, title="Step x step cosine of latents (mean over examples)"))
        return figs

    def section(self, report: ReportSink, result: Mapping[str, pd.DataFrame] | pd.DataFrame, *, title: str | None = None, level: int = 2) -> None:
        report.add_heading(title or self.title, level)
        figs = self.figures(result)
        report.add_figure(figs[0])
        report.add_table(self.summary_of(result), caption="Collapse statistics per source and centring: cosines in "
                         "[−1, 1]; effective rank and participation ratio of all vectors pooled; mean L2 norm.")
        for fig in figs[1:]:
            report.add_figure(fig)
        once(report, "collapse", "A high cosine after centring is not by itself collapse; compare with the baselines.",
             title="Reading collapse")

    def headline(self, result: Mapping[str, pd.DataFrame] | pd.DataFrame) -> dict[str, str]:
        s = self.summary_of(result)
        raw = s[(s["source"] == "latent") & (s["centering"] == "raw")]
        if raw.empty:
            return {}
        r = raw.iloc[0]
        return {"latents: across-instance cosine (raw)": f"{r['across_instance_mean']:.3f}",
                "latents: effective rank": f"{r['effective_rank']:.2f}"}
