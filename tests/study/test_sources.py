"""``[model] source`` (and ``base``, ``weights``) resolve like the data roots; hub ids stay hub ids; a hub id the
hub cannot serve becomes a StudyError that says how to point at a local folder."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from latentprobe import cli
from latentprobe.errors import StudyError
from latentprobe.study import config_fingerprint, load_study
from latentprobe.study.sources import is_hub_id, looks_like_path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data import builders  # noqa: E402

REAL = """[study]
name = "r"
[model]
source = "{source}"
preset = "monet"
{extra}
[data]
benchmark = "vstar"
root = "data"
[analyses.z_to_y]
interventions = ["zero"]
"""

TOY = """[study]
name = "t"
[model]
source = "toy:mediated"
{extra}
[data]
benchmark = "toy"
n = 4
[analyses.collapse]
"""


def _write(folder: Path, text: str) -> Path:
    if not (folder / "data").exists():
        builders.vstar(folder / "data")
    path = folder / "s.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("value, hub, path", [
    ("NOVAglow646/Monet-7B", True, False), ("gpt2", True, False), ("zen-E/CODI-gpt2", True, False),
    ("../monet", False, True), ("./ckpt", False, True), ("~/models/x", False, True), ("/abs/ckpt", False, True),
    ("models/monet/v2", False, True), ("a/..", False, True)])
def test_hub_ids_and_paths_are_told_apart(value, hub, path):
    assert is_hub_id(value) is hub and looks_like_path(value) is path


def test_relative_and_home_sources_resolve_and_enter_the_fingerprint(tmp_path, monkeypatch):
    (tmp_path / "ckpt").mkdir()
    study_dir = tmp_path / "studies"
    a = load_study(_write(study_dir, REAL.format(source="../ckpt", extra="")))
    assert a.model.source == str((tmp_path / "ckpt").resolve())
    assert a.to_dict()["model"]["source"] == a.model.source
    monkeypatch.setenv("HOME", str(tmp_path))
    b = load_study(_write(study_dir, REAL.format(source="~/ckpt", extra="")))
    assert b.model.source == a.model.source and config_fingerprint(a) == config_fingerprint(b)
    (tmp_path / "other").mkdir()
    c = load_study(_write(study_dir, REAL.format(source="~/other", extra="")))
    assert config_fingerprint(c) != config_fingerprint(a)


def test_a_folder_beside_the_study_file_wins_over_a_hub_id(tmp_path):
    (tmp_path / "owner" / "name").mkdir(parents=True)
    s = load_study(_write(tmp_path, REAL.format(source="owner/name", extra="")))
    assert s.model.source == str((tmp_path / "owner" / "name").resolve())


def test_hub_ids_are_kept_as_written(tmp_path):
    s = load_study(_write(tmp_path, REAL.format(source="NOVAglow646/Monet-7B", extra="")))
    assert s.model.source == "NOVAglow646/Monet-7B"


@pytest.mark.parametrize("source", ["../monet-replica", "~/models/monet", "./ckpt", "models/a/b"])
def test_a_missing_local_source_names_the_path_tried(tmp_path, monkeypatch, source):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = _write(tmp_path / "studies", REAL.format(source=source, extra=""))
    tried = (Path(source.replace("~", str(tmp_path / "home"))) if source.startswith("~")
             else tmp_path / "studies" / source).resolve()
    with pytest.raises(StudyError) as info:
        load_study(path)
    msg = str(info.value)
    assert "[model] key 'source'" in msg and f"folder {tried} does not exist" in msg and str(path) in msg, msg
    assert load_study(path, check_paths=False).model.source == str(tried)


def test_an_adapter_base_resolves_too(tmp_path):
    (tmp_path / "gpt2-local").mkdir()
    text = REAL.format(source="zen-E/CODI-gpt2", extra='base = "gpt2-local"').replace('"monet"', '"codi"')
    s = load_study(_write(tmp_path, text))
    assert s.model.base == str((tmp_path / "gpt2-local").resolve()) and s.model.source == "zen-E/CODI-gpt2"
    with pytest.raises(StudyError, match=r"\[model\] key 'base': folder .*nope does not exist"):
        load_study(_write(tmp_path, text.replace("gpt2-local", "./nope")))


def test_a_hub_id_the_hub_cannot_serve_says_how_to_point_at_a_folder(tmp_path):
    # the suite runs with HF_HUB_OFFLINE=1: nothing is cached under this id
    path = _write(tmp_path, REAL.format(source="nosuch-owner/nosuch-model", extra=""))
    res = CliRunner().invoke(cli.main, ["run", str(path), "--out", str(tmp_path / "out")], catch_exceptions=False)
    assert res.exit_code == 2, res.output
    line = res.output.strip().splitlines()[-1]
    assert line.startswith("latentprobe: error: StudyError:") and "'nosuch-owner/nosuch-model'" in line
    assert "Hugging Face Hub" in line and 'set source = "DIR"' in line and "relative path" in line
    assert not (tmp_path / "out").exists()


def test_a_folder_that_is_not_a_checkpoint_is_named(tmp_path):
    from latentprobe.study.models import build_model

    (tmp_path / "empty").mkdir()
    s = load_study(_write(tmp_path, REAL.format(source="empty", extra="")))
    with pytest.raises(StudyError, match=r"the folder .*empty could not be loaded as a checkpoint"):
        build_model(s.model, str(s.path))


def test_toy_weights_by_folder(tmp_path):
    from latentprobe import toy
    from latentprobe.study.models import build_model

    folder = tmp_path / "trained"
    folder.mkdir()
    for ext in (".safetensors", ".json"):
        shutil.copy(toy.weights_dir() / f"mediated{ext}", folder / f"mediated{ext}")
    s = load_study(_write(tmp_path, TOY.format(extra='weights = "trained"')))
    assert s.model.weights == str(folder.resolve()) and s.to_dict()["model"]["weights"] == s.model.weights
    shipped = load_study(_write(tmp_path / "b", TOY.format(extra="")))
    assert shipped.model.weights is None and config_fingerprint(shipped) != config_fingerprint(s)
    assert build_model(s.model).fingerprint == build_model(shipped.model).fingerprint  # the same weights, copied
    (folder / "mediated.json").unlink()
    with pytest.raises(StudyError, match=r"\[model\] key 'weights': .*trained holds no mediated.safetensors and "
                                         r"mediated.json"):
        load_study(_write(tmp_path, TOY.format(extra='weights = "trained"')))


@pytest.mark.parametrize("text, fragment", [
    (REAL.format(source="some/ckpt", extra='weights = "w"'), "[model] key 'weights': applies to source = \"toy:"),
    (REAL.format(source="some/ckpt", extra="") + '[generation]\nopen = "always"\n',
     "[generation] key 'open': unknown name 'always'"),
    (REAL.format(source="zen-E/CODI-gpt2", extra='base = "gpt2"').replace('"monet"', '"codi"')
     + '[generation]\nopen = "force"\n', "[generation] key 'open': preset 'codi' opens latent mode itself"),
])
def test_bad_model_and_open_keys(tmp_path, text, fragment):
    with pytest.raises(StudyError) as info:
        load_study(_write(tmp_path, text))
    assert fragment in str(info.value), str(info.value)


def test_open_defaults_to_auto_and_force_is_read(tmp_path):
    assert load_study(_write(tmp_path, TOY.format(extra=""))).generation.open == "auto"
    s = load_study(_write(tmp_path, TOY.format(extra="") + '[generation]\nopen = "force"\n'))
    assert s.generation.open == "force" and s.to_dict()["generation"]["open"] == "force"
