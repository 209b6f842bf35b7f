"""display: list items are clipped, so long answers print short."""

from latentprobe import toy
from latentprobe.display import clip, short_list


def test_short_list_clips_each_item():
    text = short_list(["x" * 500, "y" * 500, "z", "w", "v"])
    assert len(text) < 150 and text.endswith("(+1)") and "…" in text
    assert clip("abc", 5) == "abc" and clip("abcdef", 5) == "abcd…"


def test_a_trace_with_long_answers_prints_short():
    tm = toy.load("mediated")
    trace = tm.run(tm.examples("test", 3))
    long = type(trace)(examples=tuple(e.replace(answer_text="word " * 400) for e in trace.examples), spec=trace.spec,
                       config=trace.config)
    assert "word word" in repr(long) and len(repr(long)) < 2000  # the answers shown, clipped
