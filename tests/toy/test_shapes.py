"""Tests for the toy shapes data, its tokenizer and the Qwen2-VL pixel preprocessing."""

from __future__ import annotations

import os
from collections import Counter

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from latentprobe.errors import ImageBatchError  # noqa: E402
from latentprobe.images import blank_image, noise_image, occlude, pixel_values  # noqa: E402
from PIL import Image  # noqa: E402
from latentprobe.toy.shapes import (  # noqa: E402
    ANSWERS,
    COLOURS,
    GRID,
    SHAPES,
    SIZES,
    TEMPLATES,
    ToyExample,
    ToyObject,
    ToyScene,
    cell_box,
    counterfactual_scene,
    majority_baseline,
    make_dataset,
    render,
    train_test_split,
)
from latentprobe.toy.vocab import SPECIAL_TOKENS, build_tokenizer, caption_for  # noqa: E402

COUNTS = ("zero", "one", "two")


@pytest.fixture(scope="module")
def data() -> list[ToyExample]:
    return make_dataset(n_images=200, questions_per_image=2, seed=0)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def reference_answer(scene: ToyScene, question: str) -> tuple[str, int | None]:
    """Independent re-derivation of the answer (and queried object) from the scene."""
    objs = scene.objects
    words = question.split()
    if question.startswith("what colour is the shape left of the "):
        shape = words[-2]
        refs = [o for o in objs if o.shape == shape]
        assert len(refs) == 1, "reference shape must be unique"
        ref = refs[0]
        left = [i for i, o in enumerate(objs) if o.row == ref.row and o.col < ref.col]
        assert len(left) == 1, "exactly one object must lie left of the reference in its row"
        return objs[left[0]].colour, left[0]
    if question.startswith("what colour is the "):
        shape = words[-2]
        hits = [i for i, o in enumerate(objs) if o.shape == shape]
        assert len(hits) == 1
        return objs[hits[0]].colour, hits[0]
    if question.startswith("what shape is the "):
        colour = words[-3]
        hits = [i for i, o in enumerate(objs) if o.colour == colour]
        assert len(hits) == 1
        return objs[hits[0]].shape, hits[0]
    if question.startswith("how many "):
        colour = words[2]
        n = sum(o.colour == colour for o in objs)
        assert n < 3
        return COUNTS[n], None
    raise AssertionError(f"unexpected question {question!r}")


# ----------------------------------------------------------------------------- dataset


def test_determinism(data):
    again = make_dataset(n_images=200, questions_per_image=2, seed=0)
    assert again == data
    for a, b in zip(data[:20], again[:20]):
        assert np.array_equal(a.image(), b.image())
    other = make_dataset(n_images=200, questions_per_image=2, seed=1)
    assert [(e.question, e.answer) for e in other] != [(e.question, e.answer) for e in data]
    assert [e.scene.objects for e in other] != [e.scene.objects for e in data]
    assert any(not np.array_equal(a.image(), b.image()) for a, b in zip(data[:20], other[:20]))


def test_examples_well_formed_and_correct(data):
    assert len(data) == 400
    assert len({e.example_id for e in data}) == len(data)
    for e in data:
        assert e.answer in ANSWERS
        assert e.template in TEMPLATES
        assert e.question == e.question.lower() and e.question.endswith(" ?")
        objs = e.scene.objects
        assert 2 <= len(objs) <= 3
        assert len({(o.row, o.col) for o in objs}) == len(objs)
        for o in objs:
            assert o.colour in COLOURS and o.shape in SHAPES and o.size in SIZES
            assert 0 <= o.row < GRID and 0 <= o.col < GRID
        answer, target = reference_answer(e.scene, e.question)
        assert e.answer == answer
        assert e.target_index == target
        a = e.attributes
        assert a["n_objects"] == len(objs)
        if target is not None:
            o = objs[target]
            assert (a["target_colour"], a["target_shape"], a["target_size"]) == (o.colour, o.shape, o.size)
            assert (a["target_row"], a["target_col"]) == (o.row, o.col)
        else:
            assert a["target_colour"] == "none" and a["target_row"] == -1
        by_cell = {(o.row, o.col): o for o in objs}
        for r in range(GRID):
            for c in range(GRID):
                expected = by_cell[(r, c)].colour if (r, c) in by_cell else "none"
                assert a[f"cell_{r}{c}_colour"] == expected


def test_questions_per_image_distinct_templates(data):
    by_image: dict[str, list[ToyExample]] = {}
    for e in data:
        by_image.setdefault(e.image_id, []).append(e)
    assert len(by_image) == 200
    for exs in by_image.values():
        assert len(exs) == 2
        assert exs[0].template != exs[1].template
        assert exs[0].scene == exs[1].scene


def test_train_test_split_by_image(data):
    train, test = train_test_split(data, test_fraction=0.2, seed=0)
    assert len(train) + len(test) == len(data)
    train_ids = {e.image_id for e in train}
    test_ids = {e.image_id for e in test}
    assert not train_ids & test_ids
    assert len(test_ids) == 40
    assert train_test_split(data, 0.2, 0) == (train, test)


def test_majority_baseline_low():
    exs = make_dataset(n_images=500, questions_per_image=2, seed=0)
    base = majority_baseline(exs)
    assert base < 0.35
    assert base == Counter(e.answer for e in exs).most_common(1)[0][1] / len(exs)
    assert set(Counter(e.template for e in exs)) == set(TEMPLATES)


# ----------------------------------------------------------------------------- rendering


def test_render_shapes_and_colours():
    objs = (
        ToyObject("red", "square", "large", 0, 0),
        ToyObject("blue", "circle", "small", 1, 2),
        ToyObject("yellow", "triangle", "large", 3, 3),
    )
    scene = ToyScene(objs, "t")
    img = render(scene)
    assert img.shape == (112, 112, 3) and img.dtype == np.uint8
    assert np.array_equal(img, render(scene))
    img[0, 0] = 7  # returned arrays are copies; the cache stays intact
    assert not np.array_equal(img, render(scene))
    img = render(scene)
    for o in objs:
        top, left, bottom, right = cell_box(o.row, o.col)
        cell = img[top:bottom, left:right]
        colours = {tuple(p) for p in cell.reshape(-1, 3)}
        assert colours == {(0, 0, 0), tuple(cell[14, 14])}  # solid object on black
        assert tuple(cell[14, 14]) != (0, 0, 0)
    big = (img[0:28, 0:28] != 0).any(-1).mean()
    small = (img[28:56, 56:84] != 0).any(-1).mean()
    assert big > 2 * small > 0
    empty = img[56:84, 0:28]
    assert not empty.any()


# ----------------------------------------------------------------------------- counterfactuals


def test_counterfactual_minimal_pair(data):
    for e in data[:120]:
        cf = counterfactual_scene(e, seed=3)
        assert cf == counterfactual_scene(e, seed=3)
        assert cf.question == e.question and cf.template == e.template
        assert cf.answer != e.answer and cf.answer in ANSWERS
        assert cf.image_id != e.image_id
        answer, target = reference_answer(cf.scene, cf.question)
        assert cf.answer == answer and cf.target_index == target
        old, new = e.scene.objects, cf.scene.objects
        assert len(old) == len(new)
        changed = [i for i, (a, b) in enumerate(zip(old, new)) if a != b]
        assert len(changed) == 1
        i = changed[0]
        a, b = old[i], new[i]
        assert (a.row, a.col, a.size) == (b.row, b.col, b.size)
        if e.template == "shape_of_colour":
            assert i == e.target_index
            assert a.colour == b.colour and a.shape != b.shape
        else:
            assert a.shape == b.shape and a.colour != b.colour
            if e.target_index is not None:
                assert i == e.target_index
        assert not np.array_equal(e.image(), cf.image())


# ----------------------------------------------------------------------------- tokenizer


def test_tokenizer_round_trip(data, tokenizer):
    texts = {e.question for e in data} | {e.answer for e in data} | {caption_for(e) for e in data}
    texts |= set(ANSWERS)
    unk = tokenizer.unk_token_id
    for text in sorted(texts):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert unk not in ids, text
        assert len(ids) == len(text.split())
        assert tokenizer.decode(ids) == text


def test_special_tokens_single_ids(tokenizer):
    assert tokenizer.pad_token == "<pad>" and tokenizer.eos_token == "<eos>" and tokenizer.unk_token == "<unk>"
    ids = [tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS]
    assert ids == list(range(len(SPECIAL_TOKENS)))
    for tok in SPECIAL_TOKENS:
        assert tokenizer(tok, add_special_tokens=False)["input_ids"] == [tokenizer.convert_tokens_to_ids(tok)]
    glued = "<|vision_start|><|image_pad|><|image_pad|><|vision_end|>"
    assert tokenizer(glued, add_special_tokens=False)["input_ids"] == [3, 5, 5, 4]
    assert tokenizer("what is zzz", add_special_tokens=False)["input_ids"][-1] == tokenizer.unk_token_id


def test_caption_examples(data):
    for e in data:
        cap = caption_for(e)
        if e.target is None:
            assert cap == f"{e.answer} {e.query_word} shapes"
        else:
            t = e.target
            assert cap.split()[:3] == [t.colour, t.shape, t.size]
            assert cap.split()[3] == "row" and cap.split()[5] == "col"


def test_tokenizer_save_load_offline(tmp_path, tokenizer):
    from transformers import PreTrainedTokenizerFast

    build_tokenizer(save_dir=tmp_path)
    loaded = PreTrainedTokenizerFast.from_pretrained(str(tmp_path), local_files_only=True)
    assert loaded.get_vocab() == tokenizer.get_vocab()
    assert (loaded.pad_token_id, loaded.eos_token_id, loaded.unk_token_id) == (0, 1, 2)
    text = "<|vision_start|> <|image_pad|> <|vision_end|> how many red shapes ? <|latent_start|> <|latent_pad|>"
    ids = loaded(text, add_special_tokens=False)["input_ids"]
    assert ids == tokenizer(text, add_special_tokens=False)["input_ids"]
    assert loaded.decode(ids) == text
    assert build_tokenizer().get_vocab() == tokenizer.get_vocab()  # deterministic


# ----------------------------------------------------------------------------- pixel values


def test_pixel_values_match_transformers():
    """The default preprocessing is transformers' Qwen2VLImageProcessorPil; on 28-px multiples it
    does no resizing and equals the processor with resizing off (what the toy was trained with)."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (112, 112, 3), dtype=np.uint8) for _ in range(3)]
    imgs.append(make_dataset(n_images=1, seed=5)[0].image())
    ref = Qwen2VLImageProcessorPil(do_resize=False)(imgs, return_tensors="np")
    pv, thw = pixel_values(imgs)
    assert pv.dtype == torch.float32 and thw.dtype == torch.long
    assert pv.shape == (4 * 64, 3 * 2 * 14 * 14)
    assert np.array_equal(pv.numpy(), ref["pixel_values"])
    assert thw.tolist() == ref["image_grid_thw"].tolist() == [[1, 8, 8]] * 4
    # non-square multiple of 28
    odd = rng.integers(0, 256, (56, 84, 3), dtype=np.uint8)
    ref3 = Qwen2VLImageProcessorPil(do_resize=False)([odd], return_tensors="np")
    pv3, thw3 = pixel_values([odd])
    assert np.array_equal(pv3.numpy(), ref3["pixel_values"]) and thw3.tolist() == [[1, 4, 6]]


def test_single_image_grid():
    pv, thw = pixel_values([blank_image(112)])
    assert thw.tolist() == [[1, 8, 8]]
    assert pv.shape == (64, 1176)


@pytest.mark.parametrize("shape", [(100, 112, 3), (112, 120, 3), (30, 30, 3), (112, 112, 4), (112, 90)])
def test_any_image_size_and_mode(shape):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    img = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    pv, thw = pixel_values([img])
    ref = Qwen2VLImageProcessorPil()([Image.fromarray(img)], return_tensors="np")
    assert np.array_equal(pv.numpy(), ref["pixel_values"]) and thw.tolist() == ref["image_grid_thw"].tolist()


def test_bad_image_format_raises():
    with pytest.raises(ImageBatchError, match="uint8"):
        pixel_values([np.zeros((112, 112, 3), dtype=np.float32)])
    with pytest.raises(ImageBatchError, match="H x W"):
        pixel_values([np.zeros((112, 112, 5), dtype=np.uint8)])


def test_image_helpers():
    b = blank_image(112)
    assert b.shape == (112, 112, 3) and b.dtype == np.uint8 and not b.any()
    assert (blank_image((56, 84), fill=(1, 2, 3))[5, 5] == [1, 2, 3]).all()
    n1, n2 = noise_image(112, seed=1), noise_image(112, seed=1)
    assert n1.dtype == np.uint8 and np.array_equal(n1, n2)
    assert not np.array_equal(n1, noise_image(112, seed=2))
    o = occlude(n1, (0, 0, 28, 28), fill=0)
    assert not o[:28, :28].any() and np.array_equal(o[28:], n1[28:])
    assert not np.array_equal(o, n1)  # input unchanged, output differs
    assert np.array_equal(n1, n2)
    on = occlude(b, cell_box(1, 1), fill="noise", seed=0)
    assert on[28:56, 28:56].any() and not on[:28].any()


@pytest.mark.parametrize("box", [(0, 0, 200, 50), (50, 50, 10, 60), (-5, 0, 10, 10), (10, 10, 10, 20)])
def test_occlusion_boxes_outside_the_image_or_inverted_are_refused(box):
    from latentprobe.errors import ImageBatchError

    with pytest.raises(ImageBatchError, match=r"does not lie inside the 112x112 image"):
        occlude(blank_image(112), box)
