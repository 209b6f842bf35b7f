"""What the report sections of several analyses share: the out-of-distribution note, notes shown once
per report, dropped-example notes and the probe caveat.

The sections themselves belong to the analyses (:meth:`latentprobe.analyses.Analysis.section`);
:meth:`latentprobe.report.Report.add_result` finds the analysis of a result in the registry.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from latentprobe.analyses.base import ReportSink

__all__ = ["OOD_CONDITIONS", "OOD_NOTE", "once", "ood_note", "drops_note", "probe_note"]

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
    "that keep the positions and feed latents in distribution, as the Z -> Y table measures them (`ood`): "
    "`swap` (another example's clean latents) is; `zero`, `shared_tensor`, `replace_noise` and the other "
    "random replacements are not (docs/howto/interventions.md lists the measurements)."
)


def drops_note(report: ReportSink, result: object) -> None:
    """A warning listing the examples left out per condition and reason (results with ``drop_counts``).

    Parameters
    ----------
    report : ReportSink
        The report.
    result : object
        An analysis result; one without a ``drop_counts()`` method, or with nothing dropped, adds nothing.
    """
    counts = getattr(result, "drop_counts", None)
    if not callable(counts):
        return
    dropped = counts()
    if dropped:
        lines = [f"- `{cond}`: " + ", ".join(f"{n} {reason}" for reason, n in reasons.items())
                 for cond, reasons in dropped.items()]
        report.add_note("Examples left out, per condition:\n\n" + "\n".join(lines), kind="warning",
                        title="Dropped examples")


def once(report: ReportSink, key: str, text: str, *, again: str | None = None, kind: str = "info",
         title: str | None = None) -> None:
    """Add a note the first time ``key`` comes up in ``report``; later, ``again`` (a short reminder) if given.

    Parameters
    ----------
    report : ReportSink
        The report (it remembers the keys seen).
    key : str
        What the note is about; the same key gets the full note once.
    text : str
        The note (Markdown).
    again : str or None
        The reminder added each later time (default: nothing).
    kind : str
        ``"info"`` or ``"warning"``.
    title : str or None
        The note's title (default: by ``kind``).
    """
    seen = report.__dict__.setdefault("_notes_seen", set())
    if key not in seen:
        seen.add(key)
        report.add_note(text, kind=kind, title=title)
    elif again:
        report.add_note(again, kind=kind, title=title)


def ood_note(report: ReportSink, conditions: Iterable[str]) -> None:
    """Add :data:`OOD_NOTE` when any of ``conditions`` is out of distribution (:data:`OOD_CONDITIONS`);
    the full note once per report, a short reminder after that.

    Parameters
    ----------
    report : ReportSink
        The report.
    conditions : iterable of str
        The condition names of the section.
    """
    names = sorted({str(c) for c in conditions} & OOD_CONDITIONS)
    if names:
        listed = ", ".join(f"`{n}`" for n in names)
        once(report, "ood:" + ",".join(names), OOD_NOTE.format(names=listed), kind="warning",
             title="Out of distribution: " + ", ".join(names),
             again=f"{listed}: an out-of-distribution change (the latent positions are removed); a flip shows "
                   "that the model reads something at those positions, not that their content matters.")


def probe_note(report: ReportSink) -> None:
    """The caveat of every probe section (once per report).

    Parameters
    ----------
    report : ReportSink
        The report.
    """
    once(report, "probe", "A probe's score shows that information is linearly decodable, not that the model "
         "uses it. The cells of a sweep are one family of tests: call a cell above chance only when its p_holm (or "
         "p_bh) is small; starred cells in the heatmap survive Holm.", title="What a probe does not show")
