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
    study = _study(tmp_path, monkeypatch, "monet.toml", 6)
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
