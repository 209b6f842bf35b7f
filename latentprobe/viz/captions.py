"""Captions and axis ranges of the figures: what each figure shows, what it does not prove, and the
range each metric can take.

Every figure function stores its kind and caption in ``fig.layout.meta`` (``{"kind": ...,
"caption": ...}``); :func:`caption_for` reads them back (or looks a kind up in :data:`CAPTIONS`),
and :meth:`latentprobe.report.Report.add_figure` uses it when no caption is given.

Examples
--------
>>> from latentprobe import viz
>>> viz.caption_for("zy_bars").startswith("Output of the model")
True
>>> viz.metric_bounds("cosine"), viz.metric_bounds("kl")
((-1.0, 1.0), (0.0, None))
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from latentprobe.errors import VizInputError

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

__all__ = ["CAPTIONS", "AXIS_TITLES", "caption_for", "metric_bounds", "metric_range"]

#: Caption of each figure kind (the figure function's name): what it shows, then what it does not prove.
CAPTIONS: dict[str, str] = {
    "attribution_heatmap": (
        "Attribution patching: per residual layer (rows) and position (columns: group and index in the group), "
        "the first-order estimate (h_cf − h_clean) · ∂metric/∂h of the change in the metric (default: log-prob "
        "of the clean answer minus that of the counterfactual answer) when that one residual is patched from "
        "the counterfactual run, mean over examples; latents are fixed inputs (replay-mode effect). Blue: the "
        "patch lowers the metric. An estimate, not an effect: check the top cells with exact patching "
        "(verify_top); large effects are under-estimated where the model is far from linear."
    ),
    "xz_lines": (
        "How far the latents move when the input is perturbed (X → Z): per latent step, the cosine "
        "similarity between clean and perturbed latents (1 = unchanged) and their relative L2 change "
        "‖z′ − z‖ / ‖z‖ (0 = unchanged), mean over examples with 95% bootstrap bands; flat lines are the "
        "same comparison at prompt-token positions. A change shows that the latents depend on the input; "
        "it does not show that the answer uses them (see Z → Y)."
    ),
    "zy_bars": (
        "Output of the model when the latents are intervened on (Z → Y), one bar per intervention and "
        "mode with 95% bootstrap whiskers. Accuracy and flip rate are fractions of examples; the change in "
        "accuracy is intervention − control; KL(control ‖ intervention) of the first answer token is in "
        "nats. Conditions marked `ood` in the section's table feed latents far from every clean latent (measured): "
        "a change under them shows that the model is sensitive to the patch, not that the latents carry the "
        "reasoning in normal runs; `swap` feeds clean latents of other examples. A star marks an effect whose "
        "p-value survives Holm's adjustment over the intervention x mode cells of its metric (family-wise "
        "error 0.05); unstarred bars are not distinguishable from the control after it."
    ),
    "patching_heatmap": (
        "Activation patching: each cell writes the counterfactual (source) run's residual at one position group "
        "(column) and residual layer (row) into the base run and reads the answer in one mode (panel); colour: "
        "the fraction of examples whose answer changed from the same mode's unpatched control (flip rate; the "
        "hover shows its 95% Wilson interval, the paired score-test p and Holm's adjusted p). A high cell shows "
        "that those states carry information the answer uses with everything else held at the base run; a low "
        "cell does not show they are unused (they may matter only together with other positions)."
    ),
    "decomposition_bars": (
        "Mediation decomposition of the treatment's effect on the outcome (treated − clean): total (TE), "
        "natural direct (NDE, latents held clean) and natural indirect (NIE, only the latents from the "
        "treated run) effects with 95% paired-bootstrap whiskers. TE = NDE + NIE holds only without an "
        "X × Z interaction. A large NIE shows that swapping the latents carries the effect; it does not "
        "rule out other paths, and the split assumes the latents are the only mediator that is swapped."
    ),
    "effects_forest": (
        "Effect estimates with their confidence intervals, one row per effect; the dotted line is zero. "
        "Intervals are not corrected for multiple comparisons, and an interval that excludes zero is "
        "not by itself evidence of a mechanism."
    ),
    "probe_heatmap": (
        "Held-out score of a linear probe per layer and latent step. A high score shows that the target "
        "is linearly decodable there; it does not show that the model computes or uses it. A star marks "
        "a cell whose permutation p-value survives Holm's adjustment over all cells of the sweep "
        "(family-wise error 0.05); unstarred cells are not distinguishable from chance after it."
    ),
    "probe_controls": (
        "Held-out probe score next to its baselines: majority class, shuffled training labels and a "
        "control task (selectivity = score − control). A score above the baselines shows that the "
        "information is linearly decodable, not that the model uses it."
    ),
    "efficiency_bars": (
        "Decoding cost per example, per model: wall-clock seconds (the batch's time divided by its size), "
        "positions generated after the prompt (latent steps, markers and text) and latent steps, means over "
        "examples with 95% bootstrap intervals. Times are from one machine, dtype and batch size; they are not "
        "comparable across machines, and a cheaper model is not thereby a better one."
    ),
    "influence_heatmap": (
        "Step → step influence: row i is an intervention on latent step i in propagate mode (latents after i "
        "and the answer generated again); a cell is the mean change of latent z_j (1 − cosine, 0 = unchanged) and "
        "the last column the answer's flip rate. Cells left of the diagonal are the untouched prefix. A large "
        "entry shows that later steps are computed from step i; it does not show that they carry the answer."
    ),
    "similarity_heatmap": (
        "Cosine similarity between latent steps (−1 to 1), mean over examples. High similarity between "
        "steps is not by itself collapse: compare with the baselines in the collapse table."
    ),
    "consecutive_similarity": (
        "Cosine similarity (−1 to 1) of consecutive latent steps, mean over examples with 95% bootstrap "
        "bands. Similar consecutive steps do not show that later steps add nothing."
    ),
    "across_instance_summary": (
        "Mean cosine similarity (−1 to 1) between the latents of different examples, per latent step. "
        "High similarity across examples does not by itself show input-independent latents: it must "
        "stay high after centring and exceed the baselines."
    ),
    "position_similarity_lines": (
        "Per residual layer and position group (latents, markers, answer and prompt positions of the same "
        "instances), the mean raw cosine between distinct instances with its instance-jackknife 95% band, and the "
        "spread: the share of the vectors' second moment off the group's mean (0: every instance has the same "
        "vector). Latents: means over steps. Lower cosine and higher spread mean the group differs more between "
        "instances; this does not show what the differences encode (probe that), nor that the model uses them."
    ),
    "collapse_bars": (
        "Collapse statistics of the latents next to baselines (random vectors of matched norm, token "
        "states), raw and centred. Collapse is a comparison: a statistic means little without the "
        "baselines beside it, and none of these bars shows whether the model uses the latents."
    ),
    "norm_profile": (
        "L2 norm of the latents per step against the norms of token embeddings. Norms far from the "
        "embeddings' suggest the latents are out of the input distribution; they do not show what the "
        "latents encode."
    ),
    "attention_regions": (
        "Where the query positions attend: for each query (latent step, close marker, answer position), the "
        "attention probability summed over the keys of each region (position 0, where heads park attention; image "
        "tokens, question, system prompt, markers, earlier latents, generated text, the query itself), mean over "
        "examples, layers and heads; a bar sums to 1. "
        "Mass shows where heads read from, not what they read or whether it matters: a head can park its attention on "
        "a marker and write nothing, and information reaches a position through others. It does not prove use; "
        "the interventions (Z → Y) do."
    ),
    "attention_heatmap": (
        "Attention mass from one query group (by default each latent step) to one region, per decoder layer and "
        "step, mean over examples and heads (0 = never attends there, 1 = only there). An exact 0 is a masked edge; a "
        "high value does not show that the region's content is used, and a low one does not rule out that it "
        "arrives through other positions."
    ),
    "lens_rank_heatmap": (
        "Rank of a target token (1 = the most likely) when each layer's residual at each step is read "
        "through the final norm and the unembedding (the logit lens), median over examples. A low rank "
        "shows what the unembedding makes of the residual there; it does not show that the model uses "
        "it (intermediate layers are not trained to be read this way, and decoding is not causation)."
    ),
}

#: Axis title of each metric: direction and unit.
AXIS_TITLES: dict[str, str] = {
    "cosine": "cosine similarity (1 = unchanged)",
    "rel_l2": "relative L2 change ‖z′−z‖/‖z‖ (0 = unchanged)",
    "accuracy_change": "change in accuracy<br>intervention − control (fraction)",
    "flip_rate": "flip rate<br>(fraction changed vs control)",
    "gold_logprob_change": "Δ log p(gold)<br>intervention − control (nats)",
    "recorded_logprob_change": "Δ log p(recorded answer)<br>intervention − control (nats)",
    "kl": "KL(control ‖ intervention)<br>first answer token (nats)",
}

# Range each metric can take: (low, high), None = unbounded.
_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "cosine": (-1.0, 1.0),
    "cosine_distance": (0.0, 2.0),
    "rel_l2": (0.0, None),
    "accuracy": (0.0, 1.0),
    "accuracy_change": (-1.0, 1.0),
    "flip_rate": (0.0, 1.0),
    "kl": (0.0, None),
    "mean": (-1.0, 1.0),
    "mean_offdiag": (-1.0, 1.0),
    "within_instance_mean": (-1.0, 1.0),
    "consecutive_mean": (-1.0, 1.0),
    "across_instance_mean": (-1.0, 1.0),
    "within_group_mean": (-1.0, 1.0),
    "between_group_mean": (-1.0, 1.0),
    "effective_rank": (0.0, None),
    "participation_ratio": (0.0, None),
    "mean_norm": (0.0, None),
    "spread": (0.0, 1.0),
}


def caption_for(fig_or_kind: go.Figure | str) -> str | None:
    """Caption of a figure (its ``layout.meta["caption"]``) or of a figure kind (a key of :data:`CAPTIONS`).

    Returns ``None`` for a figure without a stored caption or an unknown kind.

    Parameters
    ----------
    fig_or_kind : plotly.graph_objects.Figure or str
        A figure made by :mod:`latentprobe.viz`, or its kind.

    Returns
    -------
    str or None
    """
    if isinstance(fig_or_kind, str):
        return CAPTIONS.get(fig_or_kind)
    layout = getattr(fig_or_kind, "layout", None)
    meta = getattr(layout, "meta", None) if layout is not None else None
    if isinstance(meta, dict):
        caption = meta.get("caption")
        if caption:
            return str(caption)
        kind = meta.get("kind")
        if kind:
            return CAPTIONS.get(str(kind))
    return None


def metric_bounds(metric: str) -> tuple[float | None, float | None]:
    """``(low, high)`` a metric can take (``None``: unbounded); ``(None, None)`` for an unknown metric.

    Parameters
    ----------
    metric : str
        A metric's name.

    Returns
    -------
    tuple[float | None, float | None]
        Its lower and upper bound, ``None`` where unbounded.
    """
    return _BOUNDS.get(str(metric), (None, None))


def metric_range(metric: str, values: ArrayLike, *, include_zero: bool = False, min_span: float = 0.1
                 ) -> list[float] | None:
    """Axis range for ``values`` of ``metric``: the data padded, never past what the metric can take.

    Parameters
    ----------
    metric : str
        Metric name (see :func:`metric_bounds`).
    values : array-like
        Every value drawn on the axis (estimates and interval bounds).
    include_zero : bool, default False
        Keep 0 in range (bars start at 0).
    min_span : float, default 0.1
        Smallest span, so that constant data (e.g. cosine 1 everywhere) is not blown up to noise.

    Returns
    -------
    list of two floats, or None
        ``None`` when there is no finite value and the metric is not bounded on both sides.

    Examples
    --------
    >>> metric_range("cosine", [1.0, 1.0])
    [0.9, 1.0]
    >>> metric_range("rel_l2", [0.0, 0.0])
    [0.0, 0.1]
    """
    lo_b, hi_b = metric_bounds(metric)
    try:
        v = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise VizInputError(f"metric_range: values of {metric!r} must be numbers.") from None
    v = v[np.isfinite(v)]
    if include_zero:
        v = np.append(v, 0.0)
    if v.size == 0:
        return [lo_b, hi_b] if lo_b is not None and hi_b is not None else None
    lo, hi = float(v.min()), float(v.max())
    pad = max((hi - lo) * 0.08, (min_span - (hi - lo)) / 2, 0.0)
    lo, hi = lo - pad, hi + pad
    if lo_b is not None and lo < lo_b:
        hi, lo = min(hi + (lo_b - lo), hi_b if hi_b is not None else math.inf), lo_b
    if hi_b is not None and hi > hi_b:
        lo, hi = max(lo - (hi - hi_b), lo_b if lo_b is not None else -math.inf), hi_b
    return [round(lo, 12), round(hi, 12)]
