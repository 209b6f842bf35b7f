"""Deterministic synthetic visual-reasoning data: coloured shapes on a 4 x 4 grid.

A scene holds 2 or 3 objects in distinct cells of a ``GRID x GRID`` grid.  With the
default 112 px image and a Qwen2.5-VL vision tower (patch 14, spatial merge 2) every
merged image token covers exactly one 28 px cell.

Question templates (every answer is one word from :data:`ANSWERS`):

``colour_of_shape``
    ``what colour is the {shape} ?`` -- the shape occurs exactly once in the scene.
``shape_of_colour``
    ``what shape is the {colour} object ?`` -- the colour occurs exactly once.
``colour_left_of``
    ``what colour is the shape left of the {shape} ?`` -- the reference shape occurs
    exactly once and exactly one object lies to its left in the *same row* (so that
    object is also the nearest one, with nothing in between).
``count_colour``
    ``how many {colour} shapes ?`` -- answer ``zero``, ``one`` or ``two``.

Templates are drawn uniformly per image and each question's answer is drawn uniformly
from its template's answer set before a scene is sampled to match, so the majority-class
baseline stays low (about 0.13; see :func:`majority_baseline`).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from latentprobe.errors import InputError, LatentProbeError
from latentprobe.toy.scene import (ANSWERS, BACKGROUND_RGB, COLOUR_RGB, COLOURS, COUNT_WORDS, DEFAULT_IMAGE_SIZE, GRID,
                                   NUMBER_WORDS, SHAPES, SIZE_EXTENT, SIZES, TEMPLATE_ANSWERS, TEMPLATE_NAMES, TEMPLATES,
                                   ToyObject, ToyScene, cell_box, render)

__all__ = [
    "ANSWERS",
    "COLOURS",
    "COLOUR_RGB",
    "COUNT_WORDS",
    "GRID",
    "NUMBER_WORDS",
    "SHAPES",
    "SIZES",
    "TEMPLATES",
    "TEMPLATE_ANSWERS",
    "ToyExample",
    "ToyObject",
    "ToyScene",
    "answer_question",
    "cell_box",
    "counterfactual_scene",
    "majority_baseline",
    "make_dataset",
    "probe_attributes",
    "render",
    "train_test_split",
]

_MAX_TRIES = 10_000


@dataclass(frozen=True)
class ToyExample:
    """One question about one scene.

    Parameters
    ----------
    example_id, image_id, question, answer, template : str
        Ids of the example and its scene, the question, its gold answer and the question's template.
    target_index : int or None
        Indexes ``scene.objects`` (the object whose attribute is the answer); ``None`` for counting questions.
    attributes, scene : dict, ToyScene
        Labels for probing (see :func:`probe_attributes`), and the scene.
    """

    example_id: str
    image_id: str
    question: str
    answer: str
    template: str
    target_index: int | None
    attributes: dict[str, str | int] = field(hash=False, repr=False)
    scene: ToyScene = field(repr=False)

    def image(self, image_size: int = DEFAULT_IMAGE_SIZE) -> np.ndarray:
        """The scene rendered as a uint8 ``H x W x 3`` array (cached, returns a copy).

        Parameters
        ----------
        image_size : int
            Side in pixels.

        Returns
        -------
        np.ndarray
        """
        return render(self.scene, image_size)

    @property
    def target(self) -> ToyObject | None:
        return None if self.target_index is None else self.scene.objects[self.target_index]

    @property
    def query_word(self) -> str:
        """The attribute word named in the question (a shape or a colour)."""
        return str(self.attributes["query_word"])


# ----------------------------------------------------------------------------- questions
@dataclass(frozen=True)
class _Candidate:
    question: str
    answer: str
    query_word: str
    target_index: int | None
    ref_index: int | None


def _candidates(objects: Sequence[ToyObject], template: str) -> list[_Candidate]:
    """All well-posed questions of ``template`` about ``objects``."""
    fmt = TEMPLATES[template]
    shape_counts = Counter(o.shape for o in objects)
    colour_counts = Counter(o.colour for o in objects)
    out: list[_Candidate] = []
    if template == "colour_of_shape":
        for i, o in enumerate(objects):
            if shape_counts[o.shape] == 1:
                out.append(_Candidate(fmt.format(shape=o.shape), o.colour, o.shape, i, None))
    elif template == "shape_of_colour":
        for i, o in enumerate(objects):
            if colour_counts[o.colour] == 1:
                out.append(_Candidate(fmt.format(colour=o.colour), o.shape, o.colour, i, None))
    elif template == "colour_left_of":
        for r, ref in enumerate(objects):
            if shape_counts[ref.shape] != 1:
                continue
            left = [i for i, o in enumerate(objects) if o.row == ref.row and o.col < ref.col]
            if len(left) == 1:
                t = left[0]
                out.append(_Candidate(fmt.format(shape=ref.shape), objects[t].colour, ref.shape, t, r))
    elif template == "count_colour":
        for c in COLOURS:
            n = colour_counts[c]
            if n < len(COUNT_WORDS):
                out.append(_Candidate(fmt.format(colour=c), COUNT_WORDS[n], c, None, None))
    else:
        raise InputError(f"unknown template {template!r}; expected one of {TEMPLATE_NAMES}")
    return out


def answer_question(scene: ToyScene, template: str, query_word: str) -> tuple[str, int | None, int | None]:
    """Answer a template question about ``scene``.

    Returns ``(answer, target_index, ref_index)``; raises ``ValueError`` if the question
    is not well posed for this scene (e.g. the named shape is not unique).

    Parameters
    ----------
    scene : ToyScene
        The scene.
    template : str
        The template's name (a key of :data:`TEMPLATES`).
    query_word : str
        The shape or colour the question names.

    Returns
    -------
    tuple[str, int | None, int | None]
        The answer, the target object's index and the reference object's index (``None`` where none).
    """
    for cand in _candidates(scene.objects, template):
        if cand.query_word == query_word:
            return cand.answer, cand.target_index, cand.ref_index
    raise InputError(f"{TEMPLATES[template]!r} with {query_word!r} is not well posed for this scene")


def probe_attributes(
    scene: ToyScene, template: str, query_word: str, target_index: int | None, ref_index: int | None
) -> dict[str, str | int]:
    """Labels for probing: queried/reference object attributes, counts and per-cell contents.

    Parameters
    ----------
    scene : ToyScene
        The scene.
    template : str
        The template's name.
    query_word : str
        The shape or colour the question names.
    target_index : int | None
        The queried object's index (``None`` for counting).
    ref_index : int | None
        The reference object's index, if any.

    Returns
    -------
    dict[str, str | int]
    """
    attrs: dict[str, str | int] = {"template": template, "query_word": query_word, "n_objects": len(scene.objects)}
    for prefix, idx in (("target", target_index), ("ref", ref_index)):
        o = None if idx is None else scene.objects[idx]
        attrs[f"{prefix}_colour"] = "none" if o is None else o.colour
        attrs[f"{prefix}_shape"] = "none" if o is None else o.shape
        attrs[f"{prefix}_size"] = "none" if o is None else o.size
        attrs[f"{prefix}_row"] = -1 if o is None else o.row
        attrs[f"{prefix}_col"] = -1 if o is None else o.col
    colour_counts = Counter(o.colour for o in scene.objects)
    for c in COLOURS:
        attrs[f"count_{c}"] = colour_counts[c]
    by_cell = {(o.row, o.col): o for o in scene.objects}
    for r in range(GRID):
        for c in range(GRID):
            o = by_cell.get((r, c))
            attrs[f"cell_{r}{c}_colour"] = "none" if o is None else o.colour
            attrs[f"cell_{r}{c}_shape"] = "none" if o is None else o.shape
    return attrs


def _make_example(scene: ToyScene, example_id: str, template: str, cand: _Candidate) -> ToyExample:
    return ToyExample(
        example_id=example_id,
        image_id=scene.image_id,
        question=cand.question,
        answer=cand.answer,
        template=template,
        target_index=cand.target_index,
        attributes=probe_attributes(scene, template, cand.query_word, cand.target_index, cand.ref_index),
        scene=scene,
    )


# ----------------------------------------------------------------------------- sampling
def _propose(rng: random.Random, template: str, desired: str) -> list[ToyObject]:
    """Random objects, biased so the first question can have the ``desired`` answer."""
    n = rng.choice((2, 3))
    all_cells = [(r, c) for r in range(GRID) for c in range(GRID)]
    if template == "colour_left_of":
        row = rng.randrange(GRID)
        c_left, c_ref = sorted(rng.sample(range(GRID), 2))
        cells = [(row, c_left), (row, c_ref)]
        rest = [cell for cell in all_cells if cell not in cells]
        cells += rng.sample(rest, n - 2)
    else:
        cells = rng.sample(all_cells, n)
    colours = [rng.choice(COLOURS) for _ in range(n)]
    shapes = [rng.choice(SHAPES) for _ in range(n)]
    sizes = [rng.choice(SIZES) for _ in range(n)]
    if template in ("colour_of_shape", "colour_left_of"):
        colours[0] = desired
    elif template == "shape_of_colour":
        shapes[0] = desired
    elif template == "count_colour":
        k = COUNT_WORDS.index(desired)
        colour = rng.choice(COLOURS)
        others = [c for c in COLOURS if c != colour]
        colours = [colour if i < k else rng.choice(others) for i in range(n)]
    objs = [ToyObject(colours[i], shapes[i], sizes[i], cells[i][0], cells[i][1]) for i in range(n)]
    return sorted(objs, key=lambda o: (o.row, o.col))


def make_dataset(n_images: int = 1000, questions_per_image: int = 2, seed: int = 0) -> list[ToyExample]:
    """Deterministic list of ``n_images * questions_per_image`` examples.

    Each image gets ``questions_per_image`` (1 to 4) distinct templates; each answer is
    drawn uniformly from its template's answer set and a scene is sampled in which all
    of the image's questions are well posed with the drawn answers.

    Parameters
    ----------
    n_images, questions_per_image, seed : int
        Scenes, questions per scene, seed.

    Returns
    -------
    list of ToyExample
    """
    if n_images < 0:
        raise InputError("n_images must be >= 0")
    if not 1 <= questions_per_image <= len(TEMPLATE_NAMES):
        raise InputError(f"questions_per_image must be in 1..{len(TEMPLATE_NAMES)}")
    rng = random.Random(f"latentprobe-toy-shapes/{seed}")
    examples: list[ToyExample] = []
    for i in range(n_images):
        image_id = f"s{seed}-img{i:05d}"
        templates = rng.sample(TEMPLATE_NAMES, questions_per_image)
        desired = [rng.choice(TEMPLATE_ANSWERS[t]) for t in templates]
        for _ in range(_MAX_TRIES):
            objs = _propose(rng, templates[0], desired[0])
            chosen: list[_Candidate] = []
            for t, d in zip(templates, desired):
                cands = [c for c in _candidates(objs, t) if c.answer == d]
                if not cands:
                    break
                chosen.append(rng.choice(cands))
            else:
                break
        else:  # pragma: no cover - the proposal makes this vanishingly unlikely
            raise LatentProbeError(f"could not sample a scene for {templates} / {desired}")
        scene = ToyScene(tuple(objs), image_id)
        for j, (t, cand) in enumerate(zip(templates, chosen)):
            examples.append(_make_example(scene, f"{image_id}-q{j}", t, cand))
    return examples


def train_test_split(
    examples: Sequence[ToyExample], test_fraction: float = 0.2, seed: int = 0
) -> tuple[list[ToyExample], list[ToyExample]]:
    """Split by image: no ``image_id`` appears in both parts.  Order is preserved.

    Parameters
    ----------
    examples, test_fraction, seed : sequence of ToyExample, float, int
        The examples, the fraction of scenes held out, the seed of the split.

    Returns
    -------
    tuple[list[ToyExample], list[ToyExample]]
        Train and test.
    """
    if not 0.0 <= test_fraction <= 1.0:
        raise InputError("test_fraction must be in [0, 1]")
    image_ids = list(dict.fromkeys(e.image_id for e in examples))
    random.Random(f"latentprobe-toy-split/{seed}").shuffle(image_ids)
    test_ids = set(image_ids[: int(round(test_fraction * len(image_ids)))])
    train = [e for e in examples if e.image_id not in test_ids]
    test = [e for e in examples if e.image_id in test_ids]
    return train, test


def majority_baseline(examples: Sequence[ToyExample]) -> float:
    """Accuracy of always answering the most frequent answer.

    Parameters
    ----------
    examples : sequence of ToyExample

    Returns
    -------
    float
    """
    if not examples:
        return 0.0
    return Counter(e.answer for e in examples).most_common(1)[0][1] / len(examples)


# ----------------------------------------------------------------------------- minimal pairs
def counterfactual_scene(example: ToyExample, seed: int = 0) -> ToyExample:
    """A minimal pair for ``example``: one object's attribute changes, so the answer changes.

    * ``colour_of_shape`` / ``colour_left_of``: the queried object's colour changes.
    * ``shape_of_colour``: the colour is the reference there, so the queried object's
      shape changes instead.
    * ``count_colour``: one object's colour changes to or from the asked colour (count
      ``n > 0`` becomes ``n - 1``; ``zero`` becomes ``one``).

    Everything else (cells, other objects, question) is unchanged.  The returned example
    has ``image_id`` / ``example_id`` suffixed with ``~cf{seed}``.

    Parameters
    ----------
    example : ToyExample
        The example.
    seed : int
        Seed of the change.

    Returns
    -------
    ToyExample
    """
    rng = random.Random(f"latentprobe-toy-cf/{example.example_id}/{seed}")
    objs = list(example.scene.objects)
    template = example.template
    query_word = example.query_word
    if template in ("colour_of_shape", "colour_left_of"):
        i = example.target_index
        assert i is not None
        objs[i] = replace(objs[i], colour=rng.choice([c for c in COLOURS if c != objs[i].colour]))
    elif template == "shape_of_colour":
        i = example.target_index
        assert i is not None
        objs[i] = replace(objs[i], shape=rng.choice([s for s in SHAPES if s != objs[i].shape]))
    elif template == "count_colour":
        matching = [i for i, o in enumerate(objs) if o.colour == query_word]
        if matching:
            i = rng.choice(matching)
            objs[i] = replace(objs[i], colour=rng.choice([c for c in COLOURS if c != query_word]))
        else:
            i = rng.randrange(len(objs))
            objs[i] = replace(objs[i], colour=query_word)
    else:
        raise InputError(f"unknown template {template!r}")
    suffix = f"~cf{seed}"
    scene = ToyScene(tuple(objs), example.image_id + suffix)
    cand = next(c for c in _candidates(scene.objects, template) if c.query_word == query_word)
    if cand.answer == example.answer:  # pragma: no cover - guaranteed by construction
        raise LatentProbeError("counterfactual did not change the answer")
    return _make_example(scene, example.example_id + suffix, template, cand)
