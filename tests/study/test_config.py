"""Study files: every shipped file validates, and bad files give one typed, one-line error before any work."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from latentprobe import cli
from latentprobe.errors import StudyError
from latentprobe.study import load_study
from latentprobe.study.config import Study

STUDIES = Path(__file__).resolve().parents[2] / "examples" / "studies"

TOY = """
[study]
name = "t"
[model]
source = "toy:mediated"
[data]
benchmark = "toy"
n = 8
[analyses.collapse]
"""

REAL = """
[study]
name = "r"
[model]
source = "some/checkpoint"
preset = "monet"
[data]
benchmark = "vstar"
root = "{root}"
[analyses.z_to_y]
interventions = ["zero"]
"""


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "bench").mkdir(exist_ok=True)
    path = tmp_path / "study.toml"
    path.write_text(text.replace("{root}", str(tmp_path / "bench")))
    return path


@pytest.mark.parametrize("name", sorted(p.name for p in STUDIES.glob("*.toml")))
def test_shipped_study_files_validate(name):
    study = load_study(STUDIES / name, check_paths=False)
    assert isinstance(study, Study) and study.analyses.enabled()


def test_shipped_study_files_validate_with_their_data_folders(tmp_path, monkeypatch):
    # the published studies read their data under ~/data: with a home folder holding that layout, the
    # full validation (roots included) passes
    monkeypatch.setenv("HOME", str(tmp_path))
    for path in STUDIES.glob("*.toml"):
        for d in load_study(path, check_paths=False).data:
            if d.root is not None:
                Path(d.root).mkdir(parents=True, exist_ok=True)
        assert load_study(path).study.name


def test_shipped_study_set():
    names = {p.name for p in STUDIES.glob("*.toml")}
    assert {"toy.toml", "monet.toml", "mirage-vsp.toml", "codi-gsm8k.toml"} <= names
    monet = load_study(STUDIES / "monet.toml", check_paths=False)
    assert [d.benchmark for d in monet.data] == ["vstar", "hrbench4k", "mme-realworld-lite"]
    assert monet.sample is None and [d.n for d in monet.data] == [34, 33, 33]  # 100, an even split
    assert all(d.by == "category" for d in monet.data) and monet.data[0].options == {"shuffle_options": True}
    assert load_study(STUDIES / "codi-gsm8k.toml", check_paths=False).generation.scorer == "numeric"


def test_defaults_and_relative_root(tmp_path):
    (tmp_path / "data").mkdir()
    path = tmp_path / "s.toml"
    path.write_text(REAL.replace("{root}", "data"))
    s = load_study(path)
    assert s.data[0].root == str((tmp_path / "data").resolve())
    assert s.analyses["z_to_y"].modes == ("propagate", "redecode") and s.generation.scorer == "exact"
    assert "x_to_z" not in s.to_dict()["analyses"]


BAD = [
    (TOY + "[studdy]\nname = 'x'\n", "[top level] key 'studdy': unknown key"),
    (TOY.replace('[model]\nsource = "toy:mediated"\n', ""), "the [model] table is missing"),
    (TOY.replace('name = "t"', 'name = "t"\nseed = "zero"'), "[study] key 'seed': must be an integer"),
    (TOY.replace('name = "t"', 'name = "t"\nfoo = 1'), "[study] key 'foo': unknown key"),
    (TOY.replace('source = "toy:mediated"', 'source = "toy:nope"'), "unknown toy variant 'nope'"),
    (TOY.replace('source = "toy:mediated"', 'source = "toy:mediated"\npreset = "monet"'),
     "[model] key 'preset': the toy models run their own spec"),
    (REAL.replace('preset = "monet"', 'preset = "monnet"'), "[model] key 'preset': unknown name 'monnet'"),
    (REAL.replace('preset = "monet"\n', ""), "[model] key 'preset': is missing"),
    (REAL.replace('"vstar"', '"vstarr"'), "[data] key 'benchmark': unknown name 'vstarr'"),
    (REAL.replace('root = "{root}"', 'root = "{root}/nope"'), "[data] key 'root': folder"),
    (REAL.replace('root = "{root}"\n', ""), "[data] key 'root': is missing"),
    (TOY + "[generation]\nscorer = 'fuzzy'\n", "[generation] key 'scorer': unknown name 'fuzzy'"),
    (TOY + "[generation]\nmax_new_tokens = 0\n", "[generation] key 'max_new_tokens': must be >= 1"),
    (TOY.replace("n = 8", "n = true"), "[data] key 'n': must be an integer, got true or false"),
    (REAL.replace('["zero"]', '["zeroo"]'), "[analyses.z_to_y] key 'interventions': unknown name(s) ['zeroo']"),
    (REAL + 'modes = ["replay", "sideways"]\n', "key 'modes': unknown name(s) ['sideways']"),
    (REAL + '[analyses.x_to_z]\nperturbations = ["blind"]\n', "key 'perturbations': unknown name(s) ['blind']"),
    (REAL + '[analyses.decompose]\ntreatment = "counterfactual"\n', "key 'treatment': unknown name"),
    (TOY + "[analyses.bogus]\n", "[analyses] key 'bogus': unknown key"),
    (TOY + '[analyses.probes]\ntargets = ["category"]\nlayers = [-1]\n', "key 'layers': must be \"all\""),
    (TOY + "[prompt]\ntemplate = '{question}'\n", "remove the [prompt] table"),
    (REAL + "[prompt]\ntemplate = '{questoin}'\n", "[prompt] key 'template': unknown field {questoin}"),
    (REAL.replace('benchmark = "vstar"\nroot = "{root}"', 'benchmark = "toy"'), "the toy data need a toy model"),
    (TOY + "[output\n", "not valid TOML"),
    (TOY.replace("[analyses.collapse]\n", "[analyses]\n"), "[analyses]: no analysis"),
]


@pytest.mark.parametrize("text, fragment", BAD)
def test_bad_study_files_raise_study_error(tmp_path, text, fragment):
    path = _write(tmp_path, text)
    with pytest.raises(StudyError) as info:
        load_study(path)
    message = str(info.value)
    assert fragment in message and str(path) in message, message


@pytest.mark.parametrize("text, fragment", BAD[::3])
def test_cli_prints_bad_study_files_on_one_line_and_exits_2(tmp_path, text, fragment):
    path = _write(tmp_path, text)
    out = tmp_path / "out"
    res = CliRunner().invoke(cli.main, ["run", str(path), "--out", str(out)], standalone_mode=True,
                             catch_exceptions=False)
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith("latentprobe: error: StudyError:") and fragment in lines[0]
    assert not out.exists()  # refused before any work


def test_published_generation_takes_the_presets_budget(tmp_path):
    from latentprobe.presets import get_preset

    s = load_study(_write(tmp_path, REAL + "[generation]\npublished = true\nscorer = 'choice'\n"))
    assert s.generation.max_new_tokens == get_preset("monet").published_generation.max_new_tokens
    with pytest.raises(StudyError, match="conflicts with published = true"):
        load_study(_write(tmp_path, REAL + "[generation]\npublished = true\nmax_new_tokens = 8\n"))
