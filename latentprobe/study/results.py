"""Result objects read back from a study's output folder: :func:`load_result`.

Each finished analysis folder holds its tables as CSV, plus ``config.json`` (the analysis's
configuration) and, for ``x_to_z``, ``across_matrices.npz``. :func:`load_result` rebuilds the
object the analysis returned (:class:`~latentprobe.causal.XZResult`, ``ZYResult``,
``MediationResult``, :class:`~latentprobe.probing.ProbeSweepResult`; the collapse table as a
DataFrame), so results can be studied, plotted or reported without re-running anything. Text
columns (ids, answers) are read as text; an empty cell reads as NaN (CSV cannot tell an empty answer
from a missing one).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from latentprobe.errors import StudyError

__all__ = ["load_result", "ANALYSIS_KINDS"]

#: What :func:`load_result` returns per analysis folder.
ANALYSIS_KINDS = {"x_to_z": "XZResult", "z_to_y": "ZYResult", "decompose": "MediationResult",
                  "probes": "ProbeSweepResult", "collapse": "DataFrame (collapse_table)"}
_TEXT = ("example_id", "answer", "ref_answer", "clean_answer", "gold", "perturbation", "intervention", "mode",
         "condition", "reason", "source", "metric", "effect", "kind", "note", "method", "target", "task",
         "representation", "centering", "x", "z", "outcome", "treatment")


def read_frame(path: Path) -> pd.DataFrame:
    """A table written by a study (empty frame for an empty or absent file); text columns stay text."""
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame()
    try:
        head = pd.read_csv(path, nrows=0)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    text = {c: str for c in head.columns if c in _TEXT}
    return pd.read_csv(path, dtype=text, keep_default_na=False, na_values=[""])


def write_extras(folder: Path, name: str, result: Any) -> None:
    """Store what the tables do not hold: the configuration, and the x_to_z cosine matrices."""
    from latentprobe.atomic import atomic_write, atomic_write_text

    config = getattr(result, "config", None)
    if config is not None:
        atomic_write_text(folder / "config.json", json.dumps(config, indent=1, sort_keys=True, default=str) + "\n")
    mats = getattr(result, "across_matrices", None)
    if name == "x_to_z" and mats is not None:
        arrays = {f"layer_{k}": np.asarray(v) for k, v in mats.items()}
        atomic_write(folder / "across_matrices.npz", lambda fh: np.savez(fh, **arrays), binary=True)


def _config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _effects(summary: pd.DataFrame) -> dict[str, Any]:
    from latentprobe.stats import Effect

    out = {}
    for _, r in summary[summary["kind"] == "effect"].iterrows():
        p = r.get("p_value")
        out[str(r["effect"])] = Effect(name=str(r["effect"]), estimate=float(r["estimate"]), ci_low=float(r["ci_low"]),
                                       ci_high=float(r["ci_high"]), n=int(r["n"]),
                                       p_value=None if p is None or (isinstance(p, float) and math.isnan(p)) else float(p),
                                       method=str(r.get("method") or ""), note="" if pd.isna(r.get("note")) else str(r["note"]))
    return out


def load_result(folder: str | Path, analysis: str | None = None) -> Any:
    """The result of one finished analysis of a study folder.

    Parameters
    ----------
    folder : path
        ``DIR/<analysis>`` of ``latentprobe run``.
    analysis : str, optional
        ``x_to_z``, ``z_to_y``, ``decompose``, ``probes`` or ``collapse`` (default: the folder's name).

    Returns
    -------
    XZResult, ZYResult, MediationResult, ProbeSweepResult or DataFrame
        See :data:`ANALYSIS_KINDS`.

    Raises
    ------
    StudyError
        The folder holds no finished analysis (no ``done.json``), or the analysis name is unknown.

    Examples
    --------
    >>> from latentprobe.study import load_result
    >>> med = load_result("toy-study/decompose")     # doctest: +SKIP
    >>> med.effects["NIE"].estimate < 0               # doctest: +SKIP
    True
    """
    folder = Path(folder)
    name = analysis or folder.name
    if name not in ANALYSIS_KINDS:
        raise StudyError(f"{folder}: unknown analysis {name!r}; use one of {', '.join(ANALYSIS_KINDS)}.")
    if not (folder / "done.json").exists():
        raise StudyError(f"{folder}: no finished {name} analysis here (no done.json); run or resume the study first.")
    t = {p.stem: read_frame(p) for p in folder.glob("*.csv")}
    cfg = _config(folder)
    if name == "x_to_z":
        from latentprobe.causal import XZResult

        mats: dict[int, np.ndarray] = {}
        if (folder / "across_matrices.npz").exists():
            with np.load(folder / "across_matrices.npz") as z:
                mats = {int(k.split("_")[1]): z[k] for k in z.files}
        return XZResult(rows=t["rows"], summary=t["summary"], dropped=t["dropped"], config=cfg, across=t["across"],
                        across_matrices=mats, status=t.get("status", pd.DataFrame()))
    if name == "z_to_y":
        from latentprobe.causal import ZYResult

        return ZYResult(rows=t["rows"], summary=t["summary"], dropped=t["dropped"], config=cfg)
    if name == "decompose":
        from latentprobe.causal import MediationResult

        s = t["summary"]
        prop = s[s["effect"] == "proportion_mediated"] if len(s) else s
        return MediationResult(rows=t["rows"], summary=s, dropped=t["dropped"], config=cfg, effects=_effects(s),
                               proportion_mediated=float(prop["estimate"].iloc[0]) if len(prop) else float("nan"),
                               proportion_note=str(prop["note"].iloc[0]) if len(prop) and not pd.isna(
                                   prop["note"].iloc[0]) else "")
    if name == "probes":
        from latentprobe.probing import ProbeSweepResult

        return ProbeSweepResult(scores=t["scores"])
    return t["collapse"]
