"""The main job: the demo on the shipped toys, small."""

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
