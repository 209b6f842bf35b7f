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


# --------------------------------------------------------------------------- #
# Escaping, Markdown, tables, captions, export
# --------------------------------------------------------------------------- #
def test_user_text_is_escaped_everywhere():
    fig = _figures()[0]
    fig.update_layout(title_text="fig " + EVIL)
    rep = Report("T " + EVIL, subtitle="S " + EVIL)
    rep.add_heading("H " + EVIL)
    rep.add_text("M " + EVIL + "\n\n- item " + EVIL + "\n\n[link](javascript:alert(1)) <img src=x onerror=alert(1)>")
    rep.add_figure(fig, caption="C " + EVIL)
    rep.add_table(pd.DataFrame({"col " + EVIL: [EVIL]}), caption="TC " + EVIL, formats={"x": "{:.2f}"})
    rep.add_note("N " + EVIL, title="NT " + EVIL)
    rep.add_key_values({"K " + EVIL: EVIL}, caption="KC " + EVIL)
    doc = rep.to_html()
    assert "<script>alert" not in doc and "<img" not in doc and 'href="javascript' not in doc
    # title (twice), subtitle, heading (+ TOC), text (2), caption, column, cell, table caption, note (2), kv (3)
    escaped = doc.count("&lt;script&gt;alert(")
    assert escaped >= 16
    assert "<li>item &lt;script&gt;" in doc  # Markdown lists still render


def test_tables_drop_the_index_and_put_key_columns_first():
    df = pd.DataFrame({"note": ["", ""], "estimate": [0.123456, 12345.6], "ci_low": [0.1, 1.0],
                       "ci_high": [0.2, 2.0], "n": [10, 20], "mode": ["redecode", "replay"],
                       "intervention": ["zero", "swap"], "p_value": [0.000123, 0.5]}, index=[5, 9])
    doc = Report("t").add_table(df).to_html()
    head = re.findall(r"<th[^>]*>(.*?)</th>", re.search(r"<thead>(.*?)</thead>", doc, re.S).group(1))
    assert head == ["intervention", "mode", "n", "estimate", "95% CI", "p_value", "note"]
    assert ">0.123<" in doc and ">12,346<" in doc and "[0.100, 0.200]" in doc and ">0.000123<" in doc
    assert ">5<" not in doc and ">9<" not in doc  # the index is not a column
    named = Report("t").add_table(df.rename_axis("variant")).to_html()
    assert re.findall(r"<th\b[^>]*>(.*?)</th>", named)[0] == "variant"
    wide = pd.DataFrame({"variant": ["v"], "intervention": ["zero"], **{c: [1.0] for c in "abcdefg"}})
    doc = Report("t").add_table(wide).to_html()
    assert doc.count('class="sticky"') == 2 and doc.count('class="sticky last-key"') == 2
    assert re.search(r"\.table-wrap \{[^}]*overflow-x: auto", doc)


def test_figures_get_their_own_caption_by_default():
    doc = Report("t").add_figure(_figures()[1]).to_html()
    assert "<strong>Figure 1.</strong> Collapse statistics of the latents" in doc


def test_export_needs_kaleido(tmp_path, monkeypatch):
    from latentprobe.errors import ExportDependencyError, LatentProbeError
    from latentprobe.report import export_figures

    monkeypatch.setattr("latentprobe.report.export.importlib.util.find_spec", lambda name: None)
    rep, _ = _report()
    with pytest.raises(ExportDependencyError, match=r"pip install latentprobe\[export\]") as err:
        export_figures(rep, tmp_path / "figs")
    assert isinstance(err.value, (LatentProbeError, ImportError))
    with pytest.raises(ExportDependencyError):
        rep.write(tmp_path / "r.html", static_dir=tmp_path / "figs")
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "figs").exists()  # refused before any work
    with pytest.raises(ValueError, match="png"):
        export_figures(rep, tmp_path, format="jpg")


# --------------------------------------------------------------------------- #
# Rendering in a headless browser, offline
# --------------------------------------------------------------------------- #
def chromium_dom(path, query: str = "") -> str:
    """The DOM of ``path`` (with ``?query`` when given) after scripts ran, from headless Chromium with every
    network fetch failing."""
    import shutil
    import subprocess

    exe = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    if exe is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install -y chromium; .ci/run installs it)")
    out = subprocess.run(
        [exe, "--headless", "--disable-gpu", "--no-sandbox", "--proxy-server=127.0.0.1:9",
         "--proxy-bypass-list=<-loopback>", "--virtual-time-budget=10000", "--dump-dom",
         path.as_uri() + (f"?{query}" if query else "")],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def plot_divs(dom: str) -> dict[str, str]:
    """``{div id: its inner HTML}`` of every figure's plot div."""
    starts = [(m.group(1), m.start()) for m in re.finditer(r'<div id="(lp-figure-\d+)"', dom)]
    ends = [s for _, s in starts[1:]] + [len(dom)]
    return {name: dom[start:end] for (name, start), end in zip(starts, ends)}


def test_every_plot_is_drawn_in_headless_chromium(tmp_path):
    rep, figs = _report()
    path = rep.write(tmp_path / "r.html")
    dom = chromium_dom(path)
    divs = plot_divs(dom)
    assert sorted(divs) == ["lp-figure-1", "lp-figure-2"]
    for name, html in divs.items():
        assert '<svg class="main-svg"' in html, f"{name} was not drawn"
        assert 'class="plot-container plotly"' in html
    assert "<script>alert" not in dom  # the escaped title stayed text


def test_provenance_shows_the_effective_decoding_settings_and_their_sources():
    from latentprobe.engine.decoding import CheckpointGeneration, effective_generation
    from latentprobe.errors import ReportError
    from latentprobe.presets import get_preset
    from latentprobe.report import Report

    ck = CheckpointGeneration.from_dict({"do_sample": True, "temperature": 1e-06, "repetition_penalty": 1.05,
                                         "eos_token_id": [151645, 151643]}, source="ckpt/generation_config.json")
    _, record = effective_generation("published", get_preset("mirage"), ck, tokenizer_eos=151645)
    html = Report("r").add_provenance(generation={"generation": record}).to_html()
    assert "Decoding" in html and "1.05 (checkpoint)" in html and "0.7 (published)" in html
    assert "50 (transformers default)" in html and "[151645, 151643] (checkpoint)" in html
    assert "ckpt/generation_config.json" in html
    with pytest.raises(ReportError, match="generation must be"):
        Report("r").add_provenance(generation=3)
