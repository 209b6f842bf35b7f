"""Write ``capimagine-rewrite.jsonl``: a directed rewrite and a same-length placebo of the ``text`` toy's caption
for every toy test example (the toy writes ``caption_for(example)`` between its markers).

Directed rewrite: the answer-bearing word changed (an object's colour, a count's number), so a model that reads
its caption would answer otherwise. Placebo: the same number of words, the answer-bearing words kept (an object's
size changed; a count caption is repeated as it is).

    python examples/studies/paper/toy/make_rewrites.py
"""

from __future__ import annotations

import json
from pathlib import Path

from latentprobe import toy
from latentprobe.toy.scene import COLOURS, COUNT_WORDS
from latentprobe.toy.vocab import caption_for


def rewrites(example) -> dict[str, str]:
    words = caption_for(example).split()
    if example.target is None:  # "{count} {colour} shapes"
        wrong = next(c for c in COUNT_WORDS if c != words[0])
        return {"rewrite": " ".join([wrong] + words[1:]), "placebo": " ".join(words)}
    wrong = next(c for c in COLOURS if c != words[0])  # "{colour} {shape} {size} row .. col .."
    size = {"large": "small", "small": "large"}[words[2]]
    return {"rewrite": " ".join([wrong] + words[1:]), "placebo": " ".join(words[:2] + [size] + words[3:])}


def main() -> None:
    out = Path(__file__).with_name("capimagine-rewrite.jsonl")
    tm = toy.load("text")
    with out.open("w", encoding="utf-8") as f:
        for ex in tm.examples("test"):
            f.write(json.dumps({"example_id": ex.example_id, **rewrites(ex)}) + "\n")


if __name__ == "__main__":
    main()
