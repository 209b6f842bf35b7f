"""``latentprobe report DIR``: the study's HTML report, built from the output folder alone.

Everything shown is read back from ``DIR`` (``study.json``, ``sample.csv`` and each analysis's
CSV tables), so ``latentprobe run`` and ``latentprobe report`` write the same report; the only
volatile part is the creation time that :class:`~latentprobe.report.Report` stamps in its header
and footer. An analysis whose folder has no ``done.json`` is listed as unfinished.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from latentprobe.errors import StudyError
from latentprobe.study.analyses import TABLES, read_table
from latentprobe.study.config import ANALYSES

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
    tables = load_tables(out)
    model = cfg.get("model", {})
    rep = Report(f"latentprobe study: {meta.get('name', '')}",
                 subtitle=f"{model.get('source', '')}; {len(sample)} examples; seed {cfg.get('study', {}).get('seed')}")
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
        counts = sample.astype({"category": object, "source": object}).fillna({"category": "-", "source": "-"}).groupby(["benchmark", "source", "category"],
                                                                          dropna=False).size()
        _table(rep, counts.reset_index(name="n"), caption="Sampled examples per benchmark, source and category "
                      "(ids in sample.csv).")
    unfinished = [a for a in cfg.get("analyses", {}) if cfg["analyses"].get(a) is not None and a not in tables]
    if unfinished:
        rep.add_note(f"Not finished: {', '.join(unfinished)}. Re-run the same `latentprobe run` command to resume.",
                     kind="warning", title="Incomplete study")
    # merge: switch to rep.add_result(load_result(out / name), title=_TITLES[name]) (latentprobe.study.results)
    # once Report.add_result lands; the sections below draw the same stored tables directly.
    for name, tabs in tables.items():
        rep.add_heading(_TITLES[name])
        _SECTIONS[name](rep, tabs)
    rep.add_heading("Software")
    rep.add_key_values(meta.get("versions", {}))
    return rep.write(out / "report.html")


def _xz(rep: Any, t: dict[str, pd.DataFrame]) -> None:
    from latentprobe import viz

    s = t["summary"]
    if s.empty:
        rep.add_note("No example could be compared (see dropped.csv).", kind="warning")
        return
    lat = s[s.source == "latent"]
    layer = 0 if (lat.layer == 0).any() else int(lat.layer.min()) if len(lat) else None
    if len(lat):
        rep.add_figure(viz.xz_lines(s, layer=layer), caption=f"Change of the latents per latent step at residual "
                       f"layer {layer} (0 = the fed latent), with the prompt-token baselines as flat lines; "
                       "bands are 95% bootstrap intervals over examples.")
    base = s[(s.source != "latent") & (s.layer == layer)] if layer is not None else s[s.source != "latent"]
    cols = [c for c in ("perturbation", "source", "metric", "estimate", "ci_low", "ci_high", "n") if c in s]
    if len(base):
        _table(rep, base[cols], caption="Baselines: the same comparison for prompt-token states.")
    _dropped(rep, t["dropped"])


def _zy(rep: Any, t: dict[str, pd.DataFrame]) -> None:
    from latentprobe import viz

    s = t["summary"]
    sub = s[s.metric.isin(["accuracy", "flip_rate", "kl"]) & (s["mode"] != "run")] if len(s) else s
    if len(sub):
        rep.add_figure(viz.zy_bars(sub), caption="Accuracy, flip rate (answers that differ from the same mode's "
                       "no-op control) and KL per intervention and mode; whiskers are 95% bootstrap intervals.")
    if (s.intervention == "no_latents").any() if len(s) else False:
        rep.add_note("no_latents removes the latent span: the model sees an input it was never trained on, so its "
                     "effect is an out-of-distribution reference, not a clean ablation.", title="no_latents")
    cols = [c for c in ("intervention", "mode", "metric", "estimate", "ci_low", "ci_high", "n", "p_value") if c in s]
    if len(s):
        _table(rep, s[s.metric.isin(["accuracy", "accuracy_change", "flip_rate"])][cols],
                      caption="Accuracy change vs the control (McNemar exact p) and flip rate.")
    _dropped(rep, t["dropped"])


def _med(rep: Any, t: dict[str, pd.DataFrame]) -> None:
    from latentprobe import viz

    s = t["summary"]
    eff = s[s.kind == "effect"] if len(s) else s
    if len(eff):
        rep.add_figure(viz.decomposition_bars(eff), caption="TE: the treatment's total effect on the outcome; NIE: "
                       "input clean, latents from the treated run; NDE: input treated, latents held clean. Whiskers "
                       "are 95% paired bootstrap intervals.")
        cols = [c for c in ("effect", "kind", "estimate", "ci_low", "ci_high", "n", "p_value", "note") if c in s]
        _table(rep, s[cols], caption="Effects, their interaction and the four condition means.")
    _dropped(rep, t["dropped"])


def _probes(rep: Any, t: dict[str, pd.DataFrame]) -> None:
    from latentprobe import viz

    s = t["scores"]
    for target in (s.target.unique() if len(s) else []):
        rep.add_figure(viz.probe_heatmap(s, target=target), caption=f"Probe score for {target!r} per residual "
                       "layer and latent step (grouped cross-validation).")
    if len(s):
        best = s.sort_values(["target", "score"]).groupby("target").tail(1)
        cols = [c for c in ("target", "layer", "step", "score", "selectivity", "chance", "majority") if c in s]
        _table(rep, best[cols], caption="The best cell per target, with its selectivity over the control task.")
    rep.add_note("A probe's accuracy shows that information is linearly decodable, not that the model uses it.")
    for _, r in t["skipped"].iterrows():
        rep.add_note(f"{r['target']}: {r['reason']}", kind="warning", title="Probe skipped")


def _collapse(rep: Any, t: dict[str, pd.DataFrame]) -> None:
    from latentprobe import viz

    c, m = t["collapse"], t["step_matrix"]
    if len(c):
        rep.add_figure(viz.collapse_bars(c), caption="Within-instance and across-instance cosine and effective "
                       "rank of the latents next to the baselines, raw and centred.")
        _table(rep, c, caption="Collapse statistics (one row per source and centring).")
    if len(m):
        k = int(m.step_a.max()) + 1
        mat = m.sort_values(["step_a", "step_b"]).cosine.to_numpy().reshape(k, k)
        rep.add_figure(viz.similarity_heatmap(mat, title="Step x step cosine of the latents (mean over examples)"),
                       caption="Cosine similarity between latent steps of the same example, averaged over examples.")
    rep.add_note("A high cosine after centring is not by itself collapse; compare with the baselines.")


def _table(rep: Any, frame: pd.DataFrame, caption: str) -> None:
    rep.add_table(frame.reset_index(drop=True), caption=caption, index=False)


def _dropped(rep: Any, dropped: pd.DataFrame) -> None:
    if len(dropped):
        counts = dropped.groupby(["condition", "reason"]).size().reset_index(name="n")
        _table(rep, counts, caption="Examples left out, per condition and reason (dropped.csv).")


_SECTIONS = {"x_to_z": _xz, "z_to_y": _zy, "decompose": _med, "probes": _probes, "collapse": _collapse}
