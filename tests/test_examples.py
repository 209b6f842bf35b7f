"""The example scripts run end to end on the shipped toy models and write what they print."""

import runpy
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _main(script, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return runpy.run_path(str(EXAMPLES / script), run_name="example")["main"]


def _same_table(csv_path, frame):
    back = pd.read_csv(csv_path)
    assert list(back.columns) == list(frame.columns) and len(back) == len(frame)
    np.testing.assert_allclose(back["estimate"].to_numpy(float), frame["estimate"].to_numpy(float), rtol=1e-9)


def test_lens(tmp_path, monkeypatch, capsys):
    res = _main("lens.py", monkeypatch)(["--quick", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "Logit lens on toy 'mediated': 8 examples, 5 residual layers" in out
    back = pd.read_csv(tmp_path / "trajectory.csv")
    assert len(back) == len(res.trajectory) and set(back.target) == {"answer", "gold"}
    np.testing.assert_allclose(back["median_rank"].to_numpy(float), res.trajectory["median_rank"].to_numpy(float))
    assert (tmp_path / "lens_rank_heatmap.html").stat().st_size > 1000
    assert set(res.cells.position_group) == {"latents", "close", "first_answer"}


def test_xz_similarity(tmp_path, monkeypatch, capsys):
    res = _main("xz_similarity.py", monkeypatch)(["--n", "12", "--n-boot", "200", "--out", str(tmp_path)])
    s = res.summary
    assert set(s["perturbation"]) == {"image_swap", "blank_image", "noise_image", "occlude", "counterfactual",
                                      "question_swap", "instance_swap"}
    latent = s[(s["source"] == "latent") & (s["metric"] == "cosine") & (s["layer"] == 0)]
    # the mediated toy's latents read the image: swapping it moves them
    assert latent.loc[latent["perturbation"] == "image_swap", "estimate"].max() < 0.999
    _same_table(tmp_path / "x_to_z_summary.csv", s)
    out = capsys.readouterr().out
    assert "X -> Z on toy 'mediated' (12 examples)" in out


def test_zy_interventions(tmp_path, monkeypatch, capsys):
    res = _main("zy_interventions.py", monkeypatch)(["--n", "12", "--n-boot", "200", "--out", str(tmp_path)])
    rows = res.rows
    assert {"replay", "propagate", "redecode"} <= set(rows["mode"])
    swap = rows[(rows["intervention"] == "swap") & (rows["mode"] == "redecode")]
    assert len(swap) == 12 and swap["flip"].mean() > 0.3  # mediated: another example's latents change the answer
    _same_table(tmp_path / "z_to_y_summary.csv", res.summary)
    assert "Z -> Y on toy 'mediated': 12 examples" in capsys.readouterr().out


def test_mediation_decomposition(tmp_path, monkeypatch, capsys):
    res = _main("mediation_decomposition.py", monkeypatch)(["--n", "12", "--n-boot", "200", "--out", str(tmp_path)])
    s = res.summary.set_index("effect")
    assert s.loc["NIE", "estimate"] < -0.3 and s.loc["NDE", "estimate"] == 0.0  # mediated: all through the latents
    _same_table(tmp_path / "mediation_summary.csv", res.summary)
    assert f"{s.loc['NIE', 'estimate']:+.3f}" in capsys.readouterr().out


def test_steps(tmp_path, monkeypatch, capsys):
    res = _main("steps.py", monkeypatch)(["--quick", "--counts", "3", "--out", str(tmp_path)])
    m = res.matrix()
    assert (m.to_numpy()[np.tril_indices(len(m), -1)] == 0.0).all()  # entries j < i: the untouched prefix
    moved = res.table[(res.table.condition == "oracle") & (res.table.metric == "moved")].value
    assert len(moved) >= 8 and moved.mean() >= 0.8  # mediated: the counterfactual run's latents carry its answer
    _same_table(tmp_path / "steps_summary.csv", res.summary)
    assert (tmp_path / "influence_heatmap.html").exists()
    assert "Step structure on toy 'mediated': 12 examples" in capsys.readouterr().out


@pytest.mark.parametrize("script", ["xz_similarity.py", "zy_interventions.py", "mediation_decomposition.py", "steps.py",
                                    "patching.py"])
def test_scripts_run_as_commands(script, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setattr(sys, "argv", [script, "--n", "4", "--n-boot", "50", "--random-init"])
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")


@pytest.mark.parametrize("script", ["xz_similarity.py", "zy_interventions.py", "mediation_decomposition.py", "lens.py",
                                    "steps.py", "patching.py"])
def test_help_shows_every_default(script, monkeypatch, capsys):
    import re

    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    monkeypatch.setenv("COLUMNS", "80")  # argparse wraps to the terminal's width
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    assert done.value.code == 0
    stdout = capsys.readouterr().out
    text = " ".join(stdout.split())  # argparse wraps the help lines
    options = [o for o in re.findall(r"(?m)^  (--[a-z-]+)", stdout) if o != "--help"]
    assert "--seed" in options and "--n-boot" in options and len(options) >= 7
    assert text.count("(default: ") == len(options)
    assert "--n N number of test examples (default: " in text and "--variant" in text


def test_attention(tmp_path, monkeypatch, capsys):
    res = _main("attention.py", monkeypatch)(["--quick", "--out", str(tmp_path)])
    assert set(res) == {"toy_blind", "toy_bypass", "toy_mediated"}
    blind, bypass = res["toy_blind"].table, res["toy_bypass"].table
    assert blind.query("query_group == 'latents' and region == 'image'")["mass"].max() == 0.0
    assert bypass.query("query_group == 'answer' and region == 'latents'")["mass"].max() == 0.0
    back = pd.read_csv(tmp_path / "toy_blind_mass.csv")
    assert list(back.columns) == list(blind.columns) and len(back) == len(blind)
    assert (tmp_path / "toy_mediated_regions.html").is_file() and (tmp_path / "toy_mediated_heatmap.html").is_file()
    assert "toy_bypass: mean attention mass per query group" in capsys.readouterr().out


def test_patching(tmp_path, monkeypatch, capsys):
    res = _main("patching.py", monkeypatch)(["--n", "8", "--n-boot", "100", "--quick", "--out", str(tmp_path)])
    t = res.table
    lat = t[(t["position_group"] == "latents") & (t["mode"] == "redecode")]
    assert lat["flip"].mean() >= 0.75  # mediated: the latents carry the image
    _same_table(tmp_path / "patching_summary.csv", res.summary)
    assert (tmp_path / "patching_heatmap.html").exists()
    assert "Activation patching on toy 'mediated': 8 examples" in capsys.readouterr().out
