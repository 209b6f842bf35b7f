"""``latentprobe run STUDY.toml --out DIR``: validate, load, sample, run every analysis, write the report.

Output folder::

    DIR/study.toml          a copy of the study file
    DIR/study.json          the resolved config and its fingerprint, the model's fingerprint, software versions
    DIR/sample.csv          the sampled examples (example_id, benchmark, source, category, gold)
    DIR/answers.csv         per example: the clean run's answer (question, gold, answer, parsed, parse_method,
                            correct, n_latents, entered), then each condition's answer and parse
    DIR/<analysis>/         one folder per analysis: its sweep stores, tidy tables (*.csv), done.json
    DIR/report.html         the report (``latentprobe report DIR`` rebuilds it from the folder alone)
    DIR/failed.json         only when an analysis stopped with an error: which, and the error (the report,
                            written then too, shows it with everything found before)
    DIR/.study.lock         while a run is writing the folder: its pid, host and start time
    DIR/.image-hashes.json  the image files' SHA-256, by path, size and modification time (a cache)

One run owns the folder: the study lock (:func:`~latentprobe.study.owner.study_lock`) is taken before the
folder is read or anything is written there, and held through every analysis, ``answers.csv`` and the
report; a second run, of this study or another, is refused with
:class:`~latentprobe.errors.StudyLockedError` naming the owner's pid, host and start time. A lock left by
a killed run is taken over with a warning.

The order: the study file is checked (:func:`~latentprobe.study.load_study`: keys, data roots, model
folder), then the data are loaded and sampled and every analysis checks what it needs of them
(:func:`~latentprobe.study.analyses.preflight`), all before the model loads (the toy data come from
the toy model, which loads first: it takes a fraction of a second). Then the model loads, the
prompts are built for its family, and the clean run is read for latent mode
(:func:`~latentprobe.study.diagnosis.diagnose_latent_mode`): a model that never entered latent mode
stops the study with :class:`~latentprobe.errors.LatentModeError` and ``DIR/diagnosis.json``. Only
then is anything else written, so a run that fails before its results leaves ``DIR`` reusable
without ``--overwrite``.

Re-running the same command on a killed run resumes it: finished analyses (``done.json``) are
skipped and the running one resumes from its folder. A folder written for another study file
(another config fingerprint) or another model is refused with :class:`~latentprobe.errors.StudyError`;
one whose examples changed since (:mod:`latentprobe.study.datafp`: questions, options, golds, image
bytes) with :class:`~latentprobe.errors.DataChangedError` listing the example ids. ``overwrite=True``
clears what a study writes there and starts again.

Under ``torchrun`` or ``srun`` (or ``latentprobe run ... --workers N``) every worker runs this same function with
its worker group (:mod:`latentprobe.workers`): each checks the folder, the data and its own model copy (a changed
study or model is refused by every worker, with the diff), computes its share of the clean run and of every
analysis's units into its own files, and rank 0 merges and writes everything shared. ``study.json`` then records
``"clean_run": "sharded"``, and a later single-process run of the folder goes the same way as a group of one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from latentprobe.atomic import atomic_write_text
from latentprobe.errors import LatentProbeError, StudyError
from latentprobe.sweep.keys import config_diff
from latentprobe.analyses import get_analysis, registered_analyses
from latentprobe.study.config import Study, load_study

__all__ = ["StudyRun", "run_study", "config_fingerprint"]

_FAILED = "failed.json"
_OWNED_FILES = ("study.toml", "study.json", "sample.csv", "answers.csv", _FAILED, "report.html", "diagnosis.json")
#: What a run that stopped before its results leaves: such a folder is still a fresh one.
_LEFTOVERS = ("diagnosis.json",)
#: Files that do not make a folder a study's: the lock (and its takeover guard), the image-hash cache, the workers'
#: logs and the clean run's units (a run by workers that stopped before its results resumes from them).
_IGNORED = (".study.lock", ".study.lock.takeover", ".image-hashes.json", "logs", "clean")


@dataclass(frozen=True)
class StudyRun:
    """What :func:`run_study` did.

    Attributes
    ----------
    out_dir : Path
        The output folder.
    report_path : Path or None
        ``out_dir/report.html``, or ``None`` with ``report=False``.
    ran, skipped : tuple of str
        The analyses run now, and those skipped as already finished, in running order.
    seconds : float
        The wall time.
    headlines : dict
        Per analysis its headline figures, ``{label: value}`` (printed at the end of ``latentprobe run``).
    n_examples, n_entered : int
        The examples of the clean run, and those that entered latent mode (``entered_share``: their share).
    """

    out_dir: Path
    report_path: Path | None
    ran: tuple[str, ...]
    skipped: tuple[str, ...]
    seconds: float
    headlines: dict[str, dict[str, str]]
    n_examples: int = 0
    n_entered: int = 0

    @property
    def entered_share(self) -> float:
        """The share of the clean run's examples that entered latent mode."""
        return self.n_entered / self.n_examples if self.n_examples else float("nan")


def _digest(obj: Any) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:32]


def config_fingerprint(study: Study) -> str:
    """A hash of the resolved configuration (every key, defaults filled in, data roots resolved) and of the
    source code of every custom perturbation, intervention or scorer it names by import string.

    Parameters
    ----------
    study : Study
        The parsed study file.

    Returns
    -------
    str
        ``"sha256:"`` and 32 hex digits.
    """
    return _digest(config_record(study))


def config_record(study: Study) -> dict[str, Any]:
    """What the fingerprint hashes and ``study.json`` stores: :meth:`Study.to_dict`, plus ``sources`` (the
    source digest of each import-string name) when the study names any."""
    import dataclasses

    from latentprobe.analyses.names import is_import_string, source_of

    config = study.to_dict()
    named = [study.generation.scorer]
    for options in study.analyses.values():
        for f in dataclasses.fields(options):
            if isinstance(f.metadata.get("choices"), str):
                value = getattr(options, f.name)
                named += list(value) if isinstance(value, tuple) else [value]
    names = sorted({v for v in named if isinstance(v, str) and is_import_string(v)})
    return {**config, "sources": source_of(names)} if names else config


def _diff(stored: Any, new: Any) -> str:
    """What differs between two configs, key by key (``'data[0].n': stored 8, now 10``), at most five keys."""
    lines = config_diff(stored or {}, new or {})
    return "; ".join(lines[:5]) + (f"; and {len(lines) - 5} more" if len(lines) > 5 else "")


def _check_folder(out: Path, study: Study, fingerprint: str, overwrite: bool) -> dict[str, Any] | None:
    """The stored study.json of a folder this study may resume, ``None`` for a fresh folder (or one to clear:
    ``overwrite``; it is cleared only once the study is about to write its results). Reads only."""
    meta_path = out / "study.json"
    if overwrite:
        return None
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as err:
            raise StudyError(f"{meta_path}: cannot be read ({err}); pass --overwrite to start again.") from None
        if meta.get("fingerprint") != fingerprint:
            raise StudyError(f"{out} holds a run of another study configuration ({_diff(meta.get('config'), config_record(study))}); "
                             f"pass --overwrite to discard it or choose a new --out folder.")
        return meta
    if out.exists() and any(p.name not in _LEFTOVERS + _IGNORED for p in out.iterdir()):
        raise StudyError(f"{out} is not empty and holds no study.json (not a study folder); choose a new --out "
                         "folder or pass --overwrite to clear the files a study writes there.")
    return None


def _clear(out: Path, keep_clean: bool = False) -> None:
    if not keep_clean:
        shutil.rmtree(out / "clean", ignore_errors=True)
    for name in _OWNED_FILES:
        (out / name).unlink(missing_ok=True)
    for name in registered_analyses():
        if (out / name).is_dir():
            shutil.rmtree(out / name)


def run_study(study_file: str | Path, out_dir: str | Path, *, overwrite: bool = False, report: bool = True,
              progress: bool = True, echo: Callable[[str], None] = print, workers: Any = None) -> StudyRun:
    """Run a study file into ``out_dir`` (see the module docstring for the layout and resuming).

    Parameters
    ----------
    study_file : path
        The TOML study file (:func:`latentprobe.study.load_study` documents the schema).
    out_dir : path
        The output folder (created).
    overwrite : bool
        Clear what an earlier study wrote in ``out_dir`` and start again.
    report : bool
        Write ``out_dir/report.html`` at the end.
    progress : bool
        Progress bars on the long loops and one line per analysis.
    echo : callable
        Where the lines go with ``progress=True`` (default :func:`print`).
    workers : latentprobe.workers.Workers, optional
        This process's worker group under ``torchrun`` or ``srun`` (:mod:`latentprobe.workers`; the CLI forms it
        from the environment); every rank calls ``run_study`` with the same arguments.

    Returns
    -------
    StudyRun
        What ran, what was skipped, where the report is.

    Raises
    ------
    StudyError
        The study file is invalid, the data or the analyses' needs of them fail their checks (all before the model
        loads), the model cannot be loaded from its source, or ``out_dir`` holds another study's or another
        model's results.
    StudyLockedError
        Another run (of this or another study) is writing ``out_dir``; the message names its pid, host and start
        time. Nothing was written.
    DataChangedError
        ``out_dir`` holds a run on other data (an example's question, options, gold or image bytes changed, or
        examples were added or removed): the message lists the example ids.
    LatentModeError
        No example of the clean run entered latent mode (the message and ``out_dir/diagnosis.json`` hold the
        diagnosis and the fix, e.g. ``[generation] open = "force"``).

    Examples
    --------
    >>> from latentprobe.study import run_study
    >>> res = run_study("examples/studies/toy.toml", "toy-study")      # doctest: +SKIP
    >>> res.ran                                                          # doctest: +SKIP
    ('x_to_z', 'z_to_y', 'decompose', 'probes', 'collapse')
    >>> run_study("examples/studies/toy.toml", "toy-study").skipped    # doctest: +SKIP
    ('x_to_z', 'z_to_y', 'decompose', 'probes', 'collapse')
    """
    t0 = time.perf_counter()
    study = load_study(study_file)
    out = Path(out_dir).expanduser()
    from latentprobe.study.owner import study_lock

    say = echo if progress else (lambda *_a, **_k: None)
    if workers is not None:
        from latentprobe.study.owner import group_lock

        with group_lock(out, workers):
            return _run(study, out, overwrite=overwrite, report=report, say=say if workers.is_main else workers.log,
                        progress=progress, t0=t0, workers=workers)
    with study_lock(out):  # before anything is read from or written to the folder; held to the end
        return _run(study, out, overwrite=overwrite, report=report, say=say, progress=progress, t0=t0, workers=None)


def _run(study: Study, out: Path, *, overwrite: bool, report: bool, say: Callable[[str], None], progress: bool,
         t0: float, workers: Any) -> StudyRun:
    """:func:`run_study` once the folder's lock is held (by this process, or by rank 0 of its worker group)."""
    fingerprint = config_fingerprint(study)
    # every rank checks, and all have checked before any stops: a changed study is refused by each, with the diff
    stored = _on_every_rank(workers, "folder checked", lambda: _check_folder(out, study, fingerprint, overwrite))
    name = study.study.name
    sharded = workers is not None if stored is None else stored.get("clean_run") == "sharded"
    if sharded and workers is None:  # a folder written by workers, resumed by one process: a group of one
        from latentprobe.workers import Launch, Workers

        workers = Workers(Launch(0, 1), out, connect=False, progress=progress)
    main = workers is None or workers.is_main
    from latentprobe.study.datafp import (CACHE_NAME, ImageHashCache, check_data, data_fingerprint, example_digests,
                                          recorded_digests)

    from latentprobe.study.analyses import make_context, preflight, write_table
    from latentprobe.study.answers import write_answers
    from latentprobe.study.datasets import load_data, with_prompts
    from latentprobe.study.models import build_model

    # everything that can be checked without the model, before it loads (the toy data need the toy model)
    model = None
    model_cfg = study.model
    device = None if workers is None else workers.device()
    if device is not None and model_cfg.device_map in (None, "auto") and workers.gpus == 1:  # its copy on its GPU
        import dataclasses

        model_cfg = dataclasses.replace(model_cfg, device_map=device)
    if study.is_toy_data:
        say(f"[{name}] loading model {study.model.source}")
        model = build_model(model_cfg, str(study.path))
    data = load_data(study, model)
    hashes = ImageHashCache(out / CACHE_NAME)
    digests = example_digests(data, cache=hashes)
    if stored is not None:
        _on_every_rank(workers, "data checked",
                       lambda: check_data(recorded_digests(stored, out / "study.json"), digests, str(out)))
    preflight(study, make_context(study, model, data, progress=False))
    if model is None:
        say(f"[{name}] loading model {study.model.source}")
        model = build_model(model_cfg, str(study.path))
        data = with_prompts(study, data, model)
    model_hash = _digest(model.fingerprint)
    if stored is not None:
        _on_every_rank(workers, "model checked", lambda: _check_model(out, stored, model, model_hash))
    say(f"[{name}] {len(data.sample)} examples; analyses: {', '.join(study.analyses.enabled())}")
    ctx = make_context(study, model, data, progress=progress and workers is None)
    ctx.writes = main
    if workers is not None and main and overwrite:
        shutil.rmtree(out / "clean", ignore_errors=True)
    with _quiet_threads(study.study.threads) as threads:
        if sharded:
            from latentprobe.workers.clean import sharded_trace

            ctx._trace = sharded_trace(ctx, workers, out)
        diagnosis = _latent_mode(study, ctx, out, write=main)
    say(f"[{name}] clean run: {diagnosis.summary()} entered latent mode")

    from latentprobe.report.page import utc_stamp
    from latentprobe.report.provenance import software_versions

    out.mkdir(parents=True, exist_ok=True)
    if workers is not None and not main:
        return _follow(study, ctx, out, workers, t0, diagnosis)
    if overwrite:
        _clear(out, keep_clean=sharded)
    for leftover in _LEFTOVERS:
        (out / leftover).unlink(missing_ok=True)
    if stored is None:
        meta = {"name": name, "fingerprint": fingerprint, "config": config_record(study),
                "model_fingerprint": model_hash, "model": model.fingerprint, "versions": software_versions(),
                "created": utc_stamp(), "n_examples": len(data.sample), "threads": threads,
                "data": {"fingerprint": data_fingerprint(digests), "examples": [[i, d] for i, d in digests.items()]},
                "latent_mode": {k: diagnosis.to_dict()[k] for k in ("n", "n_entered", "share", "open")},
                "clean_run": "sharded" if sharded else "whole"}
        atomic_write_text(out / "study.json", json.dumps(meta, indent=1, sort_keys=True, default=str) + "\n")
    if stored is None or not (out / "study.toml").exists():  # after study.json: a run stopped between them resumes
        atomic_write_text(out / "study.toml", study.path.read_text())
    hashes.save()
    atomic_write_text(out / "sample.csv", data.sample.to_csv(index=False))
    write_table(out, "answers", ctx.answers())
    ran, skipped = [], []
    (out / _FAILED).unlink(missing_ok=True)
    if workers is not None:
        workers.barrier("study files")
    with _quiet_threads(study.study.threads), _sharing(workers):
        for key in study.analyses.enabled():
            ta = time.perf_counter()
            try:
                done_now = _one_analysis(key, study, ctx, out, workers)
            except LatentProbeError as err:  # the report still shows what the study found before it stopped
                write_answers(out)
                atomic_write_text(out / _FAILED, json.dumps({"analysis": key, "error": f"{type(err).__name__}: "
                                                             f"{' '.join(str(err).split())}"}, indent=1) + "\n")
                if report:
                    from latentprobe.study.report import build_report

                    build_report(out)
                raise
            if done_now:
                ran.append(key)
                say(f"[{name}] {key} done [{time.perf_counter() - ta:.0f} s]")
            else:
                skipped.append(key)
                say(f"[{name}] {key} already finished (skipped)")
    write_answers(out)  # once, every finished analysis's conditions (a killed run gets them when it resumes)
    headlines = _headlines(out, study)
    path = None
    if report:
        from latentprobe.study.report import build_report

        path = build_report(out)
    if workers is not None:
        workers.barrier("study end")
        if not workers.launch.group_id:  # the group of one made above: its progress bar ends here
            workers.close()
    return StudyRun(out_dir=out, report_path=path, ran=tuple(ran), skipped=tuple(skipped),
                    seconds=time.perf_counter() - t0, headlines=headlines, n_examples=diagnosis.n,
                    n_entered=diagnosis.n_entered)


def _on_every_rank(workers: Any, label: str, check: Callable[[], Any]) -> Any:
    """``check()`` on this rank; with workers, every rank reaches the barrier before any raises what it found."""
    failure = value = None
    try:
        value = check()
    except LatentProbeError as err:
        if workers is None:
            raise
        failure = err
    if workers is not None:
        workers.barrier(label)
    if failure is not None:
        raise failure
    return value


def _check_model(out: Path, stored: dict[str, Any], model: Any, model_hash: str) -> None:
    if stored.get("model_fingerprint") != model_hash:
        raise StudyError(f"{out} holds results of another model ({_diff(stored.get('model'), model.fingerprint)}); "
                         "pass --overwrite to discard them or choose a new --out folder.")


def _one_analysis(key: str, study: Study, ctx: Any, out: Path, workers: Any) -> bool:
    """Run one analysis (every rank takes its share of its units; only rank 0 writes its tables)."""
    from latentprobe.study.analyses import run_analysis

    done_now = run_analysis(get_analysis(key), study.analyses[key], ctx, out / key,
                            write=workers is None or workers.is_main)
    if workers is not None:
        workers.barrier(f"{key} written")
    return done_now


def _sharing(workers: Any) -> Any:
    """The stores the analyses open are shared by the workers (:mod:`latentprobe.sweep.sharded`)."""
    import contextlib

    from latentprobe.sweep.sharded import activate

    return contextlib.nullcontext() if workers is None else activate(workers)


def _follow(study: Study, ctx: Any, out: Path, workers: Any, t0: float, diagnosis: Any) -> StudyRun:
    """A rank other than 0: its share of every analysis, then the end barrier (rank 0 writes the shared files)."""
    workers.barrier("study files")
    ran, skipped = [], []
    with _quiet_threads(study.study.threads), _sharing(workers):
        for key in study.analyses.enabled():
            (ran if _one_analysis(key, study, ctx, out, workers) else skipped).append(key)
    workers.barrier("study end")
    return StudyRun(out_dir=out, report_path=None, ran=tuple(ran), skipped=tuple(skipped),
                    seconds=time.perf_counter() - t0, headlines={}, n_examples=diagnosis.n,
                    n_entered=diagnosis.n_entered)


def _latent_mode(study: Study, ctx: Any, out: Path, write: bool = True) -> Any:
    """Run the clean run and read it for latent mode; stop (``DIR/diagnosis.json``) when no example entered."""
    from latentprobe.errors import LatentModeError
    from latentprobe.study.diagnosis import diagnose_latent_mode

    diagnosis = diagnose_latent_mode(ctx.trace, ctx.runner, open_setting=study.generation.open)
    if diagnosis.never_opened:
        message = diagnosis.message(str(study.path)) + f" The diagnosis is in {out / 'diagnosis.json'}."
        out.mkdir(parents=True, exist_ok=True)
        if write:
            atomic_write_text(out / "diagnosis.json", json.dumps({"message": message, **diagnosis.to_dict()}, indent=1,
                                                             default=str) + "\n")
        raise LatentModeError(message, diagnosis.to_dict())
    return diagnosis


def _headlines(out: Path, study: Study) -> dict[str, dict[str, str]]:
    """Per finished analysis, the few figures a reader looks for first (its record's ``headline``)."""
    from latentprobe.study.results import load_result

    found = {}
    for key in study.analyses.enabled():
        record = get_analysis(key)
        result = load_result(out / key)
        found[key] = {} if record.is_empty(result) else record.headline(result)
    return found


class _quiet_threads:
    """The study's thread count (torch and the BLAS pools, :func:`~latentprobe.threads.pinned_threads`) and no
    convergence warnings; entering gives the thread settings in force (recorded in ``study.json``)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def __enter__(self) -> dict[str, Any]:
        from sklearn.exceptions import ConvergenceWarning

        from latentprobe.threads import pinned_threads

        self._warn = warnings.catch_warnings()
        self._warn.__enter__()
        warnings.simplefilter("ignore", ConvergenceWarning)
        self._pin = pinned_threads(self.threads)
        return self._pin.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._pin.__exit__(*exc)
        self._warn.__exit__(*exc)
