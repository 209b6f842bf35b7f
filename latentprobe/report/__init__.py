"""Self-contained HTML reports fit for a paper's appendix.

:class:`Report` collects headings, Markdown text, tables, figures and notes and writes them to ONE
HTML file that opens without a network connection: the page is a Jinja2 template
(``templates/report.html.j2``, autoescaped), text is CommonMark rendered by markdown-it-py with raw
HTML disabled (so user text is always escaped), plotly.js is embedded inline once (only when the
report has a figure), the stylesheet is inline, and nothing is loaded from elsewhere.

* Figures get their caption from the figure (:func:`latentprobe.viz.caption_for`) unless one is given.
* Tables show no index column, put the key columns first (condition, intervention, mode, ... then
  ``n``, estimate, ``95% CI``, ``p_value``), round to three significant digits and scroll inside
  their own box with the key columns kept in view.
* :meth:`Report.add_result` adds the standard section of an analysis result (the section its
  analysis record declares, :mod:`latentprobe.analyses`), notes included (e.g. that ``no_latents`` is an
  out-of-distribution change); :meth:`Report.add_provenance` records settings, model, spec, data
  sample and software versions.
* :func:`export_figures` (or ``Report.write(path, static_dir=...)``) writes the figures as PNG,
  SVG or PDF with kaleido (``pip install latentprobe[export]``).

Example
-------
>>> import numpy as np
>>> from latentprobe import viz
>>> from latentprobe.report import Report
>>> from latentprobe.geometry import within_instance
>>> result = within_instance(np.random.default_rng(0).normal(size=(24, 6, 16)), n_boot=100)
>>> rep = Report("Latent collapse on toy shapes", subtitle="K = 6 latent steps")
>>> rep.add_heading("Similarity").add_figure(viz.similarity_heatmap(result))
Report(title='Latent collapse on toy shapes', blocks=2, headings=1, figures=1)
>>> rep.add_note("n = 24 instances: intervals are wide.", kind="warning")
Report(title='Latent collapse on toy shapes', blocks=3, headings=1, figures=1)
>>> rep.to_html().count("<script")  # plotly.js once, then one per figure
2
>>> "Figure 1.</strong> Cosine similarity between latent steps" in rep.to_html()
True

``rep.write("report.html")`` writes the same document to one file, atomically.
"""

from latentprobe.report.export import FORMATS, export_figures
from latentprobe.report.page import Report, markdown, markdown_inline
from latentprobe.report.provenance import software_versions
from latentprobe.report.sections import OOD_CONDITIONS, OOD_NOTE

__all__ = [
    "Report",
    "export_figures",
    "FORMATS",
    "software_versions",
    "OOD_CONDITIONS",
    "OOD_NOTE",
    "markdown",
    "markdown_inline",
]
