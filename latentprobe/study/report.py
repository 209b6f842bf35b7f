"""``latentprobe report DIR``: the study's HTML report, built from the output folder alone.

Everything shown is read back from ``DIR`` (``study.json``, ``sample.csv`` and each analysis's
CSV tables), so ``latentprobe run`` and ``latentprobe report`` write the same report; the creation
time shown is the one ``study.json`` stored when the study started. Each finished analysis is
read back with :func:`~latentprobe.study.load_result` and drawn by its record's section
(:meth:`latentprobe.analyses.Analysis.section`: captions, notes on out-of-distribution conditions);
the page ends with :meth:`~latentprobe.report.Report.add_provenance`. An analysis whose folder has
no ``done.json`` is listed as unfinished.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from latentprobe.analyses import registered_analyses
from latentprobe.errors import StudyError
from latentprobe.study.analyses import read_table
from latentprobe.study.results import load_result, read_frame

__all__ = ["build_report", "load_tables"]


def load_tables(out_dir: str | Path) -> dict[str, dict[str, pd.DataFrame]]:
    """``{analysis: {table: DataFrame}}`` for every finished analysis of a study folder (declared dtypes).

    Parameters
    ----------
    out_dir : str or Path
        The study's output folder.

    Returns
    -------
    dict
        ``{analysis key: {table name: DataFrame}}``, in running order.
    """
    out = Path(out_dir)
    return {key: {t: read_frame(out / key / f"{t}.csv", schema) for t, schema in record.tables.items()}
            for key, record in registered_analyses().items() if (out / key / "done.json").exists()}


def _meta(out: Path) -> dict[str, Any]:
    path = out / "study.json"
    if not path.exists():
        raise StudyError(f"{out} holds no study.json (not a study output folder); give the --out folder of "
                         "`latentprobe run`.")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise StudyError(f"{path}: cannot be read ({err}); re-run the study with --overwrite.") from None


def _entered(lm: Any) -> str:
    """``"4 of 6 examples (67%; open = force)"`` from study.json's ``latent_mode`` (``-`` for older folders)."""
    if not isinstance(lm, dict) or not lm.get("n"):
        return "-"
    return f"{lm['n_entered']} of {lm['n']} examples ({100 * lm['n_entered'] / lm['n']:.0f}%; open = {lm.get('open')})"


def build_report(out_dir: str | Path) -> Path:
    """Write ``out_dir/report.html`` from the folder's tables and return its path.

    Parameters
    ----------
    out_dir : str or Path
        The study's output folder (``latentprobe run --out``).

    Returns
    -------
    Path
        ``out_dir/report.html``.

    Raises
    ------
    StudyError
        ``out_dir`` is not a study output folder.
    StudyLockedError
        A run is writing ``out_dir`` now.

    Examples
    --------
    >>> from latentprobe.study import build_report
    >>> build_report("toy-study")                     # doctest: +SKIP
    PosixPath('toy-study/report.html')
    """
    from latentprobe.study.owner import study_lock

    out = Path(out_dir)
    with study_lock(out, create=False):  # not while another run writes the folder (re-entered within a run)
        return _build(out)


def _build(out: Path) -> Path:
    from latentprobe.report import Report

    meta = _meta(out)
    cfg = meta.get("config", {})
    sample = read_table(out, "sample")
    model = cfg.get("model", {})
    rep = Report(f"latentprobe study: {meta.get('name', '')}",
                 subtitle=f"{model.get('source', '')}; {len(sample)} examples; seed {cfg.get('study', {}).get('seed')}",
                 created=meta.get("created"))
    description = cfg.get("study", {}).get("description")
    if description:
        rep.add_text(description)
    rep.add_heading("Study")
    data = cfg.get("data", [])
    rep.add_key_values({"name": meta.get("name"), "model": model.get("source"), "preset": model.get("preset") or "-",
                        "data": ", ".join(d.get("benchmark", "") for d in data), "examples": len(sample),
                        "scorer": cfg.get("generation", {}).get("scorer"),
                        "max_new_tokens": cfg.get("generation", {}).get("max_new_tokens"),
                        "entered latent mode": _entered(meta.get("latent_mode")),
                        "config fingerprint": meta.get("fingerprint"), "model fingerprint": meta.get("model_fingerprint"),
                        "data fingerprint": (meta.get("data") or {}).get("fingerprint", "-")})
    if len(sample):
        filled = sample.astype({"category": object, "source": object}).fillna({"category": "-", "source": "-"})
        counts = filled.groupby(["benchmark", "source", "category"], dropna=False).size().reset_index(name="n")
        rep.add_table(counts, caption="Sampled examples per benchmark, source and category (ids in sample.csv).",
                      index=False)
    _answers_section(rep, out)
    records = registered_analyses()
    finished = [k for k in records if (out / k / "done.json").exists()]
    unfinished = [a for a in cfg.get("analyses", {}) if a not in finished]
    failed = json.loads((out / "failed.json").read_text()) if (out / "failed.json").exists() else None
    if failed is not None:
        rep.add_note(f"`{failed['analysis']}` stopped with an error: {failed['error']} Not run: "
                     f"{', '.join(unfinished)}. Fix the cause (re-running the same study repeats it), then run "
                     "the same `latentprobe run` command: finished analyses are kept.", kind="warning",
                     title="Stopped by an error")
    elif unfinished:
        rep.add_note(f"Not finished: {', '.join(unfinished)}. Re-run the same `latentprobe run` command to resume.",
                     kind="warning", title="Incomplete study")
    for key in finished:
        record = records[key]
        result = load_result(out / key)
        if record.is_empty(result):
            rep.add_heading(record.title)
            rep.add_note(f"No example could be compared (see {key}/dropped.csv).", kind="warning")
            continue
        record.section(rep, result, title=record.title)
        dropped = read_table(out / key, "dropped") if "dropped" in record.tables else pd.DataFrame()
        if len(dropped):
            counts = dropped.groupby(["condition", "reason"]).size().reset_index(name="n")
            rep.add_table(counts, caption=f"Examples left out, per condition and reason ({key}/dropped.csv).",
                          index=False)
    settings = {"seed": cfg.get("study", {}).get("seed"), **{f"generation.{k}": v for k, v in
                                                            cfg.get("generation", {}).items()}}
    rep.add_provenance(settings=settings, runner=meta.get("model"), spec=model.get("preset"),
                       sample=list(sample.example_id) if len(sample) else 0,
                       sample_seed=cfg.get("study", {}).get("seed"), versions=meta.get("versions"))
    return rep.write(out / "report.html")


def _answers_section(rep: Any, out: Path) -> None:
    """What the model answered, per condition (counts, unreadable and empty answers, latent mode) and per example
    (the answer browser: a sample inline, the whole table in ``answers.csv``)."""
    from latentprobe.study.answers import MOSTLY_UNREADABLE, answer_rows, answer_summary, browser_table

    if not (out / "answers.csv").exists():
        return
    rows = answer_rows(out)
    summary = answer_summary(rows)
    rep.add_heading("Answers")
    rep.add_table(summary, caption="Per condition: answers, answers with a gold that the scorer could not read "
                  "(`n_unparseable`; they count as wrong in every accuracy and effect), empty answers, the share of "
                  "runs that entered latent mode, and the accuracy.", order=False)
    for _, r in summary.iterrows():
        if r["share_unparseable"] > MOSTLY_UNREADABLE:
            rep.add_note(f"`{r['condition']}`: {r['n_unparseable']} of {r['n']} answers could not be read "
                         f"({r['n_empty']} empty). Accuracies and effects count them as wrong, so they measure "
                         "unreadable output more than right or wrong answers: check the answer budget "
                         "(`max_new_tokens`), the scorer and the prompt before reading the numbers.",
                         kind="warning", title="Mostly unreadable answers")
    entered = summary.loc[summary["condition"] == "clean", "share_latent_mode"]
    if len(entered) and entered.iloc[0] < 1.0:
        rep.add_note(f"{entered.iloc[0]:.0%} of the clean runs entered latent mode; the causal analyses compare "
                     "only those that did (see each analysis's dropped examples).", kind="warning",
                     title="Latent mode")
    wide = browser_table(out, rows)
    rep.add_table(wide, caption="The answer browser: per example, the question, the gold answer, the clean answer "
                  "and what the scorer read, then each condition's answer and reading. Type in the box to filter; "
                  f"the first {min(len(wide), 100)} of {len(wide)} examples are shown, all of them are in "
                  "`answers.csv`.", max_rows=100, order=False, filterable=True)
