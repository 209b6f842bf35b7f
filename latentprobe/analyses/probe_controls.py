"""The control task of the ``probes`` and ``representations`` analyses: the default control types (the questions),
the study-file docs of its options, and the report's lines about it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from latentprobe.analyses.base import ReportSink
from latentprobe.perturbations import InputSet
from latentprobe.report.sections import once

__all__ = ["CONTROL_TYPES_DOC", "CONTROL_LABELS_DOC", "question_types", "selectivity_text", "unlearnable_note"]

#: The study-file doc of ``control_types`` (``probes`` and ``representations``).
CONTROL_TYPES_DOC = ('control task key: "question" (the question text, backed off to its longest word prefix that '
                     'recurs across the folds), "groups" (the image ids: never recur across folds, so the control '
                     'cannot fail; warned), or an example field')
#: The study-file doc of ``control_labels``.
CONTROL_LABELS_DOC = ('control task labels: "within_type" (the target permuted within each control type) or '
                      '"per_type" (one random label per type, Hewitt & Liang 2019)')


def question_types(inputs: InputSet, groups: np.ndarray, rows: np.ndarray, *, n_splits: int, seed: int) -> np.ndarray:
    """The default control types: each probed example's question, recurring across the probe's folds.

    The question is ``meta["question"]``, else the toy example's question, else the prompt (a token-id prompt as its
    ids), as in the ``question`` column of ``answers.csv``; :func:`latentprobe.probing.recurring_types` backs a
    question that does not occur in two folds off to its longest word prefix that does.

    Parameters
    ----------
    inputs : InputSet
        The examples.
    groups : numpy.ndarray
        The CV groups of all examples.
    rows : numpy.ndarray
        The probed examples (indices into ``inputs``), in the probe's order.
    n_splits, seed : int
        The probe's folds (as passed to :func:`latentprobe.probing.probe_sweep`).

    Returns
    -------
    numpy.ndarray
        One type per probed example.
    """
    from latentprobe.probing import recurring_types

    questions = []
    for i in rows:
        m, prompt = inputs.meta[i], inputs.prompts[i]
        q = m.get("question") or getattr(m.get("toy"), "question", None)
        if q is None:
            q = prompt if isinstance(prompt, str) else " ".join(str(t) for t in np.asarray(prompt).ravel().tolist())
        questions.append(str(q))
    return recurring_types(questions, groups[rows], n_splits=n_splits, seed=seed)


def selectivity_text(row: pd.Series) -> str:
    """`` [low, high]`` of a score row's selectivity interval (empty when it has none)."""
    lo, hi = row.get("selectivity_ci_low", float("nan")), row.get("selectivity_ci_high", float("nan"))
    return f" [{lo:+.3f}, {hi:+.3f}]" if np.isfinite(lo) and np.isfinite(hi) else ""


def unlearnable_note(report: ReportSink, scores: pd.DataFrame) -> None:
    """A warning when a control task could not be learned by construction (``control_recur`` 0)."""
    if "control_recur" in scores and (scores["control_recur"] == 0.0).any():
        once(report, "probe-control-unlearnable", "No held-out example's control type occurs in its training folds, so "
             "the control task cannot be learned and selectivity cannot fail. Key the control by something that "
             'recurs across images: control_types = "question".', kind="warning", title="Control task cannot fail")
