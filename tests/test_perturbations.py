"""Tests for latentprobe.perturbations and the toy's perturbations (no model needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from latentprobe.errors import InputError
from latentprobe.perturbations import (
    BlankImage,
    Custom,
    ImageSwap,
    InputSet,
    InstanceSwap,
    NoiseImage,
    Occlude,
    QuestionSwap,
    derangement,
    perturbation_from_config,
)
from latentprobe.toy import perturbations as toy_perturbations
from latentprobe.toy.perturbations import Counterfactual, OccludeTarget
from latentprobe.toy.shapes import answer_question, cell_box, make_dataset


@pytest.fixture(scope="module")
def toy_inputs():
    return toy_perturbations.toy_inputs(make_dataset(6, 2, seed=3))


ALL = [ImageSwap(seed=1), BlankImage(), NoiseImage(seed=2), NoiseImage(additive=False, name="pure_noise"),
       Occlude(), OccludeTarget(name="occlude_target"), QuestionSwap(seed=4), InstanceSwap(seed=5),
       Counterfactual(seed=6)]


def test_from_toy_fields(toy_inputs):
    ex = make_dataset(6, 2, seed=3)
    assert toy_inputs.example_ids == tuple(e.example_id for e in ex)
    assert toy_inputs.gold == tuple(e.answer for e in ex)
    assert toy_inputs.prompts[0].startswith(ex[0].question)
    assert toy_inputs.images[0].shape == (112, 112, 3) and toy_inputs.images[0].dtype == np.uint8
    assert toy_inputs.meta[0]["toy"].example_id == ex[0].example_id
    kw = toy_inputs.run_kwargs()
    assert kw["example_ids"] == list(toy_inputs.example_ids) and len(kw["images"]) == len(toy_inputs)


def test_inputset_validation():
    with pytest.raises(InputError, match="unique"):
        InputSet(("a", "a"), ("p", "q"))
    with pytest.raises(InputError, match="entries"):
        InputSet(("a", "b"), ("p",))


@pytest.mark.parametrize("p", ALL, ids=lambda p: p.name)
def test_same_ids_order_and_chunk_consistency(toy_inputs, p):
    full = p.apply(toy_inputs)
    assert full.example_ids == toy_inputs.example_ids
    # a chunk computed alone equals the same examples of the full application
    idx = [5, 1, 7]
    part = p.apply(toy_inputs, idx)
    assert part.example_ids == tuple(toy_inputs.example_ids[i] for i in idx)
    for j, i in enumerate(idx):
        assert part.prompts[j] == full.prompts[i]
        np.testing.assert_array_equal(part.images[j], full.images[i])
        assert (part.gold or [None] * 3)[j] == (full.gold or [None] * len(full))[i]
    # deterministic and JSON-serialisable
    again = p.apply(toy_inputs)
    assert again.fingerprint() == full.fingerprint()
    cfg = p.bind(toy_inputs).to_config()
    json.dumps(cfg)
    assert cfg["type"] == type(p).__name__ and cfg["name"] == p.name
    rebuilt = perturbation_from_config(cfg)
    assert rebuilt.apply(toy_inputs).fingerprint() == full.fingerprint()
    # the input set is not modified
    assert toy_inputs.fingerprint() == toy_perturbations.toy_inputs(make_dataset(6, 2, seed=3)).fingerprint()


def test_image_swap_never_shows_the_same_image(toy_inputs):
    p = ImageSwap(seed=0).bind(toy_inputs)
    ids = [m["image_id"] for m in toy_inputs.meta]
    assert all(ids[j] != ids[i] for i, j in enumerate(p.mapping))
    out = p.apply(toy_inputs)
    for i, j in enumerate(p.mapping):
        assert out.prompts[i] == toy_inputs.prompts[i]
        np.testing.assert_array_equal(out.images[i], toy_inputs.images[j])
        a, b = toy_inputs.meta[i]["toy"], toy_inputs.meta[j]["toy"]
        try:
            want = answer_question(b.scene, a.template, a.query_word)[0]
        except ValueError:
            want = None
        assert out.gold[i] == want
    assert ImageSwap(seed=1).bind(toy_inputs).mapping != p.mapping  # the seed matters


def test_explicit_mapping_and_errors(toy_inputs):
    n = len(toy_inputs)
    m = tuple((i + 2) % n for i in range(n))
    out = QuestionSwap(mapping=m).apply(toy_inputs)
    assert out.prompts == tuple(toy_inputs.prompts[j] for j in m)
    for i in range(n):
        np.testing.assert_array_equal(out.images[i], toy_inputs.images[i])
    with pytest.raises(InputError, match="mapping"):
        QuestionSwap(mapping=(0, 1)).apply(toy_inputs)


def test_blank_noise_occlude(toy_inputs):
    b = BlankImage(fill=(10, 20, 30)).apply(toy_inputs)
    assert (b.images[0] == np.array([10, 20, 30], dtype=np.uint8)).all() and b.gold == (None,) * len(b)
    n1 = NoiseImage(sigma=30, seed=1).apply(toy_inputs)
    assert not np.array_equal(n1.images[0], toy_inputs.images[0]) and n1.gold == toy_inputs.gold
    assert not np.array_equal(NoiseImage(sigma=30, seed=2).apply(toy_inputs).images[0], n1.images[0])
    ex = toy_inputs.meta[0]["toy"]
    o = OccludeTarget(fill=255).apply(toy_inputs)
    if ex.target is not None:
        t, l, bt, r = cell_box(ex.target.row, ex.target.col, 112)
        assert (o.images[0][t:bt, l:r] == 255).all()
        assert np.array_equal(o.images[0][:t], toy_inputs.images[0][:t])
    with pytest.raises(InputError, match="toy"):
        OccludeTarget().apply(InputSet(("a",), ("p",), images=(np.zeros((28, 28, 3), np.uint8),)))
    with pytest.raises(InputError, match="images"):
        BlankImage().apply(InputSet(("a",), ("p",)))


def test_instance_swap_and_counterfactual(toy_inputs):
    s = InstanceSwap(seed=0).bind(toy_inputs)
    out = s.apply(toy_inputs)
    for i, j in enumerate(s.mapping):
        assert i != j and out.example_ids[i] == toy_inputs.example_ids[i]
        assert out.prompts[i] == toy_inputs.prompts[j] and out.gold[i] == toy_inputs.gold[j]
    cf = Counterfactual().apply(toy_inputs)
    assert cf.prompts == toy_inputs.prompts
    assert all(a != b for a, b in zip(cf.gold, toy_inputs.gold))
    assert any(not np.array_equal(a, b) for a, b in zip(cf.images, toy_inputs.images))
    with pytest.raises(InputError, match="toy"):
        Counterfactual().apply(InputSet(("a",), ("p",), images=(np.zeros((28, 28, 3), np.uint8),)))


def test_custom(toy_inputs):
    calls = []

    def flip(prompt, image, meta):
        calls.append(meta["question"])
        return prompt, image[::-1].copy()

    p = Custom(flip, name="vflip")
    out = p.apply(toy_inputs, [0, 2])
    assert len(calls) == 2
    np.testing.assert_array_equal(out.images[1], toy_inputs.images[2][::-1])
    assert p.to_config()["fn"].endswith("flip")
    whole = Custom(lambda s: s.replace(gold=None), name="nogold", per_example=False)
    assert whole.apply(toy_inputs, [1]).example_ids == (toy_inputs.example_ids[1],)
    with pytest.raises(InputError, match="same example_ids"):
        Custom(lambda s: s.select([0]), per_example=False).apply(toy_inputs)


def test_derangement():
    for seed in range(20):
        m = derangement(7, seed)
        assert sorted(m) == list(range(7)) and all(i != j for i, j in enumerate(m))
    assert derangement(7, 3) == derangement(7, 3)
    g = ["a", "a", "b", "b", "c", "c"]
    m = derangement(6, 0, groups=g)
    assert all(g[i] != g[j] for i, j in enumerate(m))
    with pytest.raises(InputError):
        derangement(1)
    with pytest.raises(InputError, match="more than half"):
        derangement(3, 0, groups=["a", "a", "b"], max_tries=50)
    # many examples per group: rejection sampling gives up, the constructed pairing is still valid
    g = [i % 5 for i in range(200)]
    m = derangement(200, 1, groups=g, max_tries=10)
    assert sorted(m) == list(range(200)) and all(g[i] != g[j] for i, j in enumerate(m))
    assert m == derangement(200, 1, groups=g, max_tries=10)


def test_relabel_recomputes_swapped_gold_without_the_toy():
    """Any dataset can give swaps their gold answers: relabel(image_meta, question_meta)."""
    imgs = tuple(np.full((28, 28, 3), v, np.uint8) for v in (10, 20, 30))
    colour = {"a": "red", "b": "blue", "c": "green"}

    def relabel(image_meta, question_meta):
        return f"{colour[image_meta['image_id']]}?{question_meta['q']}", {"asked": question_meta["q"]}

    base = InputSet(("a", "b", "c"), ("pa", "pb", "pc"), images=imgs, gold=("x", "y", "z"),
                    meta=tuple({"image_id": k, "q": k.upper()} for k in "abc"), relabel=relabel)
    out = ImageSwap(mapping=(1, 2, 0)).apply(base)
    assert out.gold == ("blue?A", "green?B", "red?C") and out.relabel is relabel
    assert [m["image_id"] for m in out.meta] == ["b", "c", "a"] and out.meta[0]["asked"] == "A"
    q = QuestionSwap(mapping=(2, 0, 1)).apply(base, [0, 2])
    assert q.gold == ("red?C", "green?B") and q.prompts == ("pc", "pb")
    assert base.select([2]).relabel is relabel
    assert ImageSwap(mapping=(1, 2, 0)).apply(base.replace(relabel=None)).gold == (None, None, None)


def test_generic_occlude_boxes():
    img = np.zeros((28, 28, 3), np.uint8)
    s = InputSet(("a",), ("p",), images=(img,))
    o = Occlude(box=(0, 0, 4, 4), fill=255).apply(s)
    assert (o.images[0][:4, :4] == 255).all() and (o.images[0][4:] == 0).all()
    c = Occlude(fill=255).apply(s)
    assert (c.images[0][7:21, 7:21] == 255).all() and c.images[0][:7].sum() == 0
    with pytest.raises(InputError, match="OccludeTarget"):
        Occlude(box="target").apply(s)


@pytest.mark.parametrize("module", ["latentprobe/perturbations", "latentprobe/behavioural.py"])
def test_generic_modules_do_not_import_the_toy(module):
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    path = root / module
    files = sorted(path.glob("*.py")) if path.is_dir() else [path]
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.startswith("latentprobe.toy") for n in names), f"{f.name} imports {names}"


# -- the public override point: Perturbation.apply_one ------------------------------------------------------

import dataclasses  # noqa: E402

from latentprobe.perturbations import Perturbation, PerturbedExample, register_perturbation  # noqa: E402


@register_perturbation
@dataclasses.dataclass(frozen=True)
class MirrorImage(Perturbation):
    """A perturbation written outside the package: flip every image left-right."""

    name: str = "mirror_image"

    def apply_one(self, inputs, i):
        return PerturbedExample(inputs.prompts[i], np.ascontiguousarray(inputs.images[i][:, ::-1]), None,
                                {**inputs.meta[i], "perturbation": self.name})


def test_a_subclass_overriding_apply_one_is_chunked_configured_and_rebuilt(toy_inputs):
    p = MirrorImage()
    full = p.apply(toy_inputs)
    np.testing.assert_array_equal(full.images[2], toy_inputs.images[2][:, ::-1])
    assert full.gold is None or all(g is None for g in full.gold)
    chunk = p.apply(toy_inputs, [4, 1])
    assert chunk.example_ids == (toy_inputs.example_ids[4], toy_inputs.example_ids[1])
    np.testing.assert_array_equal(chunk.images[0], full.images[4])
    assert perturbation_from_config(json.loads(json.dumps(p.to_config()))) == p
    assert p.apply_one(toy_inputs, 0).meta["perturbation"] == "mirror_image"


def test_every_builtin_overrides_the_public_method_only():
    import latentprobe.perturbations.builtin as builtin

    classes = [getattr(builtin, n) for n in builtin.__all__] + [Counterfactual, OccludeTarget]
    assert len(classes) == 9 and all(issubclass(c, Perturbation) for c in classes)
    for cls in classes:
        assert "_one" not in vars(cls) and callable(cls.apply_one)
    assert ImageSwap.apply_one is not Perturbation.apply_one


def test_the_former_private_override_still_works_and_a_missing_one_is_refused(toy_inputs):
    @dataclasses.dataclass(frozen=True)
    class Old(Perturbation):
        name: str = "old"

        def _one(self, inputs, i):
            return inputs.prompts[i] + "!", inputs.images[i], None, {**inputs.meta[i], "perturbation": self.name}

    assert Old().apply(toy_inputs, [0]).prompts == (toy_inputs.prompts[0] + "!",)

    @dataclasses.dataclass(frozen=True)
    class Nothing(Perturbation):
        name: str = "nothing"

    with pytest.raises(TypeError, match="apply_one"):
        Nothing()
