"""Tiny benchmarks in their published on-disk layouts, built in a test's tmp_path (see docs/howto/benchmarks.md)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


def image_bytes(h: int = 12, w: int = 20, seed: int = 0, fmt: str = "PNG") -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def save_image(path: Path, h: int = 12, w: int = 20, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    path.write_bytes(image_bytes(h, w, seed, fmt))
    return path


def vstar(root: Path) -> Path:
    """``direct_attributes/`` and ``relative_position/``: image + same-stem JSON (first option correct)."""
    items = {
        "direct_attributes": [("sa_1", "What is the color of the cup?", ["red", "blue", "green", "white"]),
                              ("sa_2", "What is the material of the bag?", ["leather", "cloth", "plastic", "paper"])],
        "relative_position": [("sa_3", "Is the dog on the left or right of the cat?", ["left", "right"])],
    }
    for k, (cat, rows) in enumerate(items.items()):
        for j, (stem, q, opts) in enumerate(rows):
            save_image(root / cat / f"{stem}.jpg", seed=10 * k + j)
            (root / cat / f"{stem}.json").write_text(json.dumps(
                {"target_object": ["cup"], "bbox": [[1, 2, 3, 4]], "question": q, "options": opts}))
    return root


def vlmeval_rows(n_questions: int = 2, cycles: int = 2) -> list[dict]:
    """HR-Bench-like rows: each question ``cycles`` times with options rotated; repeats refer to row 0's image."""
    rows = []
    for q in range(n_questions):
        texts = [f"opt{q}{c}" for c in "wxyz"]
        for c in range(cycles):
            idx = q * cycles + c
            opts = texts[c:] + texts[:c]
            rows.append({"index": idx, "question": f"Question {q}?", "answer": "ABCD"[opts.index(texts[0])],
                         "category": "single" if q % 2 == 0 else "cross", "A": opts[0], "B": opts[1], "C": opts[2],
                         "D": opts[3], "cycle_category": f"cycle{c}",
                         "image": b64(image_bytes(seed=q)) if c == 0 else str(q * cycles)})
    return rows


def write_tsv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    return path


def hrbench(root: Path, resolution: str = "4k", fmt: str = "tsv") -> Path:
    rows = vlmeval_rows()
    path = root / f"hr_bench_{resolution}.{fmt}"
    root.mkdir(parents=True, exist_ok=True)
    if fmt == "tsv":
        write_tsv(path, rows)
    else:
        pd.DataFrame(rows).to_parquet(path)
    return path


def mme_realworld_lite(root: Path, image_dir: str = "imgs") -> Path:
    recs = []
    for i in range(3):
        name = f"TRAIN_{i}.png"
        save_image(root / image_dir / name, seed=i)
        recs.append({"Question_id": f"perception/ocr_cc/book_map_poster/{i:04d}", "Image": name,
                     "Text": f"What dish is shown {i}?", "Question Type": "Multiple Choice",
                     "Answer choices": ["(A) ribs", "(B) flakes", "(C) rice", "(D) soup",
                                        "(E) The image does not feature the content."],
                     "Ground truth": "BCA"[i], "Category": ["book_map_poster", "diagram", "book_map_poster"][i],
                     "Subtask": "OCR with Complex Context", "Task": "Perception"})
    (root / "MME-RealWorld-Lite.json").write_text(json.dumps(recs))
    return root


def mme_realworld_lite_tsv(root: Path) -> Path:
    """``mme_realworld_lite.tsv`` as VLMEvalKit downloads it (``yifanzhang114/MME-RealWorld-Base64``): columns
    ``index, image, question, multi-choice options, answer, category, l2-category``, the options a Python list
    literal of ``"(A) text"`` strings, no letter columns (VLMEvalKit's ``MMERealWorld.load_data`` adds them)."""
    rows = []
    for i in range(3):
        opts = [f"(A) {10 + i}", f"(B) {20 + i}", "(C) 7", "(D) 0", "(E) The image does not feature the number."]
        rows.append({"index": i, "image": b64(image_bytes(seed=20 + i)), "question": f"How many cars are there {i}?",
                     "multi-choice options": str(opts), "answer": "BCE"[i],
                     "category": ["Perception/Remote Sensing/count", "Reasoning/Monitoring/count",
                                  "Perception/Remote Sensing/count"][i],
                     "l2-category": ["Perception", "Reasoning", "Perception"][i]})
    return write_tsv(root / "mme_realworld_lite.tsv", rows)


def tablevqa(root: Path, subsets: tuple[str, ...] = ("vwtq", "vwtq_syn", "vtabfact", "fintabnetqa")) -> Path:
    (root / "data").mkdir(parents=True, exist_ok=True)
    for k, subset in enumerate(subsets):
        rows = [{"qa_id": f"{subset}_{i}", "image": {"bytes": image_bytes(seed=k * 10 + i), "path": f"{i}.png"},
                 "question": f"What is in row {i}?", "text_markdown_table": "| a | b |", "text_html_table": "<table/>",
                 "gt": str(100 + i)} for i in range(2)]
        pd.DataFrame(rows).to_parquet(root / "data" / f"{subset}-00000-of-00001-abc{k}.parquet")
    return root


#: The fixture's VSP maps by (level, map id): level k is a k x k grid (1 start, 2 goal, -1 hole, 0 ice).
VSP_MAPS = {
    (3, "1"): [[2, -1, 1], [0, 0, 0], [0, 0, 0]],
    (3, "2"): [[1, 0, 0], [-1, -1, 0], [2, 0, 0]],
    (4, "1"): [[0, 0, 0, 1], [0, -1, -1, 0], [0, -1, 2, 0], [0, 0, 0, 0]],
    (4, "2"): [[-1, 0, 0, 2], [0, 0, -1, 0], [1, -1, 0, 0], [0, 0, 0, -1]],
}


def vsp(root: Path) -> Path:
    """Mirage's ``data/vsp_spatial_planning`` after unpacking the test archive (maps: :data:`VSP_MAPS`)."""
    lines = []
    for level in (3, 4):
        for map_id in ("1", "2"):
            rel = f"imgs_test/level{level}/img/{map_id}.png"
            save_image(root / rel, seed=level * 10 + int(map_id))
            lines.append({"text_input": "Here is the map: <image>\n\nPlease provide your action plan.",
                          "image_input": f"./data/vsp_spatial_planning/{rel}", "map_id": map_id,
                          "map_desc": VSP_MAPS[level, map_id]})
    (root / "test_direct.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return root


def gsm_coconut(root: Path, split: str = "test") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    data = [{"question": "Tom has 3 apples and buys 2. How many?", "steps": ["<<3+2=5>>"], "answer": "5"},
            {"question": "A pen costs 4. Two pens?", "steps": ["<<4*2=8>>", "<<8*1=8>>"], "answer": "8"}]
    (root / f"gsm_{split}.json").write_text(json.dumps(data))
    return root


def gsm_codi(root: Path) -> Path:
    (root / "data").mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"question": ["Q one?", "Q two?"], "cot": ["<<1+1=2>> <<2*3=6>>", "<<5-1=4>>"],
                  "answer": ["6", "4"]}).to_parquet(root / "data" / "test-00000-of-00001.parquet")
    return root


def prosqa(root: Path, split: str = "test") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    data = [{"question": "Every wumpus is a yumpus. Tom is a wumpus. Is Tom a yumpus or zumpus?",
             "answer": "Tom is a yumpus.", "steps": ["Tom is a wumpus.", "Every wumpus is a yumpus."],
             "idx_to_symbol": ["Tom", "wumpus", "yumpus", "zumpus"], "edges": "[[0, 1], [1, 2]]",
             "root": 0, "target": 2, "neg_target": 3},
            {"question": "Sam is a lorpus. Is Sam a lorpus or tumpus?", "answer": "Sam is a lorpus.",
             "steps": ["Sam is a lorpus."], "idx_to_symbol": ["Sam", "lorpus", "tumpus"], "edges": [[0, 1]],
             "root": 0, "target": 1, "neg_target": 2}]
    (root / f"prosqa_{split}.json").write_text(json.dumps(data))
    return root
