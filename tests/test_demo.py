"""The main job: the demo on the shipped toys, small."""

import re

from latentprobe.demo import run_demo


def test_demo_writes_report_and_recovers_planted_truths(tmp_path):
    res = run_demo(tmp_path, n_examples=40, variants=["mediated", "bypass"], n_boot=200, progress=False)
    html = res.report_path.read_text()
    assert res.report_path.exists() and "Mediation: TE, NDE, NIE" in html and "<script src=" not in html
    s = res.summary.set_index("variant")
    assert s.loc["bypass", "NIE"] == 0.0 and s.loc["bypass", "zy_swap_flip_rate"] == 0.0
    assert s.loc["mediated", "NIE"] < -0.5 and s.loc["mediated", "accuracy"] > 0.6
    probes = (tmp_path / "probes.csv").read_text()
    assert "random-weights model latents" in probes and "image tokens (mean)" in probes
    for f in ("summary.csv", "decomposition.csv", "z_to_y.csv", "x_to_z.csv", "collapse.csv"):
        assert (tmp_path / f).exists()
    # every figure has a non-empty caption
    n_figures = len(re.findall(r"<figure id=", html))
    captions = re.findall(r"<figcaption><strong>Figure \d+\.</strong> (.*?)</figcaption>", html, re.S)
    assert n_figures >= 10 and len(captions) == n_figures and all(len(c.strip()) > 40 for c in captions)
    # the measured out-of-distribution note sits in the Z -> Y section: zero, shared_tensor and no_latents
    # flagged, the swap not
    zy = html[html.index('id="z-y-latent-interventions"'):html.index('id="x-z-do-the-latents-change-with-the-image"')]
    title = re.search(r"Out of distribution: ([a-z_, ]+)", zy).group(1).split(", ")
    assert {"zero", "shared_tensor", "no_latents"} <= set(title) and "swap" not in title
    assert "<code>zero</code> is not a content test" in zy and "ood_nn_ratio" in zy
    # provenance: settings, model, spec, data sample, software versions
    prov = html[html.index('id="provenance"'):]
    for needle in ("n_boot", "toy:mediated", "Spec", "Data sample", "example ids", "transformers", "nnsight",
                   "sklearn", "plotly", "torch", "python"):
        assert needle in prov, needle
    # tables have no index column and show three significant digits
    assert "<th scope=\"col\"></th>" not in html
