"""The probing example scripts run with --quick, write their tables and figures, and print summaries whose
numbers match the toys' planted truth (blind latents cannot see the image; mediated latents carry it)."""

import re
import runpy
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

PROBING = Path(__file__).resolve().parents[1] / "examples" / "probing"
pytestmark = pytest.mark.slow


def _main(script, monkeypatch):
    monkeypatch.syspath_prepend(str(PROBING.parent))
    monkeypatch.syspath_prepend(str(PROBING))
    return runpy.run_path(str(PROBING / script), run_name="example")["main"]


def _summary(out: str) -> str:
    lines = [ln for ln in out.splitlines() if ln.startswith("summary")]
    assert lines, out
    return "\n".join(lines)


def _num(text: str, pattern: str) -> float:
    m = re.search(pattern, text)
    assert m, (pattern, text)
    return float(m.group(1))


def test_gap_on_blind_has_the_planted_sign(tmp_path, monkeypatch, capsys):
    res = _main("gap.py", monkeypatch)(["--quick", "--out", str(tmp_path)])
    s = _summary(capsys.readouterr().out)
    majority, latents = _num(s, r"majority ([\d.]+)"), _num(s, r"latents ([\d.]+)")
    image, image_gap = _num(s, r"image ([\d.]+)"), _num(s, r"image [\d.]+ \(gap ([-+][\d.]+)\)")
    assert latents <= majority + 0.1  # blind latents cannot attend to the image: no better than the majority class
    assert image >= majority + 0.25 and image_gap < -0.2  # the image positions decode the colour: a negative gap
    gap = pd.read_csv(tmp_path / "gap.csv").set_index("position_group")
    assert gap.loc["image", "gap_ci_high"] < 0 and gap.loc["image", "gap"] == pytest.approx(image_gap, abs=5e-4)
    assert len(pd.read_csv(tmp_path / "scores.csv")) == len(res.scores) == 6  # layer 4: 4 latent steps + 2 groups
    assert (tmp_path / "gap.parquet").is_file() and (tmp_path / "gap.html").stat().st_size > 1000


def test_gap_on_mediated_latents_decode(monkeypatch, capsys):
    _main("gap.py", monkeypatch)(["--quick", "--variant", "mediated"])
    s = _summary(capsys.readouterr().out)
    assert _num(s, r"latents ([\d.]+)") >= 0.9  # mediated latents carry the image
    assert _num(s, r"image [\d.]+ \(gap ([-+][\d.]+)\)") > 0.2


def test_attributes_mediated_is_selective(tmp_path, monkeypatch, capsys):
    scores = _main("attributes.py", monkeypatch)(["--quick", "--numeric", "--out", str(tmp_path)])
    s = _summary(capsys.readouterr().out)
    assert _num(s, r"target_colour: best score ([\d.]+)") >= 0.9
    assert _num(s, r"target_colour: .*selectivity \+([\d.]+) \[\+([\d.]+)") >= 0.5
    assert _num(s, r"target_colour: .*selectivity [-+][\d.]+ \[\+([\d.]+)") > 0.3
    assert set(scores["target"]) == {"target_colour", "count_red"}
    num = scores[scores["target"] == "count_red"]
    assert (num["task"] == "regression").all() and (num["control"].abs() < 0.2).all()  # shuffled-target control
    back = pd.read_csv(tmp_path / "scores.csv")
    assert len(back) == len(scores) == 16 and (tmp_path / "target_colour_selectivity.html").is_file()


def test_attributes_blind_is_at_chance(monkeypatch, capsys):
    scores = _main("attributes.py", monkeypatch)(["--quick", "--variant", "blind"])
    capsys.readouterr()
    best = scores.loc[scores["score"].idxmax()]
    assert best["score"] <= best["majority"] + 0.15 and best["selectivity_ci_low"] < 0.15


def test_latent_only_mediated(tmp_path, monkeypatch, capsys):
    res = _main("latent_only.py", monkeypatch)(["--quick", "--out", str(tmp_path)])
    s = _summary(capsys.readouterr().out)
    blank, only = _num(s, r"blank ([\d.]+)"), _num(s, r"latents_only ([\d.]+)")
    assert only > blank + 0.3 and _num(s, r"p ([\d.e+-]+)") < 1e-3  # mediated latents carry the image
    assert only == pytest.approx(res.summary.set_index("condition").loc["latents_only", "accuracy"], abs=5e-4)
    assert len(pd.read_csv(tmp_path / "rows.csv")) == len(res.rows) and (tmp_path / "latent_only.html").is_file()


def test_intermediate_values_on_a_coconut_trace(tmp_path, monkeypatch, capsys):
    scores = _main("intermediate.py", monkeypatch)(["--quick", "--out", str(tmp_path)])
    s = _summary(capsys.readouterr().out)
    # a + b is a sum over the question's tokens: linearly decodable from their mean at the embedding layer
    assert _num(s, r"step 0 from the question \(layer 0\) R\^2 ([\d.]+)") >= 0.9
    assert _num(s, r"step 0 .*\(control ([-+][\d.]+)\)") < 0.1
    assert set(scores["target"]) == {"step 0", "step 1", "answer"} and (scores["task"] == "regression").all()
    assert set(scores["position_group"]) == {"latents", "question"}
    assert (tmp_path / "scores.csv").is_file() and (tmp_path / "step_0_latents.html").is_file()


@pytest.mark.parametrize("script", ["attributes.py", "gap.py", "intermediate.py", "latent_only.py"])
def test_help_shows_quick_out_and_defaults(script):
    out = subprocess.run([sys.executable, str(PROBING / script), "--help"], capture_output=True, text=True,
                         timeout=120, cwd=PROBING.parents[1])
    assert out.returncode == 0, out.stderr
    assert "--quick" in out.stdout and "--out" in out.stdout and "(default:" in out.stdout
