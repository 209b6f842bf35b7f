"""to_input_set(): prompts from templates or chat messages, lazily read images within max_pixels, gold and meta."""

import numpy as np
import pytest

from latentprobe.data import DataError, Example, ImageRef, load_benchmark, sample, to_input_set
from latentprobe.perturbations import ImageSwap, InputSet

from . import builders as B


def test_default_prompt_images_and_meta(tmp_path):
    B.hrbench(tmp_path)
    exs = load_benchmark("hrbench4k", tmp_path)
    s = to_input_set(exs)
    assert isinstance(s, InputSet) and s.example_ids == tuple(e.example_id for e in exs)
    assert s.prompts[1] == ("<|vision_start|><|image_pad|><|vision_end|>Question 0?\n"
                            "A. opt0x\nB. opt0y\nC. opt0z\nD. opt0w")
    assert s.gold == ("A", "D", "A", "D")
    assert s.images[0].shape == (12, 20, 3) and s.images[0].dtype == np.uint8
    m = s.meta[1]
    assert m["category"] == "single" and m["source"] == "hrbench4k" and m["options"] == exs[1].options
    assert m["question"] == "Question 0?" and m["cycle_category"] == "cycle1"
    assert m["attributes"] == exs[1].attributes
    # rows sharing an image share an image_id, so ImageSwap never pairs them
    assert s.meta[0]["image_id"] == s.meta[1]["image_id"] != s.meta[2]["image_id"]
    swapped = ImageSwap(seed=0).bind(s).apply(s)
    assert swapped.example_ids == s.example_ids


def test_template_placeholders_and_max_pixels(tmp_path):
    B.save_image(tmp_path / "a.png", h=100, w=400)
    ex = Example("d/1", "What colour?", "B", images=(ImageRef(path=tmp_path / "a.png", data=None, where="w"),),
                 options=("red", "blue", "green"), category="colour", source="d", attributes={"hint": "Look."})
    s = to_input_set([ex], prompt="{hint} {question}\n{options}\nAnswer with one of {letters} ({category}).",
                     max_pixels=10_000)
    assert s.prompts[0] == "Look. What colour?\nA. red\nB. blue\nC. green\nAnswer with one of A, B, C (colour)."
    assert s.images[0].shape == (50, 200, 3)
    assert to_input_set([ex], prompt="{question}").images[0].shape == (100, 400, 3)
    text = Example("t/1", "2+2?", "4", source="t")
    t = to_input_set([text], prompt="Q: {question} A:")
    assert t.prompts == ("Q: 2+2? A:",) and t.images is None and t.gold == ("4",)
    assert "image_id" not in t.meta[0]
    assert to_input_set([text]).prompts == ("2+2?",)  # without options, no trailing newline


def test_several_images_become_a_list(tmp_path):
    refs = tuple(ImageRef(path=None, data=B.image_bytes(seed=i), where=f"r{i}") for i in range(2))
    s = to_input_set([Example("d/1", "Same?", "A", images=refs, options=("yes", "no"))])
    assert isinstance(s.images[0], list) and len(s.images[0]) == 2
    assert s.prompts[0].count("<|image_pad|>") == 2


def test_messages_fill_text_parts_and_the_image_slot(tmp_path):
    B.vstar(tmp_path)
    exs = load_benchmark("vstar", tmp_path)
    chat = [{"role": "system", "content": "Answer with {letters}."},
            {"role": "user", "content": [{"type": "image"},
                                         {"type": "text", "text": "{question}\n{options}"}]}]
    s = to_input_set(exs[:2], messages=chat, max_pixels=100)
    m = s.prompts[0]
    assert m[0] == {"role": "system", "content": "Answer with A, B, C, D."}
    assert m[1]["content"][0]["type"] == "image" and m[1]["content"][0]["image"].size <= 300
    assert m[1]["content"][1]["text"] == "What is the color of the cup?\nA. red\nB. blue\nC. green\nD. white"
    assert s.images is None and chat[1]["content"][0] == {"type": "image"}  # the template is not modified
    no_slot = to_input_set(exs[:1], messages=[{"role": "user", "content": "{question}"}])
    assert no_slot.prompts[0] == [{"role": "user", "content": "What is the color of the cup?"}]
    assert no_slot.images[0].shape == (12, 20, 3)


def test_a_sample_converts_directly():
    pool = [Example(f"d/{i}", f"q{i}", "A", category="ab"[i % 2], options=("x", "y")) for i in range(6)]
    s = sample(pool, 2, seed=0)
    assert to_input_set(s).example_ids == s.ids


@pytest.mark.parametrize("kwargs, match", [
    ({"prompt": "{question} {nope}"}, r"example 'd/1'.*names \['nope'\] which example 'd/1' lacks"),
    ({"prompt": "{}"}, r"names \['\{\}'\]"),
    ({"prompt": "{question"}, r"not a valid str\.format template"),
    ({"prompt": "x", "messages": [{"role": "user", "content": "x"}]}, "not both"),
    ({"messages": [{"content": "x"}]}, "messages must be a list of"),
    ({"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "image"}]}]}, "only one bare image part"),
    ({"max_pixels": 0}, r"max_pixels=0: use an integer >= 1"),
    ({"prompt": 3}, "prompt must be a str.format template"),
])
def test_bad_arguments(kwargs, match):
    ex = Example("d/1", "q", "A", options=("x", "y"))
    with pytest.raises(DataError, match=match):
        to_input_set([ex], **kwargs)


def test_bad_examples():
    with pytest.raises(DataError, match="no examples"):
        to_input_set([])
    with pytest.raises(DataError, match="takes Example records"):
        to_input_set(["q"])
    with pytest.raises(DataError, match=r"example id 'd/1' occurs twice"):
        to_input_set([Example("d/1", "q", None), Example("d/1", "r", None)])
    broken = Example("d/2", "q", None, images=(ImageRef(path=None, data=b"not an image", where="t.tsv, row 4"),))
    with pytest.raises(DataError, match=r"t\.tsv, row 4: the image cannot be decoded"):
        to_input_set([broken])
