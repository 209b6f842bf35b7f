"""Content fingerprints of a study's examples: a gold, a question, an option or one image byte edited between a
kill and a resume is refused naming the example ids; the image hashes are cached by path, size and mtime."""

from __future__ import annotations

import json
import os
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from latentprobe import cli
from latentprobe.data import Example, ImageRef
from latentprobe.errors import DataChangedError, SweepLockWarning
from latentprobe.study import datafp
from latentprobe.study.datafp import ImageHashCache, changed_ids, check_data, example_digests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from analyses.test_third_party import _kill_after_a_unit, _units  # noqa: E402  (registers latent_norms)


def _bmp(path: Path, seed: int) -> Path:
    """A 20 x 12 BMP: its last byte is a pixel's (rows of 60 bytes need no padding), so flipping it keeps a
    readable image."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (12, 20, 3), dtype=np.uint8)).save(path, "BMP")
    return path


def _flip_last_byte(path: Path) -> bytes:
    old = path.read_bytes()
    path.write_bytes(old[:-1] + bytes([old[-1] ^ 0x01]))
    return old


def test_digests_change_with_each_field_and_image_byte_and_only_for_that_example(tmp_path):
    images = [_bmp(tmp_path / f"{i}.bmp", i) for i in range(3)]
    base = [Example(f"q/{i}", f"question {i}?", "A", images=(ImageRef(images[i], None, f"img {i}"),),
                    options=("x", "y")) for i in range(3)]
    before = example_digests(base)
    assert list(before) == ["q/0", "q/1", "q/2"] and len(set(before.values())) == 3
    assert example_digests(base) == before
    edits = {"gold": [base[0], Example("q/1", "question 1?", "B", images=base[1].images, options=("x", "y")), base[2]],
             "question": [base[0], Example("q/1", "question 1 ?", "A", images=base[1].images, options=("x", "y")),
                          base[2]],
             "options": [base[0], Example("q/1", "question 1?", "A", images=base[1].images, options=("x", "z")),
                         base[2]]}
    for what, edited in edits.items():
        assert changed_ids(before, example_digests(edited))["changed"] == ["q/1"], what
    _flip_last_byte(images[2])
    diff = changed_ids(before, example_digests(base))
    assert diff == {"changed": ["q/2"], "added": [], "removed": [], "reordered": False}
    assert changed_ids(before, example_digests(base[:2]))["removed"] == ["q/2"]
    assert changed_ids(before, dict(reversed(list(before.items()))))["reordered"]
    with pytest.raises(DataChangedError, match=r"\(the same example ids in another order\)"):
        check_data(before, dict(reversed(list(before.items()))), str(tmp_path))
    with pytest.raises(DataChangedError, match=r"example ids changed: 'q/2'\)\. .*--overwrite"):
        check_data(before, example_digests(base), str(tmp_path))
    check_data(before, dict(before), str(tmp_path))  # unchanged: no error
    from latentprobe.errors import StudyError
    from latentprobe.study.datafp import recorded_digests

    assert recorded_digests({"data": {"examples": [[k, v] for k, v in before.items()]}}, "s.json") == before
    for meta in ({}, {"data": {"examples": {"q/0": "x"}}}, {"data": {"examples": [["q/0"]]}}, {"data": 3}):
        with pytest.raises(StudyError, match="s.json records no fingerprint of its data"):
            recorded_digests(meta, "s.json")


def test_image_bytes_in_memory_and_decoded_arrays_are_hashed_by_content():
    from latentprobe.perturbations import InputSet

    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[3, 3, 2] = 1
    one = InputSet(("e1", "e2"), ("p", "p"), images=(a, a), gold=("A", "B"))
    two = InputSet(("e1", "e2"), ("p", "p"), images=(a, b), gold=("A", "B"))
    assert changed_ids(example_digests(one), example_digests(two))["changed"] == ["e2"]
    ref = [Example("t/1", "q", "A", images=(ImageRef(None, b"\x89PNG-ish", "row 1"),))]
    ref2 = [Example("t/1", "q", "A", images=(ImageRef(None, b"\x89PNG-isH", "row 1"),))]
    assert example_digests(ref) != example_digests(ref2)


def test_image_hashes_are_cached_by_path_size_and_mtime(tmp_path, monkeypatch):
    image = _bmp(tmp_path / "a.bmp", 0)
    cache_file = tmp_path / datafp.CACHE_NAME
    cache = ImageHashCache(cache_file)
    first = cache.file_hash(image)
    cache.save()
    stored = json.loads(cache_file.read_text())
    assert list(stored.values()) == [first] and str(image.resolve()) in next(iter(stored))
    monkeypatch.setattr(datafp, "_MEMO", {})  # a new process: only the file's cache
    reads = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda f, *a, **k: reads.append(str(f)) or real_open(f, *a, **k))
    assert ImageHashCache(cache_file).file_hash(image) == first and str(image.resolve()) not in reads
    # one byte edited: the size is the same, the mtime is not: read again
    stat = image.stat()
    _flip_last_byte(image)
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    again = ImageHashCache(cache_file).file_hash(image)
    assert again != first and str(image.resolve()) in reads


STUDY = """[study]
name = "edits"
[model]
source = "{source}"
preset = "monet"
dtype = "float32"
num_latents = 2
[data]
benchmark = "jsonl"
root = "data/q.jsonl"
[prompt]
template = "{{question}}\\n{{options}}\\nAnswer with the option's letter."
[generation]
max_new_tokens = 5
scorer = "choice"
batch_size = 4
n_boot = 20
open = "force"
[analyses.latent_norms]
layer = 1
per_unit = 1
"""


def _cli(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli.main, list(args), standalone_mode=True, catch_exceptions=False)
    return res.exit_code, res.output


@pytest.mark.slow
def test_a_gold_a_question_or_an_image_byte_edited_between_kill_and_resume_is_refused(tmp_path, replica_dir):
    data = tmp_path / "data"
    lines = [{"id": str(3 - i), "question": f"What colour is object {i}?", "options": ["red", "blue", "green"],
              "answer": "ABC"[i % 3], "image": f"img/{i}.bmp"} for i in range(4)]
    for i in range(4):
        _bmp(data / "img" / f"{i}.bmp", i)
    jsonl = data / "q.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in lines))
    study = tmp_path / "edits.toml"
    study.write_text(STUDY.format(source=replica_dir("monet")))
    out = tmp_path / "out"
    meta = _kill_after_a_unit(study, out, tmp_path)
    stored = _units(meta)
    assert 1 <= len(stored) < 4
    recorded = json.loads((out / "study.json").read_text())["data"]["examples"]
    assert [i for i, _ in recorded] == ["jsonl/3", "jsonl/2", "jsonl/1", "jsonl/0"]  # in the data's order
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and p.name != ".study.lock"}

    def refused(expected_id: str) -> None:
        code, text = _cli("run", str(study), "--out", str(out), "--quiet")
        assert code == 1 and "DataChangedError" in text and f"example ids changed: {expected_id!r}" in text, text
        assert len(text.strip().splitlines()) == 1, text
        after = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and p.name != ".study.lock"}
        assert after == before  # nothing was written

    original = jsonl.read_text()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SweepLockWarning)  # the killed run's lock is taken over
        jsonl.write_text(original.replace('"answer": "B"', '"answer": "C"'))  # the gold of jsonl/2
        refused("jsonl/2")
        jsonl.write_text(original.replace("object 2?", "object 2 ?"))  # one question
        refused("jsonl/1")
        jsonl.write_text(original)
        image = data / "img" / "3.bmp"
        old = _flip_last_byte(image)  # one byte of one image
        refused("jsonl/0")
        image.write_bytes(old)
        code, text = _cli("run", str(study), "--out", str(out), "--quiet")  # the data as they were: resumes
    assert code == 0, text
    assert (out / "latent_norms" / "done.json").is_file()
    assert _units(meta)[:len(stored)] == stored  # the stored units were kept
    shutil.rmtree(out)
