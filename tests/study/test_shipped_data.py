"""The shipped study files' data sections, run against fixture folders in each benchmark's layout:
what a GPU user's `latentprobe run` reads before the model is loaded."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from latentprobe.study import load_study
from latentprobe.study.datasets import load_data

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data import builders  # noqa: E402

STUDIES = Path(__file__).resolve().parents[2] / "examples" / "studies"
LAYOUTS = {"vstar": builders.vstar, "hrbench4k": builders.hrbench, "mme-realworld-lite": builders.mme_realworld_lite,
           "vsp": builders.vsp, "gsm8k-aug": builders.gsm_codi}


def _study(tmp_path, monkeypatch, name: str, n: int):
    monkeypatch.setenv("HOME", str(tmp_path))
    text = re.sub(r"(?m)^n = \d+", f"n = {n}", (STUDIES / name).read_text())
    path = tmp_path / name
    path.write_text(text)
    for d in load_study(path, check_paths=False).data:
        LAYOUTS[d.benchmark](Path(d.root))
    return load_study(path)


def test_monet_study_samples_across_its_three_benchmarks(tmp_path, monkeypatch):
    study = _study(tmp_path, monkeypatch, "monet.toml", 2)
    assert dict(study.data[0].options) == {"shuffle_options": True}  # V* stores the answer first
    data = load_data(study, None)
    assert sorted(data.sample.benchmark.value_counts().items()) == [("hrbench4k", 2), ("mme-realworld-lite", 2),
                                                                    ("vstar", 2)]
    inputs = data.inputs
    assert inputs.example_ids == tuple(data.sample.example_id)
    for prompt, meta, gold, images in zip(inputs.prompts, inputs.meta, inputs.gold, inputs.images):
        options = meta["options"]
        assert options and gold in "ABCDE"[: len(options)]
        assert "A. " + options[0] in prompt and prompt.rstrip().endswith("directly.")
        ims = images if isinstance(images, list) else [images]
        assert all(isinstance(im, np.ndarray) and im.dtype == np.uint8 and im.shape[2] == 3 for im in ims)


def test_mirage_study_reads_vsp(tmp_path, monkeypatch):
    data = load_data(_study(tmp_path, monkeypatch, "mirage-vsp.toml", 2), None)
    assert len(data.sample) == 2 and set(data.sample.benchmark) == {"vsp"}
    assert all("<image>" in p or "<|image_pad|>" in p for p in data.inputs.prompts)


def test_codi_study_reads_gsm8k_aug(tmp_path, monkeypatch):
    data = load_data(_study(tmp_path, monkeypatch, "codi-gsm8k.toml", 2), None)
    assert sorted(data.inputs.gold) == ["4", "6"] and data.inputs.images is None


class _Model:
    def __init__(self, runner):
        self.runner, self.toy = runner, None


@pytest.mark.parametrize("study_file, family", [("monet.toml", "monet"), ("mirage-vsp.toml", "mirage")])
def test_vlm_studies_build_the_familys_chat_prompt(tmp_path, monkeypatch, replica_dir, study_file, family):
    # a real-format checkpoint of the family (real Qwen2.5-VL tokenizer and chat template, random weights):
    # each question becomes the prompt its authors build, with one image span per image, and runs
    import latentprobe
    from latentprobe.presets import get_preset

    runner = latentprobe.load(replica_dir(family), family)
    data = load_data(_study(tmp_path, monkeypatch, study_file, 1 if family == "monet" else 2), _Model(runner))
    conv = get_preset(family).prompt
    vision = "<|vision_start|><|image_pad|><|vision_end|>"
    for prompt, question in zip(data.inputs.prompts, (m["question"] for m in data.inputs.meta)):
        assert prompt.count(vision) == 1 and "<image>\n<|im_start|>" not in prompt.replace(conv.prefix, "", 1)
        assert prompt.startswith(conv.prefix) and prompt.endswith(conv.suffix or "<|im_start|>assistant\n")
        if conv.system_prompt:
            assert conv.system_prompt in prompt
        if family == "monet":  # text first, then the image (Monet's inference code)
            assert prompt.index(question.split("\n")[0]) < prompt.index(vision)
        else:  # the image where the question's <image> marker was, and no literal marker left
            assert "<image>" not in prompt and prompt.index("Here is the map:") < prompt.index(vision)
    trace = runner.run(list(data.inputs.prompts[:2]), list(data.inputs.images[:2]), max_new_tokens=4, progress=False)
    assert len(trace) == 2


def test_needs_of_the_analyses_are_checked_before_anything_runs(tmp_path, monkeypatch):
    from latentprobe.errors import StudyError
    from latentprobe.study.analyses import make_context, preflight

    monkeypatch.setenv("HOME", str(tmp_path))
    builders.vsp(tmp_path / "data" / "vsp")
    base = (STUDIES / "mirage-vsp.toml").read_text()
    cases = {"[analyses.decompose]\ntreatment = \"blank_image\"\n": "no gold answers",
             "": None}
    for extra, fragment in cases.items():
        path = tmp_path / "s.toml"
        path.write_text(re.sub(r"(?m)^n = \d+", "n = 2", base) + "\n" + extra)
        study = load_study(path)
        ctx = make_context(study, None, load_data(study, None), progress=False)  # no model: nothing can run
        if fragment is None:
            preflight(study, ctx)
        else:
            with pytest.raises(StudyError, match=fragment):
                preflight(study, ctx)
    chat = re.sub(r'(?m)^template = .*$', 'messages = [{role = "user", content = [{type = "image"}, '
                  '{type = "text", text = "{question}"}]}]', re.sub(r"(?m)^n = \d+", "n = 2", base))
    path.write_text(chat)
    study = load_study(path)
    with pytest.raises(StudyError, match="perturbations cannot replace them"):
        preflight(study, make_context(study, None, load_data(study, None), progress=False))
    text = re.sub(r'targets = \[[^\]]*\]', 'targets = ["nosuch"]', re.sub(r"(?m)^n = \d+", "n = 2", base))
    path.write_text(text)
    study = load_study(path)
    with pytest.raises(StudyError, match="no example has the field 'nosuch'"):
        preflight(study, make_context(study, None, load_data(study, None), progress=False))


def test_codi_questions_are_normalised_as_codis_test_script_does(tmp_path, monkeypatch):
    from types import SimpleNamespace

    study = _study(tmp_path, monkeypatch, "codi-gsm8k.toml", 2)
    path = next(Path(study.data[0].root).rglob("*.parquet"))
    import pandas as pd

    frame = pd.read_parquet(path)
    frame["question"] = ["  Q  one? ", "Q two?"]
    frame.to_parquet(path)
    from latentprobe.presets import get_preset

    runner = SimpleNamespace(spec=get_preset("codi", num_latents=3), is_vlm=False, tokenizer=None)
    data = load_data(study, SimpleNamespace(runner=runner, toy=None))
    assert sorted(data.inputs.prompts) == ["Q one?", "Q two?"]  # strip(), then '  ' -> ' '
    assert sorted(load_data(study, None).inputs.prompts) == ["  Q  one? ", "Q two?"]
