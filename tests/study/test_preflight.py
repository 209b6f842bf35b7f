"""What ``latentprobe run`` checks before the model loads, and the folder a failed run leaves: reusable."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from latentprobe import cli
from latentprobe.study import models

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data import builders  # noqa: E402

STUDY = """[study]
name = "pre"
[model]
source = "../ckpt"
preset = "monet"
[data]
benchmark = "vstar"
root = "../vstar"
[generation]
scorer = "choice"
[analyses.probes]
targets = ["{target}"]
"""


class ModelLoaded(AssertionError):
    pass


@pytest.fixture
def no_model(monkeypatch):
    """The model builder fails the test if anything calls it."""

    def refuse(*_a, **_k):
        raise ModelLoaded("the model was loaded before the checks")

    monkeypatch.setattr(models, "build_model", refuse)


def _setup(tmp_path: Path, target: str = "category") -> Path:
    (tmp_path / "ckpt").mkdir()
    builders.vstar(tmp_path / "vstar")
    (tmp_path / "studies").mkdir()
    path = tmp_path / "studies" / "s.toml"
    path.write_text(STUDY.format(target=target))
    return path


def _run(study: Path, out: Path) -> tuple[int, str]:
    res = CliRunner().invoke(cli.main, ["run", str(study), "--out", str(out), "--quiet"], standalone_mode=True,
                             catch_exceptions=False)
    return res.exit_code, res.output


def test_a_bad_probe_target_is_reported_before_the_model_loads(tmp_path, no_model):
    study = _setup(tmp_path, target="nosuch")
    out = tmp_path / "out"
    code, text = _run(study, out)
    assert code == 2 and "StudyError" in text and "no example has the field 'nosuch'" in text, text
    assert not out.exists()
    # fixed, the same --out passes every check (and reaches the model) without --overwrite
    study.write_text(STUDY.format(target="category"))
    with pytest.raises(ModelLoaded):
        CliRunner().invoke(cli.main, ["--debug", "run", str(study), "--out", str(out), "--quiet"], catch_exceptions=False)


def test_a_missing_data_file_is_reported_before_the_model_loads(tmp_path, no_model):
    study = _setup(tmp_path)
    builders.mme_realworld_lite(tmp_path / "mme")
    (tmp_path / "mme" / "imgs" / "TRAIN_1.png").unlink()  # an image the annotations name is gone
    study.write_text(STUDY.format(target="category").replace('benchmark = "vstar"\nroot = "../vstar"',
                                                               'benchmark = "mme-realworld-lite"\nroot = "../mme"'))
    out = tmp_path / "out"
    out.mkdir()  # an empty folder given as --out stays usable
    code, text = _run(study, out)
    assert code == 1 and "DataError" in text and "TRAIN_1.png" in text, text
    assert list(out.iterdir()) == []


def test_choice_scorer_without_options_is_reported_before_the_model_loads(tmp_path, no_model):
    study = _setup(tmp_path)
    folder = tmp_path / "gsm"
    builders.gsm_codi(folder)
    study.write_text(STUDY.format(target="category").replace('benchmark = "vstar"\nroot = "../vstar"',
                                                               'benchmark = "gsm8k-aug"\nroot = "../gsm"'))
    code, text = _run(study, tmp_path / "out")
    assert code == 2 and "'choice' needs each example's options" in text, text
    assert not (tmp_path / "out").exists()
