"""RewriteSpan on the shipped ``text`` toy: only the span's tokens change, the answer is decoded afresh, and the
JSONL file is checked (ids, fields, same-length placebos)."""

from __future__ import annotations

import json

import pytest

from latentprobe import RewriteSpan, intervention_from_config, toy
from latentprobe.engine.rewrite import rewrite_spans, text_spans
from latentprobe.errors import InterventionError
from latentprobe.toy.scene import COLOURS


@pytest.fixture(scope="module")
def text_run():
    tm = toy.load("text")
    ex = [e for e in tm.examples("test", 120) if "colour" in e.question][:24]
    runner = tm.runner()
    trace = runner.run(tm.prompts(ex), tm.images(ex), max_new_tokens=16, progress=False, batch_size=24)
    return tm, runner, trace


def _write(tmp_path, tm, trace, name="rewrites.jsonl"):
    """Directed rewrite: the colour word replaced by another colour; placebo: the size word changed (same length)."""
    path = tmp_path / name
    with path.open("w") as f:
        for e in trace:
            o, end = text_spans(e)[0]
            words = tm.tokenizer.decode(e.input_ids[o + 1:end].tolist()).split()
            wrong = next(c for c in COLOURS if c != words[0])
            size = {"large": "small", "small": "large"}[words[2]]
            f.write(json.dumps({"example_id": e.example_id, "rewrite": " ".join([wrong] + words[1:]),
                                "placebo": " ".join(words[:2] + [size] + words[3:])}) + "\n")
    return path


def test_the_rewrite_changes_only_the_span_and_decodes_the_answer_again(tmp_path, text_run):
    tm, runner, trace = text_run
    path = _write(tmp_path, tm, trace)
    texts = RewriteSpan(path).texts()
    out = rewrite_spans(runner, trace, RewriteSpan(path, same_length=True), progress=False, batch_size=24)
    for e, r in zip(trace, out):
        o, end = text_spans(e)[0]
        new = tm.tokenizer(texts[e.example_id], add_special_tokens=False).input_ids
        assert r.meta["rewritten"] is True
        # token diff outside the span: zero (prefix and close marker); inside: exactly the given text
        assert r.input_ids[:o + 1].tolist() == e.input_ids[:o + 1].tolist()
        assert r.input_ids[o + 1:end].tolist() == new and new != e.input_ids[o + 1:end].tolist()
        assert int(r.input_ids[end]) == int(e.input_ids[end])  # the close marker
        assert r.answer_start == end + 1
        # the span's fed vectors are the new tokens' embeddings
        emb = runner.parts.embed.weight[new].detach().float()
        assert (r.z.float() - emb).abs().max() < 1e-6
    # the placebo (same length, colour kept) leaves every answer as it was
    placebo = rewrite_spans(runner, trace, RewriteSpan(path, field="placebo", same_length=True), progress=False,
                            batch_size=24)
    flips = sum(a != b for a, b in zip(trace.answers, placebo.answers))
    assert flips <= 0.05 * len(trace)


def test_rewriting_the_span_with_its_own_text_reproduces_the_run(tmp_path, text_run):
    tm, runner, trace = text_run
    path = tmp_path / "same.jsonl"
    path.write_text("".join(json.dumps({"example_id": e.example_id, "rewrite": tm.tokenizer.decode(
        e.input_ids[text_spans(e)[0][0] + 1:text_spans(e)[0][1]].tolist())}) + "\n" for e in trace))
    out = rewrite_spans(runner, trace, RewriteSpan(path, same_length=True), progress=False, batch_size=24)
    assert out.answers == trace.answers
    for e, r in zip(trace, out):
        assert r.input_ids.tolist() == e.input_ids.tolist()
        assert (r.h_src - e.h_src).abs().max() < 1e-4


def test_the_file_is_checked(tmp_path, text_run):
    tm, runner, trace = text_run
    path = _write(tmp_path, tm, trace)
    lines = path.read_text().splitlines()
    short = tmp_path / "short.jsonl"
    short.write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(InterventionError, match="have no 'rewrite' line"):
        rewrite_spans(runner, trace, RewriteSpan(short), progress=False)
    kept = rewrite_spans(runner, trace, RewriteSpan(short, missing="keep"), progress=False, batch_size=24)
    assert kept[0].meta["rewritten"] is False and kept[0].answer_text == trace[0].answer_text
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"example_id": trace[0].example_id, "rewrite": "red red"}) + "\n")
    with pytest.raises(InterventionError, match="same length"):
        rewrite_spans(runner, trace.select([0]), RewriteSpan(bad, same_length=True), progress=False)
    with pytest.raises(InterventionError, match="repeats example id"):
        dup = tmp_path / "dup.jsonl"
        dup.write_text(lines[0] + "\n" + lines[0] + "\n")
        RewriteSpan(dup).texts()
    with pytest.raises(InterventionError, match="refuse|replaces the tokens"):
        RewriteSpan(path)(trace[0].z[0], 0, trace[0])
    assert intervention_from_config(RewriteSpan(path, field="placebo").to_config()) == RewriteSpan(path, field="placebo")


def test_a_latent_model_is_refused(tmp_path):
    tm = toy.load("mediated")
    ex = tm.examples("test", 2)
    runner = tm.runner()
    trace = runner.run(tm.prompts(ex), tm.images(ex), max_new_tokens=8, progress=False)
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps({"example_id": e.example_id, "rewrite": "red"}) + "\n" for e in trace))
    with pytest.raises(InterventionError, match="mediator='latent'"):
        rewrite_spans(runner, trace, RewriteSpan(path), progress=False)


COLOUR_TEMPLATES = ("colour_left_of", "colour_of_shape")


def test_a_wrong_colour_rewrite_flips_the_colour_answers_and_the_placebo_flips_almost_none():
    """The issue's criterion, on the shipped rewrite file of the toy twin (examples/studies/paper/toy/make_rewrites.py):
    on colour questions a wrong-colour caption flips >= 80% of the answers, to the rewritten colour; the
    same-length placebo (the size word changed) flips <= 5% of them, and <= 5% of all answers."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "studies" / "paper" / "toy" / "capimagine-rewrite.jsonl"
    tm = toy.load("text")
    ex = tm.examples("test", 160)
    runner = tm.runner()
    trace = runner.run(tm.prompts(ex), tm.images(ex), example_ids=[x.example_id for x in ex], max_new_tokens=16,
                       progress=False, batch_size=40)
    rewrite = rewrite_spans(runner, trace, RewriteSpan(str(path)), progress=False, batch_size=40)
    placebo = rewrite_spans(runner, trace, RewriteSpan(str(path), field="placebo", same_length=True), progress=False,
                            batch_size=40)
    texts = RewriteSpan(str(path)).texts()
    before, after, still = trace.answers, rewrite.answers, placebo.answers
    colour = [i for i, x in enumerate(ex) if x.template in COLOUR_TEMPLATES]
    assert len(colour) >= 60
    flips = [before[i] != after[i] for i in colour]
    assert sum(flips) >= 0.8 * len(colour)
    # a flip is to the colour the rewrite wrote, not to some other word
    to_written = [after[i] == texts[ex[i].example_id].split()[0] for i in colour]
    assert sum(to_written) >= 0.8 * len(colour)
    assert sum(before[i] != still[i] for i in colour) <= 0.05 * len(colour)
    assert sum(a != b for a, b in zip(before, still)) <= 0.05 * len(trace)


def test_the_fingerprint_follows_the_files_texts(tmp_path):
    from latentprobe.fingerprint import intervention_fingerprint

    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"example_id": "a", "rewrite": "red", "placebo": "blue"}) + "\n")
    before = intervention_fingerprint(RewriteSpan(path))
    assert intervention_fingerprint(RewriteSpan(path, field="placebo")) != before
    path.write_text(json.dumps({"example_id": "a", "rewrite": "green", "placebo": "blue"}) + "\n")
    assert intervention_fingerprint(RewriteSpan(path)) != before
