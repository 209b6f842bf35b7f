"""Report parts of the causal sections that read measured columns: the out-of-distribution table and
note of Z -> Y (:func:`zy_ood_section`, :data:`ZY_OOD_NOTE`) and the pre-latent text split of X -> Z
(:func:`prefix_section`).

The thresholds are :data:`latentprobe.causal.ood.NN_THRESHOLD` and :data:`latentprobe.causal.ood.NORM_BAND`;
``docs/howto/interventions.md`` ("Which interventions stay in distribution") lists the measurements they were
chosen from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from latentprobe.report.sections import once

if TYPE_CHECKING:
    from latentprobe.analyses.base import ReportSink

__all__ = ["ZY_OOD_NOTE", "CONTENT_ADVICE", "MIN_OOD_EXAMPLES", "zy_ood_table", "zy_ood_section", "prefix_section"]

#: What to read for the latents' content, from the measurements of ``docs/howto/interventions.md``.
CONTENT_ADVICE = (
    "For the latents' *content*, read `swap`: it feeds another example's clean latents (in distribution by "
    "construction, nearest-neighbour ratio 0). `zero` is not a content test: on the shipped toys and on "
    "SmolLM2-135M, `zero`, `near_zero`, `shared_tensor`, `replace_noise`, `random_direction` and `add_noise` put "
    "the latents 3-14x (toys, 16-64 examples) and 30-45x (SmolLM2, 48 examples) the clean nearest-neighbour "
    "distance from every clean latent, or at norm 0, and test robustness to an out-of-distribution input. "
    "`swap_placebo` is usually out of distribution too (4-10x on SmolLM2 and three of the toys, 2.8 on `blind`): "
    "a swap that changes the answer more than a flagged placebo does so while staying in distribution. `mean_ablate` and `repeat_first` depend on the model: read their "
    "rows of the table above."
)

#: The note of a Z -> Y section with flagged conditions (``str.format`` over ``{names}``, ``{nn}``, ``{lo}``, ``{hi}``).
ZY_OOD_NOTE = (
    "{names}: the latents fed under these conditions are out of distribution, as measured on this run: their "
    "median distance to the nearest clean latent of another example (same step) is more than {nn}x the clean "
    "latents' own leave-one-out nearest-neighbour distance, or their median norm is outside {lo}-{hi}x the "
    "clean median norm (`no_latents` removes the latent positions altogether). A flip or accuracy change there "
    "shows that the model reacts to an input it never produces, not that the latents' content matters; a "
    "model whose answer cannot read the latents' content (the `bypass` toy) can still flip under such inputs. "
    + CONTENT_ADVICE
)


def zy_ood_table(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per intervention x mode of a Z -> Y summary: ``intervention, mode, ood_nn_ratio,
    ood_norm_ratio, ood`` (the original run's row left out; empty for summaries without the columns).

    Parameters
    ----------
    summary : pd.DataFrame
        :class:`~latentprobe.schema.ZY_SUMMARY`.

    Returns
    -------
    pandas.DataFrame
    """
    cols = ["intervention", "mode", "ood_nn_ratio", "ood_norm_ratio", "ood"]
    if summary.empty or not set(cols) <= set(summary.columns):
        return pd.DataFrame(columns=cols)
    s = summary[summary["mode"] != "run"]
    return s[cols].drop_duplicates(["intervention", "mode"]).reset_index(drop=True)


#: Below this many clean examples the nearest-neighbour ratio is too coarse to separate (8 toy examples: 1.1-2.1).
MIN_OOD_EXAMPLES = 16


def zy_ood_section(report: ReportSink, summary: pd.DataFrame, n_kept: int | None = None) -> list[str]:
    """The out-of-distribution table of a Z -> Y section and, when a condition is flagged, its note
    (in full once per report, a reminder after).

    Parameters
    ----------
    report : ReportSink
        The report.
    summary : pd.DataFrame
        :class:`~latentprobe.schema.ZY_SUMMARY`.
    n_kept : int or None
        The clean examples the score compares with (``config["n_kept"]``); below :data:`MIN_OOD_EXAMPLES`
        a warning says the ratio cannot separate.

    Returns
    -------
    list[str]
        The flagged interventions (each once, in table order).
    """
    from latentprobe.causal.ood import NN_THRESHOLD, NORM_BAND

    table = zy_ood_table(summary)
    if table.empty:
        return []
    lo, hi = NORM_BAND
    report.add_table(table, caption=(
        "How far the latents fed under each condition are from the clean ones (median over examples and the "
        "steps the condition changes). ood_nn_ratio: distance to the nearest clean latent of another example "
        "at the same step, over the clean latents' median leave-one-out distance (the control `none` is 1 by "
        f"construction, `swap` 0); ood_norm_ratio: norm over the clean median norm. ood: ratio above "
        f"{NN_THRESHOLD:g}, norm ratio outside {lo:g}-{hi:g}, or no latent positions."))
    if n_kept is not None and n_kept < MIN_OOD_EXAMPLES:
        report.add_note(f"The out-of-distribution score compares with {n_kept} clean examples: with fewer than "
                        f"{MIN_OOD_EXAMPLES} the clean nearest-neighbour distance is so coarse that random vectors "
                        "score like clean latents (8 toy examples: 1.1-2.1), so an unflagged condition is not shown "
                        "to be in distribution.", kind="warning", title="Few examples for the OOD score")
    flagged = list(dict.fromkeys(str(n) for n in table.loc[table["ood"].astype(bool), "intervention"]))
    if flagged:
        listed = ", ".join(f"`{n}`" for n in flagged)
        once(report, "zy-ood:" + ",".join(flagged), ZY_OOD_NOTE.format(names=listed, nn=f"{NN_THRESHOLD:g}",
                                                                     lo=f"{lo:g}", hi=f"{hi:g}"),
             kind="warning", title="Out of distribution: " + ", ".join(flagged),
             again=f"{listed}: out of distribution as measured (table above); a flip shows sensitivity to an "
                   "input the model never produces, not that the latents' content matters.")
    return flagged


def prefix_section(report: ReportSink, result: Any) -> None:
    """How many X -> Z examples generated other text before the open marker than their clean run, and
    the latent comparison per group when some did.

    Parameters
    ----------
    report : ReportSink
        The report.
    result : XZResult or DataFrame
        An X -> Z result (a bare summary adds nothing).
    """
    counts = (getattr(result, "config", {}) or {}).get("prefix_changed") or {}
    if not counts:
        return
    lines = [f"- `{p}`: {c['n_prefix_changed']} of {c['n_kept']} kept examples" for p, c in counts.items()]
    changed = any(c["n_prefix_changed"] for c in counts.values())
    text = ("Examples whose generated text before the open marker changed under the perturbation (their latents "
            "follow another prefix, so their change mixes the input's effect with the text's):\n\n" + "\n".join(lines))
    report.add_note(text, kind="warning" if changed else "info", title="Pre-latent text")
    by = getattr(result, "by_prefix", None)
    if not changed or by is None or by.empty:
        return
    agg = (by.groupby(["perturbation", "prefix_changed", "layer", "metric"], sort=False)
           .agg(n=("n", "min"), mean_over_steps=("estimate", "mean")).reset_index())
    report.add_table(agg, caption="Latents, per group of examples: prefix_changed = False compares latents that "
                     "follow the same text; True, latents after different text. Estimates are means over examples, "
                     "summarised over latent steps (cosine: 1 = unchanged; rel_l2: 0 = unchanged).")
