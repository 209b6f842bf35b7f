"""Report.add_result on real analysis results: heading, table, captioned figures, notes."""

from __future__ import annotations

import re

import pytest

from latentprobe.errors import ReportError
from latentprobe.analyses import analysis_for_result
from latentprobe.report import OOD_CONDITIONS, Report


def _figure_captions(doc: str) -> tuple[int, list[str]]:
    n = len(re.findall(r"<figure id=", doc))
    caps = re.findall(r"<figcaption><strong>Figure \d+\.</strong> (.*?)</figcaption>", doc, re.S)
    return n, caps


@pytest.mark.parametrize("name", ["xz", "zy", "med", "within", "across", "sweep", "comparison", "collapse", "patching"])
def test_add_result_adds_a_captioned_section(name, request):
    result = request.getfixturevalue(name)
    rep = Report("r").add_result(result)
    doc = rep.to_html()
    n, caps = _figure_captions(doc)
    assert n >= 1 and len(caps) == n and all(c.strip() for c in caps)
    assert doc.count("<h2 ") == 1
    assert "<th>index</th>" not in doc and "Unnamed" not in doc


def test_add_result_title_level_and_table_form(zy):
    rep = Report("r").add_result(zy, title="mediated", level=3)
    doc = rep.to_html()
    assert '<h3 id="mediated">mediated</h3>' in doc
    head = re.search(r'<table id="table-1"><thead><tr>(.*?)</tr></thead>', doc, re.S).group(1)
    cols = re.findall(r"<th[^>]*>(.*?)</th>", head)
    assert cols[:6] == ["intervention", "mode", "metric", "n", "estimate", "95% CI"]
    assert "ci_low" not in cols and "p_value" in cols
    with pytest.raises(ReportError, match="level"):
        Report("r").add_result(zy, level=5)


def test_out_of_distribution_note_follows_the_measured_flag(zy):
    s = zy.summary
    flagged = list(dict.fromkeys(s.loc[s["ood"] & (s["mode"] != "run"), "intervention"]))
    assert "zero" in flagged and "swap" not in flagged  # zero has norm 0; a swap feeds clean latents
    rep = Report("r").add_result(zy, title="a").add_result(zy, title="b")
    doc = rep.to_html()
    title = "Out of distribution: " + ", ".join(flagged)
    assert doc.count(title) == 2  # full note once, a reminder after
    assert "not that the latents&#x27; content matters" in doc or "not that the latents' content matters" in doc
    assert "<code>zero</code> is not a content test" in doc and "ood_nn_ratio" in doc
    # a summary written before the measured columns keeps the fixed list (no_latents only)
    old = s.drop(columns=["ood_nn_ratio", "ood_norm_ratio", "ood"])
    zero = old[old.intervention == "zero"].assign(intervention="no_latents")
    table = __import__("pandas").concat([old, zero], ignore_index=True)
    doc = Report("r").add_result(table, title="a").add_result(table, title="b").to_html()
    assert "no_latents" in OOD_CONDITIONS
    assert doc.count("Out of distribution: no_latents") == 2
    assert "reads something at those positions, not that their content matters" in doc
    assert "Out of distribution" not in Report("r").add_result(old[old.intervention != "zero"]).to_html()


def test_the_registry_finds_each_result_s_analysis_and_refuses_others(xz, zy, med, within, across, sweep,
                                                                      comparison, collapse):
    assert [analysis_for_result(r).key for r in (xz, zy, med, within, across, sweep, comparison, collapse)] == [
        "x_to_z", "z_to_y", "decompose", "latent_similarity", "latent_similarity", "probes", "representations",
        "collapse"]
    assert [analysis_for_result(r.summary).key for r in (xz, zy, med)] == ["x_to_z", "z_to_y", "decompose"]
    with pytest.raises(ReportError, match="no registered analysis describes a table with columns"):
        Report("r").add_result(__import__("pandas").DataFrame({"a": [1]}))
    with pytest.raises(ReportError, match="no registered analysis describes a int"):
        Report("r").add_result(42)
    with pytest.raises(ReportError, match="no rows"):
        Report("r").add_result(zy.summary.iloc[:0])


def test_provenance_records_model_spec_sample_versions(toy):
    _, runner, _ = toy
    rep = Report("r").add_provenance(settings={"seed": 0, "n_boot": 100}, runner=runner, spec=runner.spec,
                                     sample=[f"ex{i}" for i in range(300)], sample_seed=7)
    doc = rep.to_html()
    assert '<h2 id="provenance">Provenance</h2>' in doc
    for needle in ("LatentRunner", "parameters", runner.spec.name, "sampling seed", "ex0", "(100 more)",
                   "python", "torch", "transformers", "nnsight", "latentprobe", "sklearn", "plotly"):
        assert needle in doc, needle
    with pytest.raises(ReportError, match="sample"):
        Report("r").add_provenance(sample=1.5)
    with pytest.raises(ReportError, match="spec"):
        Report("r").add_provenance(spec=3)


def test_x_to_z_baselines_table_keeps_the_layer(xz):
    s = xz.summary
    base = s[s["source"] != "latent"]
    assert len(base) and base["layer"].nunique() == 2  # two layers: rows would repeat without it
    doc = Report("r").add_result(xz).to_html()
    tables = re.findall(r'<table id="table-\d+"><thead><tr>(.*?)</tr></thead>', doc, re.S)
    heads = [re.findall(r"<th[^>]*>(.*?)</th>", t) for t in tables]
    baseline = next(h for h in heads if "source" in h)
    assert "layer" in baseline
