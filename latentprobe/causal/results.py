"""Result objects of the causal analyses: :class:`XZResult`, :class:`ZYResult`, :class:`MediationResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from latentprobe import schema as S
from latentprobe.display import SummarizedResult
from latentprobe.stats import Effect

__all__ = ["XZResult", "ZYResult", "MediationResult"]


def _drop_counts(dropped: pd.DataFrame) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (cond, reason), n in dropped.groupby(["condition", "reason"], sort=False).size().items():
        out.setdefault(str(cond), {})[str(reason)] = int(n)
    return out


@dataclass(frozen=True, eq=False, repr=False)
class XZResult(SummarizedResult):
    """Result of :func:`x_to_z`.

    Attributes
    ----------
    rows : DataFrame
        One row per kept example x perturbation x source x step x layer: ``example_id,
        perturbation, source, step, layer, cosine, rel_l2, chunk, prefix_changed``. ``source`` is ``"latent"``
        (``step`` = latent step, ``layer`` = residual layer, 0 = the fed vector z) or a prompt
        baseline of :data:`BASELINE_SOURCES` (``step = -1``).
    summary : DataFrame
        ``perturbation, source, step, layer, metric (cosine | rel_l2), estimate (mean), ci_low,
        ci_high, n, note``: studentised bootstrap over examples (:func:`latentprobe.stats.bootstrap_ci`).
    dropped : DataFrame
        ``example_id, condition (perturbation), reason, n_latents_clean, n_latents_other, chunk``.
    across : DataFrame
        The inter-instance similarity of clean latents (:func:`latentprobe.geometry.across_instances`):
        ``layer, center, step, mean_offdiag, ci_low, ci_high, n``.
    across_matrices : dict
        ``layer -> [K, n, n]`` raw cosine matrices of clean latents across instances.
    config : dict
        Every setting, the perturbations' configs (mappings and seeds included); ``kept``:
        ``{perturbation: {"n_examples", "n_kept", <reason>: count}}``; ``across_kept``: the examples of
        the inter-instance similarity (:meth:`latentprobe.trace.LatentSelection.to_dict`).
    status : DataFrame
        Like ``dropped`` but for every example and perturbation (``reason == "kept"`` when kept).
    by_prefix : DataFrame
        The latent rows of ``summary`` computed separately for the examples whose pre-latent text
        (generated before the open marker) changed under the perturbation and for the others
        (:class:`~latentprobe.schema.XZ_BY_PREFIX`; ``rows.prefix_changed`` says which example is which,
        ``config["prefix_changed"]`` counts them).
    """

    rows: pd.DataFrame
    summary: pd.DataFrame
    dropped: pd.DataFrame
    config: dict[str, Any]
    across: pd.DataFrame
    across_matrices: dict[int, np.ndarray]
    status: pd.DataFrame
    by_prefix: pd.DataFrame = field(default_factory=S.XZ_BY_PREFIX.empty)

    def drop_counts(self) -> dict[str, dict[str, int]]:
        """``{condition: {reason: count}}`` of dropped examples.

        Returns
        -------
        dict[str, dict[str, int]]
        """
        return _drop_counts(self.dropped)


@dataclass(frozen=True, eq=False, repr=False)
class ZYResult(SummarizedResult):
    """Result of :func:`z_to_y`.

    Attributes
    ----------
    rows : DataFrame
        One row per kept example x intervention x mode: ``example_id, chunk, intervention, mode,
        answer, ref_answer`` (the same mode's no-op control), ``clean_answer`` (original run),
        ``gold, correct, ref_correct`` (1.0/0.0 as the scorer reads the answer, NaN without gold
        or when the answer cannot be read), ``parsed, parse_method, ref_parsed, ref_parse_method``
        (what the scorer read and how; ``"no_gold"`` when not scored), ``flip`` (the answer tokens
        differ from the control's; the first token only with ``scorer="first_word"``),
        ``changed_vs_clean`` (the same against the original run's answer),
        ``gold_logprob, ref_gold_logprob`` (first-token log-prob of the gold answer), ``kl``
        (KL(control first-token distribution || intervened), nats), ``recorded_logprob,
        ref_recorded_logprob`` (replay only: log-prob of the recorded answer), ``n_latents``.
        The controls appear as ``intervention == "none"``.
    summary : DataFrame
        ``intervention, mode, metric, estimate, ci_low, ci_high, n, p_value, method, note`` with
        metrics ``accuracy``, ``accuracy_change`` (vs the control; Tango's paired score interval
        and its score-test p), ``flip_rate`` (Wilson interval), ``gold_logprob_change`` (paired), ``kl``,
        ``recorded_logprob_change`` (replay), and ``n_unparseable`` (answers behind the row that
        could not be read; counted as wrong in the accuracy metrics). ``intervention="none",
        mode="run"`` holds the original run's accuracy. ``ood_nn_ratio``, ``ood_norm_ratio`` and
        ``ood`` say how far the condition's fed latents are from the clean ones and whether that is
        out of distribution (:mod:`latentprobe.causal.ood`; also per example in ``rows``).
    dropped : DataFrame
        ``example_id, condition, reason, n_latents_clean, n_latents_other, chunk``.
    config : dict
        Every setting; ``kept``: the examples kept and left out
        (:meth:`latentprobe.trace.LatentSelection.to_dict`: the count kept, no latents, another count).
    """

    rows: pd.DataFrame
    summary: pd.DataFrame
    dropped: pd.DataFrame
    config: dict[str, Any]

    def drop_counts(self) -> dict[str, dict[str, int]]:
        """``{condition: {reason: count}}`` of dropped examples.

        Returns
        -------
        dict[str, dict[str, int]]
        """
        return _drop_counts(self.dropped)

    def table(self, metrics: Sequence[str] = ("accuracy", "accuracy_change", "flip_rate", "gold_logprob_change", "kl")
              ) -> pd.DataFrame:
        """Wide view for printing: one row per intervention x mode, ``metric [lo, hi]`` cells.

        Parameters
        ----------
        metrics : Sequence[str]
            The metrics shown, in order.

        Returns
        -------
        pandas.DataFrame
        """
        return _wide(self.summary, ["intervention", "mode"], metrics)


@dataclass(frozen=True, eq=False, repr=False)
class MediationResult(SummarizedResult):
    """Result of :func:`decompose`.

    Attributes
    ----------
    rows : DataFrame
        One row per kept example x condition: ``example_id, chunk, condition (clean | treated |
        direct | indirect), x (clean | treated input), z (clean | treated latents), answer, gold,
        correct`` (NaN when the answer cannot be read), ``parsed, parse_method`` (what the scorer
        read and how), ``gold_logprob, n_latents``.
    summary : DataFrame
        ``effect, kind, estimate, ci_low, ci_high, n, p_value, method, note, outcome, treatment``:
        ``TE, NDE, NIE`` (kind ``effect``; :func:`latentprobe.stats.paired_difference_ci` against
        the clean run: Tango's score interval and score-test p for ``outcome="correct"``, the
        studentised bootstrap and its bootstrap-t p otherwise), ``interaction`` (TE - NDE - NIE), ``proportion_mediated``
        (NIE / TE, only when TE's interval excludes 0, else NaN) and the four condition means
        (kind ``level``), and ``n_unparseable`` (examples with an unreadable answer in a condition
        the row compares; counted as wrong with ``outcome="correct"``).
    dropped : DataFrame
        ``example_id, condition (the treatment), reason, n_latents_clean, n_latents_other, chunk``.
    config : dict
        Every setting; ``kept``: ``{"n_examples", "n_kept", <reason>: count}``.
    effects : dict
        ``{"TE", "NDE", "NIE", "interaction"} -> Effect``.
    proportion_mediated : float
        NIE / TE, NaN when TE's interval includes 0 (``proportion_note`` says why).
    proportion_note : str
    """

    rows: pd.DataFrame
    summary: pd.DataFrame
    dropped: pd.DataFrame
    config: dict[str, Any]
    effects: dict[str, Effect]
    proportion_mediated: float
    proportion_note: str

    def drop_counts(self) -> dict[str, dict[str, int]]:
        """``{condition: {reason: count}}`` of dropped examples.

        Returns
        -------
        dict[str, dict[str, int]]
        """
        return _drop_counts(self.dropped)


def _wide(summary: pd.DataFrame, keys: list[str], metrics: Sequence[str]) -> pd.DataFrame:
    if summary.empty:
        return pd.DataFrame(columns=keys + list(metrics))
    out: dict[tuple, dict[str, Any]] = {}
    for _, r in summary.iterrows():
        if r["metric"] not in metrics:
            continue
        k = tuple(r[c] for c in keys)
        d = out.setdefault(k, {c: r[c] for c in keys} | {"n": int(r["n"])})
        cell = f"{r['estimate']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
        if r["metric"] == "accuracy_change" and pd.notna(r["p_value"]):
            cell += f" p={r['p_value']:.2g}"
        d[r["metric"]] = cell
    frame = pd.DataFrame(list(out.values()))
    return frame[[c for c in keys + ["n"] + list(metrics) if c in frame.columns]]
