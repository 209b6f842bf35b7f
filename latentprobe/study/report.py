"""``latentprobe report DIR``: the study's HTML report, built from the output folder alone.

Everything shown is read back from ``DIR`` (``study.json``, ``sample.csv`` and each analysis's
CSV tables), so ``latentprobe run`` and ``latentprobe report`` write the same report; the creation
time shown is the one ``study.json`` stored when the study started. Each finished analysis is
read back with :func:`~latentprobe.study.load_result` and drawn by
:meth:`~latentprobe.report.Report.add_result` (captions, notes on out-of-distribution conditions);
the page ends with :meth:`~latentprobe.report.Report.add_provenance`. An analysis whose folder has no ``done.json`` is listed as unfinished.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from latentprobe.errors import StudyError
from latentprobe.study.analyses import TABLES, read_table
from latentprobe.study.config import ANALYSES
from latentprobe.study.results import load_result

__all__ = ["build_report", "load_tables"]

_TITLES = {"x_to_z": "X -> Z: do the latents change with the input?",
           "z_to_y": "Z -> Y: does the answer change with the latents?",
           "decompose": "Mediation: total, direct and indirect effects",
           "probes": "Probes: what can be read from the latents?", "collapse": "Collapse: how alike are the latents?"}


def load_tables(out_dir: str | Path) -> dict[str, dict[str, pd.DataFrame]]:
    """``{analysis: {table: DataFrame}}`` for every finished analysis of a study folder."""
    out = Path(out_dir)
    return {a: {t: read_table(out / a, t) for t in TABLES[a]} for a in ANALYSES if (out / a / "done.json").exists()}


def _meta(out: Path) -> dict[str, Any]:
    path = out / "study.json"
    if not path.exists():
        raise StudyError(f"{out} holds no study.json (not a study output folder); give the --out folder of "
                         "`latentprobe run`.")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise StudyError(f"{path}: cannot be read ({err}); re-run the study with --overwrite.") from None


def build_report(out_dir: str | Path) -> Path:
    """Write ``out_dir/report.html`` from the folder's tables and return its path.

    Raises
    ------
    StudyError
        ``out_dir`` is not a study output folder.

    Examples
    --------
    >>> from latentprobe.study import build_report
    >>> build_report("toy-study")                     # doctest: +SKIP
    PosixPath('toy-study/report.html')
    """
    from latentprobe.report import Report

    out = Path(out_dir)
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
                        "config fingerprint": meta.get("fingerprint"), "model fingerprint": meta.get("model_fingerprint")})
    if len(sample):
        filled = sample.astype({"category": object, "source": object}).fillna({"category": "-", "source": "-"})
        counts = filled.groupby(["benchmark", "source", "category"], dropna=False).size().reset_index(name="n")
        rep.add_table(counts, caption="Sampled examples per benchmark, source and category (ids in sample.csv).",
                      index=False)
    finished = [a for a in ANALYSES if (out / a / "done.json").exists()]
    unfinished = [a for a in cfg.get("analyses", {}) if cfg["analyses"].get(a) is not None and a not in finished]
    if unfinished:
        rep.add_note(f"Not finished: {', '.join(unfinished)}. Re-run the same `latentprobe run` command to resume.",
                     kind="warning", title="Incomplete study")
    for name in finished:
        result = load_result(out / name)
        if _empty(result):
            rep.add_heading(_TITLES[name])
            rep.add_note(f"No example could be compared (see {name}/dropped.csv).", kind="warning")
            continue
        rep.add_result(result, title=_TITLES[name])
        if name == "z_to_y" and ("gold" not in sample or sample["gold"].isna().all()):
            rep.add_note("The data have no gold answers, so no accuracy is computed: the rows compare each "
                         "intervention's answers with the no-op control's (flip rate) and the first answer token's "
                         "distributions (KL).", title="No gold answers")
        dropped = read_table(out / name, "dropped") if "dropped" in TABLES[name] else pd.DataFrame()
        if len(dropped):
            counts = dropped.groupby(["condition", "reason"]).size().reset_index(name="n")
            rep.add_table(counts, caption=f"Examples left out, per condition and reason ({name}/dropped.csv).",
                          index=False)
        if name == "probes":
            for _, r in read_table(out / name, "skipped").iterrows():
                rep.add_note(f"{r['target']}: {r['reason']}", kind="warning", title="Probe skipped")
    settings = {"seed": cfg.get("study", {}).get("seed"), **{f"generation.{k}": v for k, v in
                                                            cfg.get("generation", {}).items()}}
    rep.add_provenance(settings=settings, runner=meta.get("model"), spec=model.get("preset"),
                       sample=list(sample.example_id) if len(sample) else 0,
                       sample_seed=cfg.get("study", {}).get("seed"), versions=meta.get("versions"))
    return rep.write(out / "report.html")


def _empty(result: Any) -> bool:
    table = result if isinstance(result, pd.DataFrame) else getattr(result, "summary", None)
    if table is None and hasattr(result, "scores"):
        table = result.scores
    return isinstance(table, pd.DataFrame) and table.empty


