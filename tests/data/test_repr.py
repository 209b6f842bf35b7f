"""Collections print short: an InputSet, a list of Example records and a Sample (not their images or texts)."""

from __future__ import annotations

from latentprobe.data import load_benchmark, sample, to_input_set

from . import builders as B


def _examples(tmp_path, n=32):
    rows = [{"index": i, "image": B.b64(B.image_bytes(h=64, w=64, seed=i)), "question": "What is shown here? " * 30,
             "A": "a long option text " * 10, "B": "dog", "answer": "A", "category": f"c{i % 3}"} for i in range(n)]
    return load_benchmark("vlmevalkit-tsv", B.write_tsv(tmp_path / "t.tsv", rows))


def test_an_input_set_of_32_examples_prints_a_few_lines(tmp_path):
    inputs = to_input_set(_examples(tmp_path))
    text = repr(inputs)
    assert len(text) < 800 and len(text.splitlines()) <= 8
    assert text.startswith("InputSet: 32 example(s)")
    assert "[64 x 64 x 3] uint8" in text and "(+28)" in text and "array(" not in text
    assert "<table>" in inputs._repr_html_()


def test_examples_and_samples_print_one_short_line_each(tmp_path):
    exs = _examples(tmp_path)
    assert len(repr(exs[0])) < 200 and "options=2" in repr(exs[0]) and "images=1" in repr(exs[0])
    assert len(repr(exs)) < 32 * 200
    picked = sample(exs, 10, by="category", seed=0)
    assert len(repr(picked)) < 500 and repr(picked).startswith("Sample: 10 example(s)")
