"""Static export of a report's figures (PNG, SVG, PDF) through kaleido, an optional dependency.

``pip install latentprobe[export]`` installs kaleido (>= 1), which drives a Chrome/Chromium it
finds on the machine.  Without kaleido, :func:`export_figures` refuses before writing anything.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Sequence

from latentprobe.errors import ExportDependencyError, ReportError
from latentprobe.validate import number

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go


class FigureSource(Protocol):
    """What :func:`export_figures` reads (:class:`latentprobe.report.Report` is one)."""

    @property
    def figures(self) -> Sequence[tuple[int, go.Figure, str | None]]:
        """``(number, figure, caption)`` of every figure, in page order."""

__all__ = ["FORMATS", "check_export", "export_figures"]

#: Static formats :func:`export_figures` writes.
FORMATS: tuple[str, ...] = ("png", "svg", "pdf")


def check_export(format: str) -> None:
    """Refuse an unknown ``format`` or a missing kaleido (before any work is done).

    Parameters
    ----------
    format : str
        The export format.

    Raises
    ------
    ReportError
        ``format`` is not one of :data:`FORMATS`.
    ExportDependencyError
        kaleido is not installed.
    """
    if format not in FORMATS:
        raise ReportError(f"static export format must be one of {list(FORMATS)}, got {format!r}.")
    if importlib.util.find_spec("kaleido") is None:
        raise ExportDependencyError(
            f"writing figures as {format} needs the optional package kaleido, which is not installed; "
            "run `pip install latentprobe[export]` (kaleido also needs Chrome or Chromium on the machine), "
            "or leave static_dir unset to write only the HTML report."
        )


def export_figures(report: FigureSource, folder: str | os.PathLike[str], *, format: str = "png",
                   scale: float = 2.0) -> list[Path]:
    """Write every figure of ``report`` to ``folder`` as ``figure-<n>.<format>`` (n as in the page).

    Parameters
    ----------
    report : Report
        The report whose figures are written.
    folder : path
        Output folder (created when missing).
    format : {"png", "svg", "pdf"}
        Static format.
    scale : float, default 2
        Pixel scale of raster output.

    Returns
    -------
    list of Path
        The files written, in figure order.

    Raises
    ------
    ReportError
        ``format`` is unknown or ``scale`` is not positive.
    ExportDependencyError
        kaleido is not installed (``pip install latentprobe[export]``).
    """
    check_export(format)
    number(scale, "scale", minimum=0, exclusive_minimum=True, hint="e.g. 2 doubles the pixels", error=ReportError)
    import plotly.io as pio

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, fig, _caption in report.figures:
        path = out / f"figure-{number}.{format}"
        width = None if fig.layout.width else 1000
        pio.write_image(fig, path, format=format, scale=scale, width=width)
        paths.append(path)
    return paths
