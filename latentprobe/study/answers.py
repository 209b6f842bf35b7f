"""A study's answers: ``answers.csv`` (the answer browser's table) and the per-condition counts.

``answers.csv`` has one row per example: the clean run's columns (:class:`latentprobe.schema.ANSWERS`:
question, gold, answer, what the scorer read and how, latent count) and, for every condition an analysis
generated answers in (:meth:`latentprobe.analyses.Analysis.answers`), ``<condition>: answer`` and
``<condition>: parsed``. The study writes it after the clean run and again once the analyses have run
(or one has failed).

The rule for answers the scorer cannot read (empty, a refusal, ambiguous, no number) is one: they count
as wrong in every accuracy and effect, and they are counted in ``n_unparseable``
(:func:`answer_summary`); the report warns where a condition's answers are mostly unreadable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from latentprobe import schema
from latentprobe.analyses import registered_analyses
from latentprobe.study.results import load_result, read_frame

__all__ = ["CLEAN", "answer_rows", "browser_table", "answer_summary", "write_answers", "MOSTLY_UNREADABLE"]

#: The condition name of the clean run.
CLEAN = "clean"
#: A condition whose share of unreadable answers exceeds this gets a warning in the report.
MOSTLY_UNREADABLE = 0.5


def _clean(out: Path) -> pd.DataFrame:
    frame = read_frame(out / "answers.csv")
    keep = [c for c in schema.ANSWERS.COLUMNS if c in frame.columns]
    return schema.ANSWERS.frame(frame[keep]) if len(frame) else schema.ANSWERS.frame([])


def answer_rows(out: str | Path) -> pd.DataFrame:
    """Every answer of a study folder in long form (:class:`latentprobe.schema.ANSWER_ROWS`): the clean run,
    then each finished analysis's conditions, in running order.

    Parameters
    ----------
    out : str or Path
        The study's output folder.

    Returns
    -------
    pandas.DataFrame
        One row per example and condition.
    """
    out = Path(out)
    clean = _clean(out)
    frames = [schema.ANSWER_ROWS.frame(clean.assign(condition=CLEAN)[list(schema.ANSWER_ROWS.COLUMNS)])]
    for key, record in registered_analyses().items():
        if (out / key / "done.json").exists():
            rows = record.answers(load_result(out / key))
            if rows is not None and len(rows):
                frames.append(schema.ANSWER_ROWS.frame(rows))
    return pd.concat(frames, ignore_index=True)


def browser_table(out: str | Path, rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """``answers.csv``: one row per example, the clean run's columns, then each condition's answer and parse.

    Parameters
    ----------
    out : str or Path
        The study's output folder.
    rows : pandas.DataFrame or None
        The study's :func:`answer_rows`, when already read (default: read them).

    Returns
    -------
    pandas.DataFrame
    """
    out = Path(out)
    clean = _clean(out)
    rows = answer_rows(out) if rows is None else rows
    wide = clean.copy()
    for cond, g in rows[rows["condition"] != CLEAN].groupby("condition", sort=False):
        g = g.drop_duplicates("example_id").set_index("example_id")
        wide[f"{cond}: answer"] = wide["example_id"].map(g["answer"])
        wide[f"{cond}: parsed"] = wide["example_id"].map(g["parsed"])
    return wide


def answer_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per condition (:class:`latentprobe.schema.ANSWER_SUMMARY`): answers, unreadable ones (a gold but no
    reading), empty ones, the share unreadable among answers with a gold, the share that entered latent mode,
    and the accuracy with unreadable answers counted as wrong.

    Parameters
    ----------
    rows : pandas.DataFrame
        Answers in long form (:func:`answer_rows`).

    Returns
    -------
    pandas.DataFrame
        One row per condition, in the order of ``rows``.
    """
    out = []
    for cond, g in rows.groupby("condition", sort=False):
        scored = g["parse_method"].fillna("") != schema.NO_GOLD
        unread = scored & g["correct"].isna()
        empty = g["answer"].fillna("").astype(str).str.strip() == ""
        n_scored = int(scored.sum())
        out.append({"condition": cond, "n": len(g), "n_unparseable": int(unread.sum()), "n_empty": int(empty.sum()),
                    "share_unparseable": unread.sum() / n_scored if n_scored else np.nan,
                    "share_latent_mode": float((g["n_latents"] > 0).mean()) if len(g) else np.nan,
                    "accuracy": float(g.loc[scored, "correct"].fillna(0.0).mean()) if n_scored else np.nan})
    return schema.ANSWER_SUMMARY.frame(out)


def write_answers(out: str | Path) -> pd.DataFrame:
    """Rewrite ``out/answers.csv`` with every finished analysis's conditions.

    Parameters
    ----------
    out : str or Path
        The study's output folder.

    Returns
    -------
    pandas.DataFrame
        The table written (:func:`browser_table`).
    """
    from latentprobe.atomic import atomic_write_text

    out = Path(out)
    wide = browser_table(out)
    atomic_write_text(out / "answers.csv", wide.to_csv(index=False))
    return wide
