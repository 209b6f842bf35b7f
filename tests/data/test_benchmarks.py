"""Every benchmark loader reads a few items built in its exact published layout, and refuses malformed files."""

import json

import numpy as np
import pandas as pd
import pytest

from latentprobe.data import BENCHMARKS, DataError, Example, ImageRef, load_benchmark

from . import builders as B


def _pixels(data: bytes) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


# ---------------------------------------------------------------- V*


def test_vstar_layout(tmp_path):
    B.vstar(tmp_path)
    exs = load_benchmark("vstar", tmp_path)
    assert [e.example_id for e in exs] == ["vstar/direct_attributes/sa_1", "vstar/direct_attributes/sa_2",
                                           "vstar/relative_position/sa_3"]
    e = exs[0]
    assert e.question == "What is the color of the cup?" and e.source == "vstar"
    assert e.options == ("red", "blue", "green", "white") and e.gold == "A" and e.gold_text == "red"
    assert e.category == "direct_attributes"
    assert e.attributes["target_object"] == ["cup"] and e.attributes["bbox"] == [[1, 2, 3, 4]]
    assert len(e.images) == 1 and e.images[0].path == tmp_path / "direct_attributes" / "sa_1.jpg"
    assert e.images[0].load().shape == (12, 20, 3)
    assert exs[2].options == ("left", "right") and exs[2].category == "relative_position"


def test_vstar_shuffled_options_move_the_gold_letter(tmp_path):
    B.vstar(tmp_path)
    a = load_benchmark("vstar", tmp_path, shuffle_options=True, seed=3)
    b = load_benchmark("vstar", tmp_path, shuffle_options=True, seed=3)
    assert [e.options for e in a] == [e.options for e in b]
    stored = {e.example_id: e.options for e in load_benchmark("vstar", tmp_path)}
    for e in a:
        assert e.gold_text == e.attributes["correct_option"] == stored[e.example_id][0]
        assert sorted(e.options) == sorted(stored[e.example_id])
    golds = {e.gold for s in range(8) for e in load_benchmark("vstar", tmp_path, shuffle_options=True, seed=s)}
    assert len(golds) > 1


def test_vstar_malformed(tmp_path):
    B.vstar(tmp_path)
    (tmp_path / "direct_attributes" / "sa_1.json").write_text("{oops")
    with pytest.raises(DataError, match=r"sa_1\.json, line 1"):
        load_benchmark("vstar", tmp_path)
    (tmp_path / "direct_attributes" / "sa_1.json").write_text(json.dumps({"question": "q", "options": "red"}))
    with pytest.raises(DataError, match=r"sa_1\.json, field 'options'"):
        load_benchmark("vstar", tmp_path)
    (tmp_path / "direct_attributes" / "sa_1.json").unlink()
    with pytest.raises(DataError, match=r"sa_1\.jpg: no annotation file sa_1\.json"):
        load_benchmark("vstar", tmp_path)
    with pytest.raises(DataError, match="no 'direct_attributes' folder"):
        load_benchmark("vstar", tmp_path / "direct_attributes")


def test_vstar_damaged_image(tmp_path):
    B.vstar(tmp_path)
    (tmp_path / "relative_position" / "sa_3.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"sa_3\.jpg, field 'image'.*not a readable image"):
        load_benchmark("vstar", tmp_path)
    assert len(load_benchmark("vstar", tmp_path, verify_images=False)) == 3


# ---------------------------------------------------------------- HR-Bench and VLMEvalKit TSV


@pytest.mark.parametrize("fmt", ["tsv", "parquet"])
@pytest.mark.parametrize("resolution", ["4k", "8k"])
def test_hrbench_layout(tmp_path, fmt, resolution):
    B.hrbench(tmp_path, resolution, fmt)
    exs = load_benchmark(f"hrbench{resolution}", tmp_path)
    assert [e.example_id for e in exs] == [f"hrbench{resolution}/{i}" for i in range(4)]
    e0, e1 = exs[0], exs[1]
    assert e0.question == "Question 0?" and e0.source == f"hrbench{resolution}" and e0.category == "single"
    assert e0.options == ("opt0w", "opt0x", "opt0y", "opt0z") and e0.gold == "A"
    assert e1.options == ("opt0x", "opt0y", "opt0z", "opt0w") and e1.gold == "D" and e1.gold_text == "opt0w"
    assert e1.attributes["cycle_category"] == "cycle1" and e1.attributes["native_id"] == "1"
    assert e0.images[0] is e1.images[0]  # the repeat refers to row 0's image: shared, not copied
    assert e0.images[0].path is None
    np.testing.assert_array_equal(e0.images[0].load(), _pixels(B.image_bytes(seed=0)))
    assert exs[2].category == "cross"


def test_hrbench_malformed(tmp_path):
    rows = B.vlmeval_rows()
    B.write_tsv(tmp_path / "a" / "hr_bench_4k.tsv", [{k: v for k, v in r.items() if k != "category"} for r in rows])
    with pytest.raises(DataError, match=r"hr_bench_4k\.tsv, header row: missing column\(s\) \['category'\]"):
        load_benchmark("hrbench4k", tmp_path / "a")
    bad = [dict(r) for r in rows]
    bad[2]["image"] = "!!!" + "A" * 100
    B.write_tsv(tmp_path / "b" / "hr_bench_4k.tsv", bad)
    with pytest.raises(DataError, match=r"hr_bench_4k\.tsv, row 2 \(index 2\), field 'image': the image is not valid "
                                        "base64"):
        load_benchmark("hrbench4k", tmp_path / "b")
    bad = [dict(r) for r in rows]
    bad[3]["image"] = "99"
    B.write_tsv(tmp_path / "c" / "hr_bench_4k.tsv", bad)
    with pytest.raises(DataError, match=r"row 3 \(index 3\), field 'image': '99' is neither an image nor the index"):
        load_benchmark("hrbench4k", tmp_path / "c")
    bad = [dict(r) for r in rows]
    bad[0]["answer"] = "E"
    B.write_tsv(tmp_path / "d" / "hr_bench_4k.tsv", bad)
    with pytest.raises(DataError, match=r"row 0 \(index 0\), field 'answer': 'E' is not one of"):
        load_benchmark("hrbench4k", tmp_path / "d")
    with pytest.raises(DataError, match="no HR-Bench 8k file"):
        load_benchmark("hrbench8k", tmp_path / "d")


def test_vlmevalkit_tsv_full_format(tmp_path):
    img = B.image_bytes(seed=5)
    B.save_image(tmp_path / "images" / "p0.png", seed=7)
    rows = [
        {"index": 10, "image": B.b64(img), "image_path": "", "question": "What is shown?", "hint": "Look closely.",
         "A": "cat", "B": "dog", "C": "", "D": "", "answer": "B", "category": "coarse", "l2-category": "scene",
         "split": "dev"},
        {"index": 11, "image": "10", "image_path": "", "question": "And now?", "hint": "", "A": "x", "B": "y",
         "C": "z", "D": "", "answer": "C", "category": "fine", "l2-category": "attr", "split": "dev"},
        {"index": 12, "image": str([B.b64(img), B.b64(B.image_bytes(seed=6))]), "image_path": "",
         "question": "Two images?", "hint": "", "A": "same", "B": "different", "C": "", "D": "", "answer": "B",
         "category": "fine", "l2-category": "attr", "split": "test"},
    ]
    path = B.write_tsv(tmp_path / "MMBench_DEV_EN.tsv", rows)
    exs = load_benchmark("vlmevalkit-tsv", path)
    assert [e.example_id for e in exs] == ["vlmevalkit-tsv/10", "vlmevalkit-tsv/11", "vlmevalkit-tsv/12"]
    e = exs[0]
    assert e.question == "What is shown?" and e.options == ("cat", "dog") and e.gold == "B"
    assert e.category == "coarse" and e.source == "vlmevalkit-tsv"
    assert e.attributes["hint"] == "Look closely." and e.attributes["l2-category"] == "scene"
    assert e.attributes["split"] == "dev"
    assert exs[1].options == ("x", "y", "z") and exs[1].images[0] is e.images[0]
    assert len(exs[2].images) == 2
    np.testing.assert_array_equal(exs[2].images[1].load(), _pixels(B.image_bytes(seed=6)))
    # the folder form finds the one TSV; image_path rows read files under image_root
    rows2 = [{"index": 1, "image_path": "p0.png", "question": "Q?", "answer": "free text", "category": "vqa"}]
    B.write_tsv(tmp_path / "other" / "x.tsv", rows2)
    [f] = load_benchmark("vlmevalkit-tsv", tmp_path / "other", image_root=tmp_path / "images", source="myset")
    assert f.example_id == "myset/1" and f.options is None and f.gold == "free text"
    assert f.images[0].path == tmp_path / "images" / "p0.png"


def test_vlmevalkit_tsv_malformed(tmp_path):
    rows = [{"index": 1, "image_path": "../secret.png", "question": "Q?", "answer": "A", "A": "x", "B": "y"}]
    B.write_tsv(tmp_path / "t" / "x.tsv", rows)
    with pytest.raises(DataError, match=r"x\.tsv, row 0 \(index 1\), field 'image_path': image path '\.\./secret\.png' "
                                        "points outside"):
        load_benchmark("vlmevalkit-tsv", tmp_path / "t")
    rows = [{"index": 1, "image_path": "gone.png", "question": "Q?"}]
    B.write_tsv(tmp_path / "u" / "x.tsv", rows)
    with pytest.raises(DataError, match=r"row 0 \(index 1\), field 'image_path': image file .*gone\.png' does not "
                                        "exist"):
        load_benchmark("vlmevalkit-tsv", tmp_path / "u")
    rows = [{"index": 1, "question": "Q?", "A": "x", "B": "", "C": "z", "answer": "A"}]
    B.write_tsv(tmp_path / "v" / "x.tsv", rows)
    with pytest.raises(DataError, match=r"row 0 \(index 1\), field 'C': option C is filled but option B is empty"):
        load_benchmark("vlmevalkit-tsv", tmp_path / "v")
    rows = [{"index": 1, "question": "Q?"}, {"index": 1, "question": "R?"}]
    B.write_tsv(tmp_path / "w" / "x.tsv", rows)
    with pytest.raises(DataError, match=r"row 1 \(index 1\), field 'index': index 1 repeats row 0"):
        load_benchmark("vlmevalkit-tsv", tmp_path / "w")
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "x.tsv").write_text("index\tquestion\n1\tQ\textra\n2\tR\n")
    with pytest.raises(DataError, match=r"x\.tsv: cannot be read as a tsv table"):
        load_benchmark("vlmevalkit-tsv", tmp_path / "y")
    B.write_tsv(tmp_path / "z" / "a.tsv", [{"index": 1, "question": "Q"}])
    B.write_tsv(tmp_path / "z" / "b.tsv", [{"index": 1, "question": "Q"}])
    with pytest.raises(DataError, match="several VLMEvalKit table files"):
        load_benchmark("vlmevalkit-tsv", tmp_path / "z")


# ---------------------------------------------------------------- MME-RealWorld-Lite


@pytest.mark.parametrize("image_dir", ["imgs", "data/imgs", ""])
def test_mme_realworld_lite_layout(tmp_path, image_dir):
    B.mme_realworld_lite(tmp_path, image_dir)
    exs = load_benchmark("mme-realworld-lite", tmp_path)
    assert [e.example_id for e in exs] == [f"mme-realworld-lite/perception/ocr_cc/book_map_poster/{i:04d}"
                                           for i in range(3)]
    e = exs[1]
    assert e.question == "What dish is shown 1?" and e.gold == "C" and e.gold_text == "rice"
    assert e.options == ("ribs", "flakes", "rice", "soup", "The image does not feature the content.")
    assert e.category == "diagram" and e.source == "mme-realworld-lite"
    assert e.attributes == {"subtask": "OCR with Complex Context", "task": "Perception",
                            "question_type": "Multiple Choice", "native_id": "perception/ocr_cc/book_map_poster/0001"}
    assert e.images[0].path == tmp_path / image_dir / "TRAIN_1.png"


def test_mme_realworld_lite_malformed(tmp_path):
    B.mme_realworld_lite(tmp_path)
    recs = json.loads((tmp_path / "MME-RealWorld-Lite.json").read_text())
    recs[2]["Answer choices"][1] = "flakes"
    (tmp_path / "MME-RealWorld-Lite.json").write_text(json.dumps(recs))
    with pytest.raises(DataError, match=r"MME-RealWorld-Lite\.json, row 2 \(Question_id .*0002\), field 'Answer "
                                        r"choices': choice 1 'flakes' should start with '\(B\)'"):
        load_benchmark("mme-realworld-lite", tmp_path)
    recs[2]["Answer choices"][1] = "(B) flakes"
    recs[0]["Image"] = "missing.png"
    (tmp_path / "MME-RealWorld-Lite.json").write_text(json.dumps(recs))
    with pytest.raises(DataError, match=r"row 0 .*field 'Image': 'missing\.png' is not under"):
        load_benchmark("mme-realworld-lite", tmp_path)
    recs[0]["Image"] = "TRAIN_0.png"
    del recs[1]["Text"]
    (tmp_path / "MME-RealWorld-Lite.json").write_text(json.dumps(recs))
    with pytest.raises(DataError, match=r"row 1 .*field 'Text': expected non-empty text"):
        load_benchmark("mme-realworld-lite", tmp_path)


# ---------------------------------------------------------------- TableVQA-Bench


def test_tablevqa_layout(tmp_path):
    B.tablevqa(tmp_path)
    exs = load_benchmark("tablevqa", tmp_path)
    assert len(exs) == 8
    assert [e.category for e in exs[::2]] == ["vwtq", "vwtq_syn", "vtabfact", "fintabnetqa"]
    e = exs[3]
    assert e.example_id == "tablevqa/vwtq_syn/vwtq_syn_1" and e.question == "What is in row 1?" and e.gold == "101"
    assert e.options is None and e.source == "tablevqa"
    assert e.attributes == {"subset": "vwtq_syn", "native_id": "vwtq_syn_1", "text_markdown_table": "| a | b |",
                            "text_html_table": "<table/>"}
    np.testing.assert_array_equal(e.images[0].load(), _pixels(B.image_bytes(seed=11)))
    only = load_benchmark("tablevqa", tmp_path, subsets=["vtabfact"], tables=False)
    assert [e.example_id for e in only] == ["tablevqa/vtabfact/vtabfact_0", "tablevqa/vtabfact/vtabfact_1"]
    assert "text_html_table" not in only[0].attributes


def test_tablevqa_malformed(tmp_path):
    B.tablevqa(tmp_path, subsets=("vwtq",))
    with pytest.raises(DataError, match=r"expected one vwtq_syn-\*\.parquet file"):
        load_benchmark("tablevqa", tmp_path)
    path = next((tmp_path / "data").glob("vwtq-*.parquet"))
    frame = pd.read_parquet(path)
    frame["image"] = [frame["image"][0], {"bytes": b"\x00garbage", "path": "1.png"}]
    frame.to_parquet(path)
    with pytest.raises(DataError, match=r"vwtq-.*\.parquet, row 1 \(qa_id vwtq_1\), field 'image'.*not a readable"):
        load_benchmark("tablevqa", tmp_path, subsets=["vwtq"])
    frame.drop(columns=["gt"]).to_parquet(path)
    with pytest.raises(DataError, match=r"header row: missing column\(s\) \['gt'\]"):
        load_benchmark("tablevqa", tmp_path, subsets=["vwtq"])


# ---------------------------------------------------------------- VSP (Mirage)


def test_vsp_layout(tmp_path):
    B.vsp(tmp_path)
    exs = load_benchmark("vsp", tmp_path)
    assert [e.example_id for e in exs] == ["vsp/level3/1", "vsp/level3/2", "vsp/level4/1", "vsp/level4/2"]
    e = exs[2]
    assert e.question.startswith("Here is the map: <image>") and e.gold is None and e.options is None
    assert e.category == "level4" and e.source == "vsp"
    assert e.attributes["map_desc"] == B.VSP_MAPS[4, "1"] and e.attributes["map_id"] == "1"
    assert e.images[0].path == tmp_path / "imgs_test/level4/img/1.png"
    # from Mirage's repository root the stored paths resolve as written
    repo = tmp_path / "mirage"
    B.vsp(repo / "data" / "vsp_spatial_planning")
    exs2 = load_benchmark("vsp", repo, file="data/vsp_spatial_planning/test_direct.jsonl")
    assert [x.example_id for x in exs2] == [x.example_id for x in exs]


def test_vsp_malformed(tmp_path):
    B.vsp(tmp_path)
    lines = (tmp_path / "test_direct.jsonl").read_text().splitlines()
    rec = json.loads(lines[1])
    rec["image_input"] = "../../etc/passwd"
    (tmp_path / "test_direct.jsonl").write_text("\n".join([lines[0], json.dumps(rec)]) + "\n")
    with pytest.raises(DataError, match=r"test_direct\.jsonl, line 2, field 'image_input': image path .* points "
                                        "outside"):
        load_benchmark("vsp", tmp_path)
    (tmp_path / "test_direct.jsonl").write_text(lines[0] + "\n{broken\n")
    with pytest.raises(DataError, match=r"test_direct\.jsonl, line 2: not valid JSON"):
        load_benchmark("vsp", tmp_path)
    rec = json.loads(lines[0])
    del rec["map_desc"]
    (tmp_path / "test_direct.jsonl").write_text(json.dumps(rec) + "\n")
    with pytest.raises(DataError, match=r"line 1, field 'map_desc': missing"):
        load_benchmark("vsp", tmp_path)


# ---------------------------------------------------------------- GSM8k-Aug, ProsQA


def test_gsm8k_aug_coconut_and_codi(tmp_path):
    B.gsm_coconut(tmp_path / "coconut")
    exs = load_benchmark("gsm8k-aug", tmp_path / "coconut")
    assert [e.example_id for e in exs] == ["gsm8k-aug/0", "gsm8k-aug/1"]
    e = exs[1]
    assert e.question == "A pen costs 4. Two pens?" and e.gold == "8" and e.images == () and e.options is None
    assert e.category is None and e.source == "gsm8k-aug"
    assert e.attributes["steps"] == ["<<4*2=8>>", "<<8*1=8>>"] and e.attributes["cot"] == "<<4*2=8>> <<8*1=8>>"
    B.gsm_codi(tmp_path / "codi")
    codi = load_benchmark("gsm8k-aug", tmp_path / "codi", split="test")
    assert codi[0].attributes["steps"] == ["<<1+1=2>>", "<<2*3=6>>"] and codi[0].gold == "6"
    cols = tmp_path / "cols.json"
    cols.write_text(json.dumps({"question": ["a?", "b?"], "cot": ["<<1=1>>", "<<2=2>>"], "answer": ["1", "2"]}))
    assert [e.gold for e in load_benchmark("gsm8k-aug", cols)] == ["1", "2"]


def test_gsm8k_aug_malformed(tmp_path):
    (tmp_path / "gsm_test.json").write_text(json.dumps([{"question": "q", "answer": "1"}]))
    with pytest.raises(DataError, match=r"gsm_test\.json, row 0, field 'steps': missing"):
        load_benchmark("gsm8k-aug", tmp_path)
    (tmp_path / "gsm_test.json").write_text(json.dumps([{"question": "q", "steps": []}]))
    with pytest.raises(DataError, match=r"row 0, field 'answer': missing or empty"):
        load_benchmark("gsm8k-aug", tmp_path)
    with pytest.raises(DataError, match="no GSM8k-Aug file for split 'valid'"):
        load_benchmark("gsm8k-aug", tmp_path, split="valid")


def test_prosqa_layout_and_errors(tmp_path):
    B.prosqa(tmp_path)
    exs = load_benchmark("prosqa", tmp_path)
    e = exs[0]
    assert e.example_id == "prosqa/0" and e.gold == "Tom is a yumpus." and e.source == "prosqa"
    assert e.question.endswith("Is Tom a yumpus or zumpus?") and e.options is None and e.images == ()
    assert e.attributes["steps"] == ["Tom is a wumpus.", "Every wumpus is a yumpus."]
    assert e.attributes["edges"] == [[0, 1], [1, 2]] and exs[1].attributes["edges"] == [[0, 1]]
    assert e.attributes["idx_to_symbol"] == ["Tom", "wumpus", "yumpus", "zumpus"]
    assert (e.attributes["root"], e.attributes["target"], e.attributes["neg_target"]) == (0, 2, 3)
    assert e.attributes["n_steps"] == 2
    data = json.loads((tmp_path / "prosqa_test.json").read_text())
    data[1]["edges"] = "[[0, 1"
    (tmp_path / "prosqa_test.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"prosqa_test\.json, row 1, field 'edges': not valid JSON"):
        load_benchmark("prosqa", tmp_path)


# ---------------------------------------------------------------- JSONL, datasets folders, the registry


def test_jsonl_examples(tmp_path):
    B.save_image(tmp_path / "im" / "a.png")
    rows = [{"id": "q1", "question": "Which?", "image": "im/a.png", "options": ["x", "y"], "answer": "B",
             "category": "c1", "extra": 3},
            {"question": "Text only", "answer": "7", "options": {"A": "p", "B": "q"}}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    a, b = load_benchmark("jsonl", tmp_path / "d.jsonl")
    assert a.example_id == "jsonl/q1" and a.options == ("x", "y") and a.gold == "B" and a.category == "c1"
    assert a.attributes == {"extra": 3, "id": "q1", "native_id": "q1"} and a.images[0].path == tmp_path / "im/a.png"
    assert b.example_id == "jsonl/1" and b.images == () and b.options == ("p", "q")
    (tmp_path / "e.jsonl").write_text(json.dumps({"question": "q", "image": "/etc/passwd"}) + "\n")
    with pytest.raises(DataError, match=r"e\.jsonl, line 1, field 'image': image path '/etc/passwd' points outside"):
        load_benchmark("jsonl", tmp_path / "e.jsonl")


def test_hf_disk_examples(tmp_path):
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    img = Image.fromarray(np.full((8, 10, 3), 7, np.uint8))
    ds = datasets.Dataset.from_dict({"id": ["a", "b"], "question": ["q1", "q2"], "answer": ["1", "2"],
                                     "image": [img, img]}).cast_column("image", datasets.Image())
    ds.save_to_disk(str(tmp_path / "ds"))
    exs = load_benchmark("hf-disk", tmp_path / "ds")
    assert [e.example_id for e in exs] == ["hf-disk/a", "hf-disk/b"] and exs[1].gold == "2"
    np.testing.assert_array_equal(exs[0].images[0].load(), np.asarray(img))
    datasets.DatasetDict({"test": ds}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(DataError, match=r"holds splits \['test'\]; pass split="):
        load_benchmark("hf-disk", tmp_path / "dd")
    assert len(load_benchmark("hf-disk", tmp_path / "dd", split="test")) == 2
    multi = datasets.Dataset.from_dict({"question": ["q"], "pics": [[img, img]]})
    multi = multi.cast_column("pics", datasets.List(datasets.Image()))
    multi.save_to_disk(str(tmp_path / "multi"))
    [m] = load_benchmark("hf-disk", tmp_path / "multi", image_key="pics")
    assert m.example_id == "hf-disk/0" and len(m.images) == 2 and m.images[1].load().shape == (8, 10, 3)


def test_registry_names_and_options(tmp_path):
    assert BENCHMARKS == ("vstar", "hrbench4k", "hrbench8k", "mme-realworld-lite", "tablevqa", "vsp",
                          "vlmevalkit-tsv", "gsm8k-aug", "prosqa", "jsonl", "hf-disk")
    with pytest.raises(DataError, match=r"unknown benchmark 'mmbench'; use one of \['vstar'"):
        load_benchmark("mmbench", tmp_path)
    with pytest.raises(DataError, match=r"benchmark 'hrbench4k' takes no option\(s\) \['resolution'\]"):
        load_benchmark("hrbench4k", tmp_path, resolution="8k")
    with pytest.raises(DataError, match="is not a folder"):
        load_benchmark("vstar", tmp_path / "nope")


def test_examples_and_image_refs_validate_themselves():
    with pytest.raises(DataError, match="non-empty str"):
        Example("", "q", None)
    with pytest.raises(DataError, match="gold must be a str or None"):
        Example("x", "q", 3)
    with pytest.raises(DataError, match="options must be 1 to 26"):
        Example("x", "q", None, options=())
    with pytest.raises(DataError, match="either a path or the image's bytes, not neither"):
        ImageRef(path=None, data=None, where="w")
    assert "bytes>" in repr(ImageRef(path=None, data=b"123", where="w"))


def test_examples_hash_by_identity_fields():
    a = Example("x/1", "q", "A", options=("p", "q"), attributes={"steps": [1]})
    b = Example("x/1", "q", "A", options=("p", "q"), attributes={"steps": [1]})
    assert a == b and len({a, b}) == 1
