"""Attention rows from the selected queries equal the model's eager attention weights, on tiny GPT-2, Llama and
Qwen2.5-VL (multimodal RoPE, grouped-query heads) run with sdpa; the planted toys' masks show up as exact zeros."""

from __future__ import annotations

import pytest
import torch

from latentprobe import readouts, toy
from latentprobe.engine import LatentRunner
from latentprobe.engine.modes import _row_from_example
from latentprobe.engine.protocol import ProtocolState
from latentprobe.errors import InputError, StepOutOfRangeError
from latentprobe.readout_schema import ATTENTION_ENTROPY, ATTENTION_MASS, ATTENTION_TOP
from latentprobe.readouts.attention import REGIONS, attention_rows, key_regions, query_positions
from latentprobe.trace import Segment
from tiny import force_open, tiny_llama

LAT6 = " ".join(["<|latent|>"] * 6)
TEXT = [f"a b <|start-latent|> {LAT6} <|end-latent|> answer :",
        f"what is the red circle ? <|start-latent|> {LAT6} <|end-latent|> answer :"]
VL = ["<|vision_start|> <|image_pad|> <|vision_end|> what colour is the circle ?",
      "what colour <|vision_start|> <|image_pad|> <|vision_end|> is the red square ? a b c"]


def _eager_copy(model, tmp_path):
    """The same weights loaded with attn_implementation="eager" (the reference)."""
    model.save_pretrained(tmp_path)
    return type(model).from_pretrained(tmp_path, attn_implementation="eager").eval()


def _eager_rows(runner, eager, e, positions):
    """Full eager attention weights of the recorded sequence (output_attentions=True), at the query rows."""
    dec = runner._decoder
    row = _row_from_example(e, e.seq_len, ProtocolState())
    embeds, mask, pos, _, _ = dec.embed_prefix([row])
    attn = dec.attention(torch.tensor(row.segs)[None], mask, embeds.shape[1])
    with torch.no_grad():
        out = eager(inputs_embeds=embeds, attention_mask=attn, position_ids=pos, output_attentions=True,
                    use_cache=False)
    return [a[0][:, positions].float() for a in out.attentions]


def _run(name, request):
    tok = request.getfixturevalue("tok")
    if name == "qwen":
        model = request.getfixturevalue("qwen")
        runner = LatentRunner(model, tok, "mirage")
        lens = {i: len(runner._tokenize(p)) + 15 for i, p in enumerate(VL)}
        proc = force_open(tok, runner.spec.open_token, {0: 0, 1: 2}, lens)
        imgs = request.getfixturevalue("images")[:2]
        return runner, runner.run(VL, imgs, logits_processor=proc, max_new_tokens=16, progress=False)
    runner = LatentRunner(request.getfixturevalue(name), tok, "coconut")
    return runner, runner.run(TEXT, max_new_tokens=8, progress=False)


@pytest.mark.parametrize("name", ["gpt2", "llama", "qwen"])
def test_rows_equal_eager_weights(name, request, tmp_path):
    runner, trace = _run(name, request)
    assert runner.model.config._attn_implementation == "sdpa"  # read with the model's own implementation
    eager = _eager_copy(runner.model, tmp_path)
    if name != "gpt2":  # grouped-query heads: 4 query heads share 2 key/value heads
        attn_cfg = runner.model.config.get_text_config()
        assert attn_cfg.num_attention_heads == 2 * attn_cfg.num_key_value_heads
    for e in trace:
        assert e.num_latents > 0
        positions = [p for _, _, p in query_positions(e, ("latents", "close", "answer", "last_prompt"))]
        rows = attention_rows(runner, e, positions)
        ref = _eager_rows(runner, eager, e, positions)
        assert sorted(rows) == list(range(runner.n_layers))
        for layer, want in enumerate(ref):
            got = rows[layer]
            assert got.shape == want.shape == (4, len(positions), e.seq_len)
            assert float((got - want).abs().max()) <= 1e-5, (name, e.example_id, layer)
            torch.testing.assert_close(got.sum(-1), torch.ones(got.shape[:2]), rtol=0, atol=1e-5)
    assert runner.model.config._attn_implementation == "sdpa"


def test_mrope_positions_matter(request):
    """The Qwen2.5-VL rows use 3-D rotary positions: with 1-D positions they differ (so the test above can fail)."""
    runner, trace = _run("qwen", request)
    e = trace[0]
    assert e.positions_of(Segment.IMAGE).numel() == 16
    pos = e.latent_positions.tolist()
    rows = attention_rows(runner, e, pos, layers=[0])[0]
    dec = runner._decoder
    row = _row_from_example(e, e.seq_len, ProtocolState())
    embeds, mask, mpos, _, _ = dec.embed_prefix([row])
    flat = torch.arange(e.seq_len)[None].expand(3, 1, -1)
    assert not torch.equal(mpos.cpu(), flat)
    from latentprobe.readouts._rows import attention_modules, capture_rows
    got = {}
    with capture_rows(runner.model, attention_modules(runner.parts.layers), torch.tensor(pos),
                      lambda l, p: got.setdefault(l, p[0]), {0}):
        dec.forward(embeds, mask, flat, None, None, [], logits=False, untraced=True)
    assert float((got[0] - rows).abs().max()) > 1e-4


def test_toy_with_mask_rule_equals_eager(tmp_path):
    tm = toy.load("blind")
    ex = tm.examples("test", 2)
    runner = tm.runner()
    trace = runner.run(tm.prompts(ex), tm.images(ex), max_new_tokens=16, progress=False)
    eager = _eager_copy(runner.model, tmp_path)
    for e in trace:
        positions = [p for _, _, p in query_positions(e, ("latents", "close", "answer"))]
        rows = attention_rows(runner, e, positions)
        for layer, want in enumerate(_eager_rows(runner, eager, e, positions)):
            assert float((rows[layer] - want).abs().max()) <= 1e-5


@pytest.fixture(scope="module")
def toys():
    out = {}
    for v in ("mediated", "bypass", "blind", "free"):
        tm = toy.load(v)
        ex = tm.examples("test", 4)
        runner = tm.runner()
        trace = runner.run(tm.prompts(ex), tm.images(ex), max_new_tokens=16, progress=False)
        out[v] = readouts.attention(runner, trace)
    return out


def _mass(res, group, region):
    return res.table[(res.table["query_group"] == group) & (res.table["region"] == region)]["mass"]


def test_planted_toys(toys):
    # blind: open and latents cannot attend to the image
    assert float(_mass(toys["blind"], "latents", "image").max()) == 0.0
    # bypass: close and answer cannot attend to the latents
    assert float(_mass(toys["bypass"], "answer", "latents").max()) == 0.0
    assert float(_mass(toys["bypass"], "close", "latents").max()) == 0.0
    # mediated: the answer reads the latents; the latents never read the image (its rule: the open marker is the
    # only reader of the image, z_1 = h(open) carries it)
    assert float(_mass(toys["mediated"], "answer", "latents").min()) > 0.0
    assert float(_mass(toys["mediated"], "latents", "image").max()) == 0.0
    # free (ordinary causal attention): both edges carry mass
    assert float(_mass(toys["free"], "latents", "image").min()) > 0.0
    assert float(_mass(toys["free"], "answer", "latents").min()) > 0.0
    # the cut edges of one toy are open in the others
    assert float(_mass(toys["bypass"], "latents", "image").min()) > 0.0
    assert float(_mass(toys["blind"], "answer", "latents").min()) > 0.0


def test_tables(toys):
    res = toys["mediated"]
    ATTENTION_MASS.check(res.table)
    ATTENTION_ENTROPY.check(res.entropy)
    ATTENTION_TOP.check(res.top)
    keys = ["example_id", "query_group", "step", "layer", "head"]
    sums = res.table.groupby(keys)["mass"].sum()
    assert float((sums - 1).abs().max()) <= 1e-5
    assert set(res.table["region"]) == set(REGIONS)
    assert len(res.table) == len(sums) * len(REGIONS)
    assert (res.entropy["entropy"] >= -1e-6).all()
    # the top position's weight is the row's largest, and its region's mass is at least that weight
    top0 = res.top[res.top["rank"] == 0].merge(res.table, on=keys + ["region"])
    assert (top0["mass"] >= top0["weight"] - 1e-6).all()
    groups = res.top.groupby(keys)["weight"]
    assert (groups.apply(lambda w: bool((w.diff().dropna() <= 1e-7).all()))).all()
    assert set(res.table["query_group"]) == {"latents", "close", "answer"}


def test_heads_and_average(toys):
    tm = toy.load("mediated")
    ex = tm.examples("test", 2)
    runner = tm.runner()
    trace = runner.run(tm.prompts(ex), tm.images(ex), max_new_tokens=16, progress=False)
    one = readouts.attention(runner, trace, queries=("latents",), layers=[1], heads=[0, 2])
    assert set(one.table["head"]) == {0, 2} and set(one.table["layer"]) == {1}
    avg = readouts.attention(runner, trace, queries=("latents",), layers=[1], heads=[0, 2], average_heads=True)
    assert set(avg.table["head"]) == {-1}
    keys = ["example_id", "step", "region"]
    mean = one.table.groupby(keys)["mass"].mean().sort_index()
    torch.testing.assert_close(torch.tensor(avg.table.set_index(keys)["mass"].sort_index().values),
                               torch.tensor(mean.values), rtol=0, atol=1e-6)
    with pytest.raises(InputError, match="query heads"):
        readouts.attention(runner, trace, queries=("latents",), heads=[99])
    with pytest.raises(InputError, match="query groups"):
        readouts.attention(runner, trace, queries=("latent",))
    with pytest.raises(StepOutOfRangeError, match="decoder layers"):
        readouts.attention(runner, trace, layers=[runner.n_layers])


def test_regions_of_a_chat_prompt(tok):
    """A ChatML system turn is its own region; a caller's regions override the defaults."""
    e = toy.load("mediated")
    tm = e
    ex = tm.examples("test", 1)
    trace = tm.runner().run(tm.prompts(ex), tm.images(ex), max_new_tokens=16, progress=False)
    ex0 = trace[0]
    codes = key_regions(ex0, tokenizer=tm.tokenizer)
    assert REGIONS.index("system") not in set(codes.tolist())  # the toy prompt has no system turn
    assert [REGIONS[c] for c in codes[ex0.latent_positions]] == ["latents"] * ex0.num_latents
    assert (codes[ex0.positions_of(Segment.IMAGE)] == REGIONS.index("image")).all()
    first = key_regions(ex0, tokenizer=tm.tokenizer, regions=lambda x: {"system": [0, 1]})
    assert first[0] == first[1] == REGIONS.index("system")
    with pytest.raises(InputError, match="region"):
        key_regions(ex0, regions=lambda x: {"self": [0]})


def test_interface_is_restored(toys):
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    assert "sdpa" not in ALL_ATTENTION_FUNCTIONS._local_mapping
    assert "eager" not in ALL_ATTENTION_FUNCTIONS._local_mapping


def test_refuses_bad_arguments_and_a_foreign_trace(request, tok):
    runner, trace = _run("llama", request)
    with pytest.raises(InputError, match="queries"):
        readouts.attention(runner, trace, queries="latents")
    with pytest.raises(StepOutOfRangeError, match="query positions"):
        attention_rows(runner, trace[0], [trace[0].seq_len])
    narrow = LatentRunner(tiny_llama(tok, hidden=32), tok, "coconut")  # another width than the trace's
    with pytest.raises(InputError, match="shape"):
        readouts.attention(narrow, trace)


def test_a_model_whose_attention_bypasses_the_interface_is_refused(request, monkeypatch):
    """GPT-2's eager path with reorder_and_upcast_attn never calls the interface: refused, not silently empty."""
    from latentprobe.errors import ModelStructureError

    runner, trace = _run("gpt2", request)
    monkeypatch.setattr(runner.model.config, "_attn_implementation", "eager")
    for block in runner.model.transformer.h:
        monkeypatch.setattr(block.attn, "reorder_and_upcast_attn", True)
    with pytest.raises(ModelStructureError, match=r"decoder layers \[0, 1\] never called"):
        attention_rows(runner, trace[0], trace[0].latent_positions.tolist())


def test_threads_reading_and_generating_at_once():
    """The wrapper is installed for one capture at a time; another model's forwards, in another thread, pass
    through it unchanged (one runner per thread: a runner is not shared between threads)."""
    from concurrent.futures import ThreadPoolExecutor

    tms = {v: toy.load(v) for v in ("bypass", "free", "blind")}
    ex = tms["bypass"].examples("test", 3)
    runners = {v: tm.runner() for v, tm in tms.items()}
    traces = {v: runners[v].run(tm.prompts(ex), tm.images(ex), max_new_tokens=16, progress=False)
              for v, tm in tms.items()}
    alone = {v: readouts.attention(runners[v], traces[v], layers=[0, 2]) for v in ("bypass", "free")}
    with ThreadPoolExecutor(3) as pool:
        futs = {v: pool.submit(readouts.attention, runners[v], traces[v], layers=[0, 2]) for v in ("bypass", "free")}
        gen = pool.submit(runners["blind"].run, tms["blind"].prompts(ex), tms["blind"].images(ex), max_new_tokens=16,
                          progress=False)
        got = {v: f.result() for v, f in futs.items()}
        again = gen.result()
    assert all(got[v].table.equals(alone[v].table) for v in got)
    assert again.answers == traces["blind"].answers
