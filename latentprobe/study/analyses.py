"""The analyses of a study, each run into its own folder and stored as tidy CSV tables.

Everything here is read from the analysis records (:mod:`latentprobe.analyses`): which analyses
exist, their options, their tables and schemas, how they run and resume. Every analysis writes
``DIR/<key>/``: its stores (a killed study resumes where it stopped), then its tables (one CSV per
declared table, each checked against its schema), ``config.json`` and last ``done.json``, the marker
that it is complete.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from latentprobe.analyses import Analysis, AnalysisOptions, Context, get_analysis
from latentprobe.atomic import atomic_write_text
from latentprobe.errors import LatentProbeError, SchemaError, StudyError
from latentprobe.geometry import MatchedPositions
from latentprobe.study.config import Study
from latentprobe.study.results import read_frame

if TYPE_CHECKING:
    from latentprobe.engine import ForceOpen, LatentRunner
    from latentprobe.study.datasets import StudyData
    from latentprobe.study.models import StudyModel

__all__ = ["make_context", "force_open", "preflight", "run_analysis", "write_table", "read_table"]


def write_table(folder: Path, name: str, frame: pd.DataFrame) -> Path:
    """Write ``folder/name.csv`` atomically (no index).

    Parameters
    ----------
    folder : Path
        The analysis folder.
    name : str
        The table's name, without ``.csv``.
    frame : pandas.DataFrame
        The table.

    Returns
    -------
    Path
        The file written.
    """
    return atomic_write_text(folder / f"{name}.csv", frame.to_csv(index=False))


def read_table(folder: Path, name: str) -> pd.DataFrame:
    """Read ``folder/name.csv`` back (an empty frame when the file is empty or absent).

    Parameters
    ----------
    folder : Path
        The analysis folder.
    name : str
        The table's name, without ``.csv``.

    Returns
    -------
    pandas.DataFrame
    """
    return read_frame(folder / f"{name}.csv")


def make_context(study: Study, model: StudyModel | None, data: StudyData, *, progress: bool = True) -> Context:
    """The context the study's analyses share (the toy models get their hooks and image-token capture; other
    models capture text, image and prompt-last positions for the similarity baselines,
    :class:`~latentprobe.geometry.MatchedPositions`).

    With ``model=None`` the context serves :func:`preflight` only (checks before the model loads); it has no
    runner, so nothing can run through it. With ``[generation] open = "force"`` every generation gets the
    runner's :class:`~latentprobe.engine.ForceOpen` (``Context.logits_processor``): the open marker at the first
    generated position, the end of sequence left to the model.

    Parameters
    ----------
    study : Study
        The parsed study file: seed, ``[generation]`` settings, toy or real data.
    model : StudyModel or None
        The loaded model, or ``None`` for a context that serves :func:`preflight` only.
    data : StudyData
        The study's examples and their inputs.
    progress : bool
        Show progress bars.

    Returns
    -------
    Context
    """
    g = study.generation
    toy = study.is_toy_data
    hooks: dict[str, Any] = {}
    if model is not None and model.toy is not None:
        from latentprobe.study.toys import toy_hooks

        hooks = toy_hooks(model.toy)
    elif toy:
        hooks = {"random_runner": _needs_model, "derived_inputs": _needs_model}
    from functools import partial

    from latentprobe.study.derived import derived_from_file, load_second_model

    hooks["load_model"] = partial(load_second_model, study)  # a second [model] table (behavioural)
    if not toy:
        hooks["derived_from_file"] = partial(derived_from_file, study, data)
    if model is not None:
        hooks = {**hooks, "baseline_runner": _baseline_loader(study)}
    processor = None
    if model is not None and g.open == "force":
        processor = force_open(model.runner)
    return Context(runner=None if model is None else model.runner, inputs=data.inputs, seed=study.study.seed,
                   n_boot=g.n_boot, batch_size=g.batch_size, max_new_tokens=g.max_new_tokens, chunk_size=g.chunk_size,
                   scorer=g.scorer, progress=progress, is_toy=toy, capture_positions=_capture(study),
                   generation="published" if g.published else None, hooks=hooks, where=str(study.path),
                   logits_processor=processor)


#: The analyses that read the clean run's prompt captures (the similarity baselines).
_READ_CAPTURES = frozenset({"collapse", "latent_similarity"})


def _capture(study: Study) -> Any:
    """The toys capture every image position; other models a few text and image positions and the prompt's last,
    and only for the analyses that read them (every layer of each: about 7 MB per example on a 7B model)."""
    if study.is_toy_data:
        return "image"
    return MatchedPositions() if _READ_CAPTURES & set(study.analyses.enabled()) else None


def _baseline_loader(study: Study) -> Any:
    """``f(source, preset, num_latents) -> LatentRunner``: a second model, read and loaded as a second ``[model]``
    table is (:func:`latentprobe.study.derived.load_second_model`; a toy source keeps its own protocol)."""
    from latentprobe.study.derived import load_second_model

    def load(source: str, preset: str | None, num_latents: int | None) -> Any:
        raw: dict[str, Any] = {"source": source}
        if not source.startswith("toy:"):
            raw.update({k: v for k, v in (("preset", preset), ("num_latents", num_latents)) if v is not None})
        return load_second_model(study, raw, "analyses.latent_similarity.baseline")
    return load


def force_open(runner: LatentRunner) -> ForceOpen:
    """The processor of ``open = "force"``: :meth:`ForceOpen.for_runner <latentprobe.engine.ForceOpen.for_runner>`
    with the end of sequence left to the model, and no open forced once the close marker is in the sequence.

    The close marker matters where a replay drops the latent slots (``no_latents``) and the open marker sat on
    one (Monet's first latent is fed at the open marker's own slot): the open is gone, the close stays, and
    forcing a new open there would put the marker into the answer.

    Parameters
    ----------
    runner : LatentRunner
        The study's runner (its preset's markers and its tokenizer).

    Returns
    -------
    ForceOpen
        The logits processor every generation of the study gets.
    """
    from latentprobe.engine import ForceOpen

    close = runner.spec.close_token
    skip = (close,) if isinstance(close, str) and close in runner.tokenizer.get_vocab() else ()
    return ForceOpen.for_runner(runner, keep_eos=True, skip_tokens=skip)


def _needs_model(*_a: Any) -> Any:
    raise StudyError("this hook needs the model; build the context with it (make_context(study, model, data)).")


def preflight(study: Study, ctx: Context) -> None:
    """Check what the analyses need of the data before anything is generated.

    Parameters
    ----------
    study : Study
        The parsed study file.
    ctx : Context
        The study's context (:func:`make_context`; the model may be absent).

    Raises
    ------
    StudyError
        What an analysis's :meth:`~latentprobe.analyses.Analysis.check` refuses (e.g. ``decompose`` on data
        without gold answers, a probe target no example has), a ``choice`` scorer on examples without
        options, or chat messages with image parts where perturbations must reach the images.
    """
    from collections.abc import Mapping

    inputs = ctx.inputs
    golds = [] if inputs.gold is None else [g for g in inputs.gold if g is not None]
    if study.generation.scorer == "choice" and golds:
        missing = [eid for eid, m, g in zip(inputs.example_ids, inputs.meta, inputs.gold or ())
                   if g is not None and not m.get("options")]
        if missing:
            from latentprobe.scoring import advise_scorer

            advice = advise_scorer(inputs.meta, inputs.gold)
            raise StudyError(f"{study.path}: [generation] key 'scorer': 'choice' needs each example's options, and "
                             f"{len(missing)} example(s) have none (first: {missing[0]!r}); {advice.reason}")
    p = study.prompt
    image_parts = p is not None and p.messages is not None and any(
        isinstance(part, Mapping) and part.get("type") == "image"
        for m in p.messages for part in (m.get("content") if isinstance(m.get("content"), (list, tuple)) else ()))
    perturbs = [k for k in study.analyses.enabled() if _perturbs_inputs(study.analyses[k])]
    if image_parts and perturbs:
        raise StudyError(f"{study.path}: [prompt] key 'messages': an image part puts the images inside the chat, "
                         f"where the perturbations cannot replace them ({', '.join(perturbs)} perturb the inputs); "
                         "use template = \"...\" (the images are placed as the preset's authors place them) or "
                         "messages without image parts.")
    for key in study.analyses.enabled():
        try:
            get_analysis(key).check(study.analyses[key], ctx)
        except StudyError:
            raise
        except LatentProbeError as err:
            raise StudyError(f"{study.path}: [analyses.{key}]: {err}") from None


def _perturbs_inputs(options: AnalysisOptions) -> bool:
    """Whether an analysis's options name input perturbations (they must reach the images)."""
    return bool(getattr(options, "perturbations", None) or getattr(options, "treatment", None))


def run_analysis(record: Analysis, options: AnalysisOptions, ctx: Context, folder: Path, *, write: bool = True) -> bool:
    """Run one analysis into ``folder`` unless its ``done.json`` is there; True when it ran.

    The tables are checked against their declared schemas before they are written.

    Parameters
    ----------
    record : Analysis
        The registered analysis.
    options : AnalysisOptions
        Its options (the study's ``[analyses.<key>]`` table).
    ctx : Context
        The study's context.
    folder : Path
        The analysis's folder, ``DIR/<key>/``.
    write : bool
        Write the tables, ``config.json``, extras and ``done.json`` (``False``: a worker other than rank 0, which
        computes its share of the units and leaves the shared files to rank 0).

    Returns
    -------
    bool
        ``True`` when it ran, ``False`` when ``done.json`` was already there.

    Raises
    ------
    SchemaError
        The analysis returned a table whose columns or dtypes differ from its declaration.
    """
    done = folder / "done.json"
    if done.exists():
        return False
    folder.mkdir(parents=True, exist_ok=True)
    result = record.run(ctx, options.resolved(ctx.defaults()), folder)
    if not write:
        return True
    tables = record.to_tables(result)
    for name, schema in record.tables.items():
        frame = tables[name]
        try:
            schema.check(frame)
        except SchemaError as err:
            raise SchemaError(f"analysis {record.key!r}, table {name}.csv: {err}") from None
        write_table(folder, name, frame)
    config = record.config_of(result)
    if config is not None:
        atomic_write_text(folder / "config.json", json.dumps(config, indent=1, sort_keys=True, default=str) + "\n")
    record.save_extras(result, folder)
    atomic_write_text(done, json.dumps({"analysis": record.key, "tables": list(record.tables)}, indent=1) + "\n")
    return True
