"""Tests for latentprobe.report (figures made from real similarity output)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from plotly.offline import get_plotlyjs

from latentprobe import viz
from latentprobe.report import Report
from latentprobe.geometry import collapse_table, within_instance


def _figures() -> list[go.Figure]:
    lat = np.random.default_rng(0).normal(size=(10, 4, 6))
    return [viz.consecutive_similarity(within_instance(lat, n_boot=50)), viz.collapse_bars(collapse_table(lat))]


# --------------------------------------------------------------------------- #
# Report
# --------------------------------------------------------------------------- #
EVIL = "<script>alert('x')</script>"


def _report() -> tuple[Report, list[go.Figure]]:
    figs = _figures()
    rep = Report("Latent probe " + EVIL, subtitle="toy run")
    rep.add_heading("Similarity")
    rep.add_text("The **latent** steps are similar; see `within_instance`.\n\nSecond " + EVIL)
    rep.add_figure(figs[0], caption="Consecutive cosine")
    rep.add_heading("Interventions", level=3)
    rep.add_figure(figs[1])
    table = pd.DataFrame({"name " + EVIL: ["a", EVIL], "value": [0.123456, np.nan]})
    rep.add_table(table, caption="Table " + EVIL)
    rep.add_note("n = 12: the intervals are unreliable " + EVIL, kind="warning")
    rep.add_key_values({"model " + EVIL: EVIL, "n": 12, "p": 0.0123456})
    rep.add_heading("Similarity")  # duplicate heading text gets its own anchor
    return rep, figs


def test_report_writes_self_contained_file(tmp_path):
    rep, _ = _report()
    out = rep.write(tmp_path / "sub" / "report.html")
    assert out.exists()
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temp file left
    doc = out.read_text(encoding="utf-8")
    js = get_plotlyjs()
    marker = js[len(js) // 2 : len(js) // 2 + 200]
    assert doc.count(marker) == 1
    assert doc.count(js) == 1
    # one <script> for plotly.js plus one per figure, nothing else
    assert doc.count("<script") == 1 + 2
    assert not re.search(r"<script[^>]*\ssrc\s*=", doc)
    assert "<link" not in doc
    outside = doc.replace(js, "")
    assert 'src="http' not in outside and 'href="http' not in outside
    assert "src='http" not in outside and "href='http" not in outside
    assert 'id="lp-figure-1"' in doc and 'id="lp-figure-2"' in doc
    assert "latentprobe 0.1.0" in doc and "Created " in doc


def test_report_escapes_user_content(tmp_path):
    rep, _ = _report()
    doc = rep.write(tmp_path / "r.html").read_text(encoding="utf-8")
    assert "alert(" in doc  # the text is there ...
    assert "<script>alert" not in doc  # ... but never as markup
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in doc  # template fields (Jinja2 autoescape)
    assert "&lt;script&gt;alert('x')&lt;/script&gt;" in doc  # Markdown text (markdown-it, raw HTML off)
    assert "<strong>latent</strong>" in doc and "<code>within_instance</code>" in doc
    assert "0.123" in doc and "0.123456" not in doc and "—" in doc


def test_report_toc_entry_per_heading():
    rep, _ = _report()
    doc = rep.to_html()
    toc = re.search(r'<nav class="toc".*?</nav>', doc, re.S).group(0)
    entries = re.findall(r'<a href="#([^"]+)">', toc)
    assert entries == ["similarity", "interventions", "similarity-2"]
    for anchor in entries:
        assert f'id="{anchor}"' in doc
    assert 'class="toc-3"' in toc


def test_report_without_figures_has_no_plotly():
    rep = Report("Tables only")
    rep.add_table(pd.DataFrame({"x": range(300)}), max_rows=10)
    doc = rep.to_html()
    assert "<script" not in doc
    assert "Showing the first 10 of 300 rows" in doc
    assert "<nav" not in doc


def test_report_input_checks():
    rep = Report("checks")
    with pytest.raises(ValueError, match="kind"):
        rep.add_note("x", kind="danger")
    with pytest.raises(ValueError, match="level"):
        rep.add_heading("x", level=1)
    with pytest.raises(TypeError):
        rep.add_figure({"data": []})
    with pytest.raises(ValueError, match="float_format"):
        rep.add_table(pd.DataFrame({"a": [1.0]}), float_format="{:d}")
    with pytest.raises(TypeError):
        rep.add_table([1, 2])


def test_module_example_runs():
    import doctest

    import latentprobe.report

    result = doctest.testmod(latentprobe.report)
    assert result.attempted > 0 and result.failed == 0
