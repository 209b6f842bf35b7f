"""The analyses of a study, each run into its own folder and stored as tidy CSV tables.

Every analysis writes ``DIR/<analysis>/``: the resumable analyses (``x_to_z``, ``z_to_y``,
``decompose``) keep their sweep stores there (``out_dir=``, :mod:`latentprobe.sweep`), so a killed
study resumes where it stopped; once an analysis has finished, its tables are written
(``summary.csv``, ``rows.csv``, ...) and then ``done.json``, the marker that it is complete.
``probes`` and ``collapse`` are quick and are recomputed when they did not finish.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from latentprobe.atomic import atomic_write_text
from latentprobe.errors import LatentProbeError, StudyError
from latentprobe.study.config import Study
from latentprobe.study.datasets import StudyData, field_values
from latentprobe.study.results import read_frame, write_extras

__all__ = ["Context", "ANALYSIS_RUNNERS", "TABLES", "write_table", "read_table", "perturbation", "preflight"]

#: The tables each analysis folder holds (CSV), in report order.
TABLES = {"x_to_z": ("summary", "rows", "dropped", "across", "status"), "z_to_y": ("summary", "rows", "dropped"),
          "decompose": ("summary", "rows", "dropped"), "probes": ("scores", "skipped"),
          "collapse": ("collapse", "step_matrix")}


def write_table(folder: Path, name: str, frame: pd.DataFrame) -> Path:
    """Write ``folder/name.csv`` atomically (no index)."""
    return atomic_write_text(folder / f"{name}.csv", frame.to_csv(index=False))


def read_table(folder: Path, name: str) -> pd.DataFrame:
    """Read ``folder/name.csv`` back (an empty frame when the file is empty or absent)."""
    return read_frame(folder / f"{name}.csv")


class Context:
    """What the analyses share: the study, the runner, the inputs and the clean run (computed once)."""

    def __init__(self, study: Study, model: Any, data: StudyData, *, progress: bool = True) -> None:
        self.study, self.model, self.data, self.progress = study, model, data, progress
        self._trace: Any = None

    @property
    def seed(self) -> int:
        return self.study.study.seed

    @property
    def inputs(self) -> Any:
        return self.data.inputs

    def common(self) -> dict[str, Any]:
        g = self.study.generation
        return {"n_boot": g.n_boot, "seed": self.seed, "batch_size": g.batch_size, "chunk_size": g.chunk_size,
                "progress": self.progress}

    @property
    def trace(self) -> Any:
        """The clean run of every example (greedy, or the preset's published decoding with ``published = true``;
        image-token states captured for the toy models)."""
        if self._trace is None:
            inp, g = self.inputs, self.study.generation
            self._trace = self.model.runner.run(
                list(inp.prompts), None if inp.images is None else list(inp.images), example_ids=list(inp.example_ids),
                max_new_tokens=g.max_new_tokens, batch_size=g.batch_size, seed=self.seed,
                generation="published" if g.published else None,
                capture_positions="image" if self.model.toy is not None else None, progress=self.progress)
        return self._trace

    def save_trace(self, folder: Path, asked: bool) -> None:
        if asked or self.study.traces:
            self.trace.save(folder / "trace")


def preflight(ctx: Context) -> None:
    """Check what the analyses need of the data before anything is generated.

    Raises
    ------
    StudyError
        ``decompose`` on data without gold answers, a ``choice`` scorer on examples without options, a
        probe target that no example has.
    """
    study, inputs, a = ctx.study, ctx.inputs, ctx.study.analyses
    golds = [] if inputs.gold is None else [g for g in inputs.gold if g is not None]
    if a.decompose is not None and not golds:
        raise StudyError(f"{study.path}: [analyses.decompose]: the data have no gold answers (e.g. VSP, whose plans "
                         "are judged by simulating them), and both outcomes (correct, gold_logprob) need them; "
                         "remove the table.")
    if study.generation.scorer == "choice" and golds:
        missing = [eid for eid, m, g in zip(inputs.example_ids, inputs.meta, inputs.gold or ())
                   if g is not None and not m.get("options")]
        if missing:
            raise StudyError(f"{study.path}: [generation] key 'scorer': 'choice' needs each example's options, and "
                             f"{len(missing)} example(s) have none (first: {missing[0]!r}); use scorer = \"exact\" or "
                             "\"numeric\" for open answers.")
    p = study.prompt
    image_parts = p is not None and p.messages is not None and any(
        isinstance(part, Mapping) and part.get("type") == "image"
        for m in p.messages for part in (m.get("content") if isinstance(m.get("content"), (list, tuple)) else ()))
    if image_parts and (a.x_to_z is not None or a.decompose is not None):
        raise StudyError(f"{study.path}: [prompt] key 'messages': an image part puts the images inside the chat, "
                         "where the X -> Z perturbations cannot replace them; use template = \"...\" (the images "
                         "are placed as the preset's authors place them) or messages without image parts.")
    if a.probes is not None:
        for target in a.probes.targets:
            field_values(inputs, target, where=f"{study.path}: [analyses.probes] key 'targets': ")


def perturbation(name: str, seed: int) -> Any:
    """The perturbation of a study file's name (names as :data:`latentprobe.study.config.PERTURBATIONS`)."""
    from latentprobe import perturbations as P

    if name in ("counterfactual", "occlude_target"):
        from latentprobe.study.toys import toy_perturbation

        return toy_perturbation(name, seed)
    table: dict[str, Callable[[], Any]] = {
        "image_swap": lambda: P.ImageSwap(seed=seed), "blank_image": lambda: P.BlankImage(),
        "noise_image": lambda: P.NoiseImage(seed=seed), "occlude": lambda: P.Occlude(seed=seed),
        "question_swap": lambda: P.QuestionSwap(seed=seed), "instance_swap": lambda: P.InstanceSwap(seed=seed)}
    return table[name]()


def scoring(ctx: Context) -> dict[str, Any]:
    """The ``scorer=`` argument of the analyses that score answers, for ``[generation] scorer``
    (``choice`` reads each example's options from its metadata)."""
    from latentprobe.scoring import scorer_from_name

    name, opts = ctx.study.generation.scorer, {}
    if name == "choice":
        opts["options_by_example"] = {eid: tuple(m.get("options") or ()) for eid, m in
                                      zip(ctx.inputs.example_ids, ctx.inputs.meta)}
    return {"scorer": scorer_from_name(name, **opts)}


def _x_to_z(ctx: Context, folder: Path) -> tuple[dict[str, pd.DataFrame], Any]:
    from latentprobe.causal import x_to_z

    cfg = ctx.study.analyses.x_to_z
    perts = [perturbation(p, ctx.seed) for p in cfg.perturbations]
    res = x_to_z(ctx.model.runner, ctx.inputs, perts, layers=None if cfg.layers is None else list(cfg.layers),
                 baselines=cfg.baselines, out_dir=folder, max_new_tokens=ctx.study.generation.max_new_tokens,
                 **ctx.common())
    ctx.save_trace(folder, cfg.save_trace)
    return {"summary": res.summary, "rows": res.rows, "dropped": res.dropped, "across": res.across,
            "status": res.status}, res


def _z_to_y(ctx: Context, folder: Path) -> tuple[dict[str, pd.DataFrame], Any]:
    from latentprobe.causal import default_interventions, z_to_y

    cfg = ctx.study.analyses.z_to_y
    suite = default_interventions(ctx.trace, seed=ctx.seed)
    missing = [n for n in cfg.interventions if n not in suite]
    if missing:
        raise StudyError(f"{ctx.study.path}: [analyses.z_to_y] key 'interventions': {missing} cannot be built for "
                         "this run (swaps need at least 2 examples that entered latent mode); remove them or "
                         "sample more examples.")
    chosen = {n: suite[n] for n in cfg.interventions}
    res = z_to_y(ctx.model.runner, ctx.trace, chosen, modes=cfg.modes, gold=ctx.inputs, layers=list(cfg.layers),
                 out_dir=folder, **ctx.common(), **scoring(ctx))
    ctx.save_trace(folder, cfg.save_trace)
    return {"summary": res.summary, "rows": res.rows, "dropped": res.dropped}, res


def _decompose(ctx: Context, folder: Path) -> tuple[dict[str, pd.DataFrame], Any]:
    from latentprobe.causal import decompose

    cfg = ctx.study.analyses.decompose
    res = decompose(ctx.model.runner, ctx.inputs, perturbation(cfg.treatment, ctx.seed), against=cfg.against,
                    outcome=cfg.outcome, out_dir=folder, max_new_tokens=ctx.study.generation.max_new_tokens,
                    **ctx.common(), **scoring(ctx))
    ctx.save_trace(folder, cfg.save_trace)
    return {"summary": res.summary, "rows": res.rows, "dropped": res.dropped}, res


def _probes(ctx: Context, folder: Path) -> tuple[dict[str, pd.DataFrame], Any]:
    from latentprobe.probing import probe_sweep

    cfg, trace = ctx.study.analyses.probes, ctx.trace
    n_res = int(ctx.model.runner.n_layers) + 1
    layers = list(range(n_res)) if cfg.layers is None else [l for l in cfg.layers if l < n_res]
    features: dict[tuple[int, int], np.ndarray] = {}
    kept: list[int] = []
    for layer in layers:
        stacked, kept = trace.stack("hidden", layer=layer)
        arr = stacked.float().numpy()
        steps = range(arr.shape[1]) if cfg.steps is None else [s for s in cfg.steps if s < arr.shape[1]]
        for s in steps:
            features[(layer, s)] = arr[:, s]
    groups_all = np.array([str(m.get("image_id", eid)) for m, eid in zip(ctx.inputs.meta, ctx.inputs.example_ids)])
    frames, skipped = [], []
    for target in cfg.targets:
        y = field_values(ctx.inputs, target, where=f"{ctx.study.path}: [analyses.probes] key 'targets': ")[kept]
        use = y != "none"
        try:
            res = probe_sweep({k: v[use] for k, v in features.items()}, y[use], groups_all[kept][use],
                              target_name=target, n_splits=cfg.n_splits, seed=ctx.seed, controls=cfg.controls,
                              progress=ctx.progress)
            frames.append(res.scores)
        except LatentProbeError as err:  # too few examples or classes for this target: recorded, not fatal
            skipped.append({"target": target, "reason": " ".join(str(err).split())})
    ctx.save_trace(folder, cfg.save_trace)
    return {"scores": pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(),
            "skipped": pd.DataFrame(skipped, columns=["target", "reason"])}, None


def _collapse(ctx: Context, folder: Path) -> tuple[dict[str, pd.DataFrame], Any]:
    import torch

    from latentprobe import geometry

    trace = ctx.trace
    z, kept = trace.stack("z")
    z = z.float().numpy()
    baselines = {}
    if ctx.model.toy is not None:  # the toy models' image-token states at the fed-latent layer, as the demo uses
        img = torch.stack([trace[i].captured_hidden[:, 0] for i in kept]).float().numpy()
        idx = np.linspace(0, img.shape[1] - 1, z.shape[1]).round().astype(int)
        baselines["image_tokens"] = img[:, idx]
    table = geometry.collapse_table(z, baselines=baselines, seed=ctx.seed)
    mat = geometry.within_instance(z, n_boot=0).step_matrix
    steps = np.arange(mat.shape[0])
    long = pd.DataFrame({"step_a": np.repeat(steps, len(steps)), "step_b": np.tile(steps, len(steps)),
                         "cosine": np.asarray(mat, dtype=float).ravel()})
    ctx.save_trace(folder, ctx.study.analyses.collapse.save_trace)
    return {"collapse": table, "step_matrix": long}, None


ANALYSIS_RUNNERS: dict[str, Callable[[Context, Path], tuple[dict[str, pd.DataFrame], Any]]] = {
    "x_to_z": _x_to_z, "z_to_y": _z_to_y, "decompose": _decompose, "probes": _probes, "collapse": _collapse}


def run_analysis(ctx: Context, name: str, folder: Path) -> bool:
    """Run one analysis into ``folder`` unless its ``done.json`` is there; True when it ran."""
    done = folder / "done.json"
    if done.exists():
        return False
    folder.mkdir(parents=True, exist_ok=True)
    tables, result = ANALYSIS_RUNNERS[name](ctx, folder)
    for tname, frame in tables.items():
        write_table(folder, tname, frame)
    write_extras(folder, name, result)
    atomic_write_text(done, json.dumps({"analysis": name, "tables": sorted(tables)}, indent=1) + "\n")
    return True
