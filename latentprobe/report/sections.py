"""Standard report sections of analysis results (:meth:`Report.add_result`).

One builder per result kind adds a heading, a summary table, figures with captions and the notes
a reader needs (e.g. that removing the latents is an out-of-distribution change):

==========================  =========================================================================
kind                        result
==========================  =========================================================================
``x_to_z``                  ``XZResult`` (:func:`latentprobe.causal.x_to_z`) or its summary table
``z_to_y``                  ``ZYResult`` (:func:`latentprobe.causal.z_to_y`) or its summary table
``mediation``               ``MediationResult`` (:func:`latentprobe.causal.decompose`) or its summary
``probe_sweep``             ``ProbeSweepResult`` (:func:`latentprobe.probing.probe_sweep`) or its scores
``probe_comparison``        :func:`latentprobe.probing.compare_representations` table
``collapse``                :func:`latentprobe.geometry.collapse_table` table
``within_instance``         ``WithinInstanceResult`` (:func:`latentprobe.geometry.within_instance`)
``across_instances``        ``AcrossInstancesResult`` (:func:`latentprobe.geometry.across_instances`)
==========================  =========================================================================

Examples
--------
>>> import numpy as np
>>> from latentprobe.geometry import collapse_table
>>> from latentprobe.report import Report, result_kind
>>> table = collapse_table(np.random.default_rng(0).normal(size=(12, 4, 8)))
>>> result_kind(table)
'collapse'
>>> Report("r").add_result(table, title="Collapse")
Report(title='r', blocks=4, headings=1, figures=1)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from latentprobe.errors import ReportError

__all__ = ["OOD_CONDITIONS", "OOD_NOTE", "SECTIONS", "add_result", "once", "ood_note", "result_kind"]

#: Conditions that change the input distribution (the latent positions are removed or only the
#: markers are kept): a flip under them is not evidence that the latents' content matters.
OOD_CONDITIONS: frozenset[str] = frozenset({"no_latents", "drop_latents", "markers_only"})

#: The note added wherever an :data:`OOD_CONDITIONS` condition appears.
OOD_NOTE = (
    "{names} removes the latent positions (only the markers remain), so the answer is decoded from a "
    "shorter input the model never saw in training: an out-of-distribution change. A flip or accuracy change "
    "there shows that the model reads *something* at those positions (their presence, the positions they "
    "shift, the attention they take), not that their *content* matters. A model whose answer cannot read "
    "the latents' content (the `bypass` toy) can still flip under it. For the content, read the interventions "
    "that keep the positions and replace the vectors (`swap`, `zero`, `add_noise`, `mean_ablate`)."
)

_ZY_METRICS = ("accuracy", "accuracy_change", "flip_rate", "kl")
_ZY_KEYS = {"intervention", "mode", "metric", "estimate", "ci_low", "ci_high"}
_XZ_KEYS = {"perturbation", "source", "step", "layer", "metric", "estimate"}
_MED_KEYS = {"effect", "kind", "estimate"}
_SWEEP_KEYS = {"target", "layer", "step", "score"}
_CMP_KEYS = {"representation", "score"}
_COLLAPSE_KEYS = {"source", "centering", "within_instance_mean", "across_instance_mean"}


def result_kind(result: Any) -> str:
    """The section kind of ``result`` (a key of :data:`SECTIONS`).

    Raises
    ------
    ReportError
        ``result`` is none of the kinds listed in the module docstring.
    """
    name = type(result).__name__
    by_type = {"XZResult": "x_to_z", "ZYResult": "z_to_y", "MediationResult": "mediation",
               "ProbeSweepResult": "probe_sweep", "WithinInstanceResult": "within_instance",
               "AcrossInstancesResult": "across_instances"}
    if name in by_type:
        return by_type[name]
    if isinstance(result, pd.DataFrame):
        cols = set(map(str, result.columns))
        for keys, kind in ((_ZY_KEYS, "z_to_y"), (_XZ_KEYS, "x_to_z"), (_MED_KEYS, "mediation"),
                           (_SWEEP_KEYS, "probe_sweep"), (_CMP_KEYS, "probe_comparison"),
                           (_COLLAPSE_KEYS, "collapse")):
            if keys <= cols:
                return kind
        raise ReportError(f"add_result: a table with columns {sorted(cols)} is not a result this report knows; "
                          "pass an XZResult, ZYResult, MediationResult, ProbeSweepResult, a "
                          "compare_representations or collapse_table frame, or add it with add_table.")
    raise ReportError(f"add_result: cannot describe a {name}; pass an XZResult, ZYResult, MediationResult, "
                      "ProbeSweepResult, WithinInstanceResult, AcrossInstancesResult or a result table.")


def _summary(result: Any, attr: str = "summary") -> pd.DataFrame:
    return result if isinstance(result, pd.DataFrame) else getattr(result, attr)


def _drops(report: Any, result: Any) -> None:
    counts = getattr(result, "drop_counts", None)
    if not callable(counts):
        return
    dropped = counts()
    if dropped:
        lines = [f"- `{cond}`: " + ", ".join(f"{n} {reason}" for reason, n in reasons.items())
                 for cond, reasons in dropped.items()]
        report.add_note("Examples left out, per condition:\n\n" + "\n".join(lines), kind="warning",
                        title="Dropped examples")


def once(report: Any, key: str, text: str, *, again: str | None = None, kind: str = "info",
         title: str | None = None) -> None:
    """Add a note the first time ``key`` comes up in ``report``; later, ``again`` (a short reminder) if given."""
    seen = report.__dict__.setdefault("_notes_seen", set())
    if key not in seen:
        seen.add(key)
        report.add_note(text, kind=kind, title=title)
    elif again:
        report.add_note(again, kind=kind, title=title)


def ood_note(report: Any, conditions: Any) -> None:
    """Add :data:`OOD_NOTE` when any of ``conditions`` is out of distribution (:data:`OOD_CONDITIONS`);
    the full note once per report, a short reminder after that."""
    names = sorted({str(c) for c in conditions} & OOD_CONDITIONS)
    if names:
        listed = ", ".join(f"`{n}`" for n in names)
        once(report, "ood:" + ",".join(names), OOD_NOTE.format(names=listed), kind="warning",
             title="Out of distribution: " + ", ".join(names),
             again=f"{listed}: an out-of-distribution change (the latent positions are removed); a flip shows "
                   "that the model reads something at those positions, not that their content matters.")


def _x_to_z(report: Any, result: Any, title: str | None, level: int) -> None:
    from latentprobe import viz

    s = _summary(result)
    report.add_heading(title or "X → Z: do the latents change with the input?", level)
    report.add_figure(viz.xz_lines(s, layer=_first_layer(s)))
    lat = s[s["source"] == "latent"]
    if len(lat):
        agg = (lat.groupby(["perturbation", "layer", "metric"], sort=False)
               .agg(n=("n", "min"), mean_over_steps=("estimate", "mean"), min_step=("estimate", "min"),
                    max_step=("estimate", "max")).reset_index())
        report.add_table(agg, caption="Latents: the per-step estimates (mean over examples) summarised over "
                         "latent steps. cosine: 1 = unchanged; rel_l2: 0 = unchanged.")
    base = s[s["source"] != "latent"]
    if len(base):
        keep = [c for c in ("perturbation", "source", "layer", "metric", "n", "estimate", "ci_low", "ci_high") if c in base]
        report.add_table(base[keep], caption="The same comparison at prompt positions (baselines).")
    ood_note(report, s["perturbation"])
    _drops(report, result)


def _first_layer(s: pd.DataFrame) -> Any:
    layers = list(dict.fromkeys(s.loc[s["source"] == "latent", "layer"]))
    return None if len(layers) <= 2 else [layers[0], layers[-1]]


def _z_to_y(report: Any, result: Any, title: str | None, level: int) -> None:
    from latentprobe import viz

    s = _summary(result)
    report.add_heading(title or "Z → Y: does the output change when the latents are intervened on?", level)
    metrics = [m for m in _ZY_METRICS if (s["metric"] == m).any()]
    if (s["mode"] != "run").any() and metrics:
        report.add_figure(viz.zy_bars(s, metrics=metrics))
    keep = [c for c in ("intervention", "mode", "metric", "n", "estimate", "ci_low", "ci_high", "p_value", "note")
            if c in s.columns]
    table = s[s["metric"].isin(metrics)][keep] if metrics else s[keep]
    report.add_table(table, caption="accuracy and flip_rate: fractions of examples; accuracy_change: "
                     "intervention − control (fraction; 0.1 = 10 percentage points), McNemar exact p; kl: "
                     "KL(control ‖ intervention) of the first answer token, nats. Control: the intervention "
                     "`none` in the same mode; mode `run`: the original run.")
    config = getattr(result, "config", {}) or {}
    conditions = list(s["intervention"]) + (["drop_latents"] if config.get("drop_latents") else [])
    ood_note(report, conditions)
    _drops(report, result)


def _mediation(report: Any, result: Any, title: str | None, level: int) -> None:
    from latentprobe import viz

    s = _summary(result)
    treatment = s["treatment"].iloc[0] if "treatment" in s.columns and len(s) else None
    report.add_heading(title or "Mediation: TE, NDE, NIE" + (f" ({treatment})" if treatment else ""), level)
    effects = s[s["kind"] == "effect"]
    if len(effects):
        report.add_figure(viz.decomposition_bars(effects))
    keep = [c for c in ("effect", "kind", "n", "estimate", "ci_low", "ci_high", "p_value", "note") if c in s]
    report.add_table(s[keep], caption="Effects (kind `effect`): treated − clean on the outcome; levels (kind "
                     "`level`): the mean outcome in each condition. NDE: input treated, latents held clean; NIE: "
                     "input clean, latents from the treated run.")
    note = getattr(result, "proportion_note", "")
    if note:
        report.add_note(str(note), title="Proportion mediated")
    ood_note(report, [treatment] if treatment else [])
    _drops(report, result)


def _probe_sweep(report: Any, result: Any, title: str | None, level: int) -> None:
    from latentprobe import viz

    s = _summary(result, "scores")
    report.add_heading(title or "Probes: where is the target linearly decodable?", level)
    for target in dict.fromkeys(s["target"]):
        sub = s[s["target"] == target]
        report.add_figure(viz.probe_heatmap(sub), caption=None)
        best = sub.sort_values("score", ascending=False).head(10)
        report.add_table(best, caption=f"Target `{target}`: the ten best (layer, step) cells by held-out score.")
    _probe_note(report)


def _probe_note(report: Any) -> None:
    once(report, "probe", "A probe's score shows that information is linearly decodable, not that the model "
         "uses it; cells are not corrected for multiple comparisons.", title="What a probe does not show")


def _probe_comparison(report: Any, result: Any, title: str | None, level: int) -> None:
    from latentprobe import viz

    report.add_heading(title or "Probes: representations compared", level)
    report.add_figure(viz.probe_controls(result))
    report.add_table(result, caption="Held-out score per representation with its baselines (majority class, "
                     "shuffled labels, control task; selectivity = score − control).")
    _probe_note(report)


def _collapse(report: Any, result: Any, title: str | None, level: int) -> None:
    from latentprobe import viz

    report.add_heading(title or "Collapse: how alike are the latents?", level)
    report.add_figure(viz.collapse_bars(result))
    report.add_table(result, caption="Collapse statistics per source and centring: cosines in [−1, 1]; "
                     "effective rank and participation ratio of all vectors pooled; mean L2 norm.")
    once(report, "collapse", "A high cosine after centring is not by itself collapse; compare with the baselines.",
         title="Reading collapse")


def _within(report: Any, result: Any, title: str | None, level: int) -> None:
    from latentprobe import viz

    report.add_heading(title or "Similarity between latent steps", level)
    report.add_figure(viz.similarity_heatmap(result))
    report.add_figure(viz.consecutive_similarity(result))


def _across(report: Any, result: Any, title: str | None, level: int) -> None:
    from latentprobe import viz

    report.add_heading(title or "Similarity across examples", level)
    report.add_figure(viz.across_instance_summary(result))


#: Section builder per result kind: ``builder(report, result, title, level)``.
SECTIONS: dict[str, Callable[[Any, Any, str | None, int], None]] = {
    "x_to_z": _x_to_z, "z_to_y": _z_to_y, "mediation": _mediation, "probe_sweep": _probe_sweep,
    "probe_comparison": _probe_comparison, "collapse": _collapse, "within_instance": _within,
    "across_instances": _across,
}


def add_result(report: Any, result: Any, *, title: str | None = None, level: int = 2) -> None:
    """Add the standard section of ``result`` to ``report`` (see the module docstring for the kinds).

    ``title`` replaces the default heading; ``level`` (2, 3 or 4) is the heading's level, e.g. 3 for
    one model's result under a section of several.

    Raises
    ------
    ReportError
        ``result`` is not a kind this module knows, or its table has no rows.
    """
    if level not in (2, 3, 4):
        raise ReportError(f"add_result: level must be 2, 3 or 4, got {level!r}.")
    kind = result_kind(result)
    table = result if isinstance(result, pd.DataFrame) else getattr(result, "summary", None)
    if isinstance(table, pd.DataFrame) and table.empty:
        raise ReportError(f"add_result: the {kind} result has no rows; there is nothing to report.")
    SECTIONS[kind](report, result, title, level)
