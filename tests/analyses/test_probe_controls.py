"""The probes analyses' control types: the question by default, settable from study files."""

from __future__ import annotations

import numpy as np

from latentprobe.analyses.readouts import ProbesOptions, RepresentationsOptions, control_types_of
from latentprobe.perturbations import InputSet
from latentprobe.probing import control_recurrence, group_kfold_splits


def _inputs():
    qs = [f"what colour is the {s} ?" for s in ("cube", "ball", "cone")] * 8
    meta = [{"image_id": f"img{i // 2}", "question": q, "shade": "dark" if i % 3 else "light"} for i, q in enumerate(qs)]
    meta[0] = {"image_id": "img0", "shade": "dark"}  # no question: its prompt stands in
    prompts = [f"<image>{q}" for q in qs]
    return InputSet(example_ids=[f"e{i}" for i in range(24)], prompts=prompts, meta=meta), np.array([m["image_id"] for m in meta])


def test_question_is_the_default_and_recurs_in_every_fold():
    assert ProbesOptions.__dataclass_fields__["control_types"].default == "question"
    assert RepresentationsOptions.__dataclass_fields__["control_types"].default == "question"
    assert ProbesOptions.__dataclass_fields__["control_labels"].default == "within_type"
    inputs, groups = _inputs()
    rows = np.arange(1, 24)
    types = control_types_of(inputs, "question", groups, rows, n_splits=3, seed=0)
    assert types.tolist() == [inputs.meta[i]["question"] for i in rows]
    assert control_recurrence(types, group_kfold_splits(groups[rows], 3, 0)) == 1.0
    # the example without a question: its prompt, which no other example shares, joins a recurring type
    with_prompt = control_types_of(inputs, "question", groups, np.arange(24), n_splits=3, seed=0)
    assert with_prompt[0] in set(with_prompt[1:])
    assert control_recurrence(with_prompt, group_kfold_splits(groups, 3, 0)) == 1.0


def test_groups_and_fields():
    inputs, groups = _inputs()
    rows = np.array([3, 5, 7])
    assert control_types_of(inputs, "groups", groups, rows, n_splits=3, seed=0).tolist() == ["img1", "img2", "img3"]
    assert control_types_of(inputs, "shade", groups, rows, n_splits=3, seed=0).tolist() == ["light", "dark", "dark"]
