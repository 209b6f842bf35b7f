import json

import numpy as np
import pytest
from PIL import Image

from latentprobe.data import DataError, load_jsonl


def test_jsonl_with_images(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (56, 84, 3), dtype=np.uint8)).save(tmp_path / f"im{i}.png")
    rows = [{"id": f"q{i}", "question": f"what is {i} ?", "image": f"im{i}.png", "answer": str(i)} for i in range(3)]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    s = load_jsonl(tmp_path / "d.jsonl", image_size=(112, 112))
    assert s.example_ids == ("q0", "q1", "q2") and s.gold == ("0", "1", "2")
    assert s.prompts[1] == "<|vision_start|><|image_pad|><|vision_end|>what is 1 ?"
    assert s.images[0].shape == (112, 112, 3) and s.images[0].dtype == np.uint8
    raw = load_jsonl(tmp_path / "d.jsonl")
    np.testing.assert_array_equal(raw.images[2], np.asarray(Image.open(tmp_path / "im2.png").convert("RGB")))


def test_jsonl_text_only_and_errors(tmp_path):
    (tmp_path / "t.jsonl").write_text('{"question": "a b", "answer": "c"}\n\n{"question": "d"}\n')
    s = load_jsonl(tmp_path / "t.jsonl", image_key=None, prompt_template="Q: {question} A:")
    assert s.images is None and s.prompts == ("Q: a b A:", "Q: d A:") and s.gold == ("c", None)
    (tmp_path / "bad.jsonl").write_text('{"question": "a"}\n{oops\n')
    with pytest.raises(DataError, match="bad.jsonl, line 2"):
        load_jsonl(tmp_path / "bad.jsonl", image_key=None)
    (tmp_path / "nq.jsonl").write_text('{"prompt": "a"}\n')
    with pytest.raises(DataError, match="question_key"):
        load_jsonl(tmp_path / "nq.jsonl", image_key=None)
    (tmp_path / "mi.jsonl").write_text('{"question": "a", "image": "missing.png"}\n')
    with pytest.raises(DataError, match="does not exist"):
        load_jsonl(tmp_path / "mi.jsonl")


def test_a_folder_given_for_a_jsonl_file_is_named_as_such(tmp_path):
    from latentprobe.data import load_benchmark

    with pytest.raises(DataError, match="is a folder; give the JSON Lines file itself"):
        load_benchmark("jsonl", tmp_path)
