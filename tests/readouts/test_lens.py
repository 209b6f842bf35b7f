"""The logit lens reads the right tensor: at the last layer it reproduces the run's own next-token
log-probabilities (max abs diff <= 1e-5, fp32) for every preset family, on latent and answer positions; and
on the planted toys it gives what the attention masks force."""

from __future__ import annotations

import pytest
import torch

from latentprobe import LatentRunner, Zero, get_preset, readouts, toy
from latentprobe.errors import InputError, StepOutOfRangeError
from latentprobe.engine import LvrHead
from latentprobe.trace import Segment

from tiny import force_open

TOL = 1e-5
GROUPS = ("latents", "open", "close", "first_answer", "answer", "last_prompt")


def _lens_dist(res, e, group, step):
    """``{token_id: logprob}`` of one last-layer cell (its top-k rows)."""
    t = res.table
    rows = t[(t.example_id == e.example_id) & (t.position_group == group) & (t.step == step) & (t.target == "top")]
    rows = rows[rows.layer == rows.layer.max()]
    return dict(zip(rows.token_id.tolist(), rows.logprob.tolist()))


def _top(dist, k=8):
    """The distribution's ``k`` most likely tokens: float32 rounding of one matrix product differs by about
    1e-5 between batch shapes in the far tail (log-probs near -20), less where the probability is."""
    return dict(sorted(dist.items(), key=lambda kv: -kv[1])[:k])


def _worst(dist, ref):
    return max(abs(v - float(ref[t])) for t, v in dist.items())


def check_last_layer(runner, trace, top_k=64, tol=TOL):
    """Every check the trace's own records allow; returns the number of compared values (so a test can say
    something was compared)."""
    res = readouts.lens(runner, trace, positions=GROUPS, layers=[-1], top_k=top_k)
    assert set(res.table.layer) == {runner.n_layers}
    cells = res.cells
    n = 0
    for e in trace:
        mine = cells[cells.example_id == e.example_id]
        lat = e.latent_positions.tolist()
        pos_of = {int(p): (g, int(s)) for g, s, p in zip(mine.position_group, mine.step, mine.position)}
        # answer positions: the readout at answer token j scores token j + 1 exactly as the run did
        ans = mine[mine.position_group == "answer"].sort_values("step")
        for j in range(1, e.answer_ids.numel()):
            got = float(ans.next_logprob.iloc[j - 1])
            assert abs(got - float(e.answer_logprobs[j])) <= tol, (e.example_id, j, got)
            n += 1
        # the position before the answer (close marker, last latent or last prompt token): the whole first
        # distribution the run recorded
        before = e.answer_start - 1
        if e.first_token_logprobs is not None and before in pos_of:
            g, s = pos_of[before]
            if e.answer_ids.numel():  # the answer's first token, as the run scored it
                got = mine[(mine.position_group == g) & (mine.step == s)].next_logprob.iloc[0]
                assert abs(got - float(e.answer_logprobs[0])) <= tol, (e.example_id, g, got)
            # the whole distribution: 1e-5 where it carries mass, 5e-5 in the far tail (see _top)
            dist = _lens_dist(res, e, g, s)
            assert _worst(dist, e.first_token_logprobs) <= 5 * tol
            assert _worst(_top(dist), e.first_token_logprobs) <= tol
            n += 1
        # latent k's readout is the distribution lm_head computed from the next latent's source h_src[k + 1]
        # (what the loop recorded there, the spec's head applied where it runs)
        for k in range(len(lat) - 1):
            if lat[k + 1] == lat[k] + 1:
                h = e.h_src[k + 1].float()
                with torch.no_grad():
                    w = runner.parts.lm_head.weight
                    ref = torch.log_softmax(runner.parts.lm_head(h.to(w.dtype)).float(), -1)
                dist = _lens_dist(res, e, "latents", k)
                assert _worst(_top(dist), ref) <= tol and _worst(dist, ref) <= 5 * tol, (e.example_id, k)
                n += 1
    return res, n


def check_direct_forward(runner, trace, res, head=None, tol=TOL):
    """Against one plain Hugging Face forward of each recorded sequence with its latents fed (text models): another
    computation than the run's cached steps, so ``tol`` bounds their float32 rounding as well as the lens."""
    model = runner.model
    n = 0
    for e in trace:
        emb = model.get_input_embeddings()(e.input_ids[None]).detach().clone()
        emb[0, e.latent_positions] = e.z.to(emb.dtype)
        with torch.no_grad():
            out = model(inputs_embeds=emb, output_hidden_states=True)
            logits = out.logits[0].float()
            if head is not None:  # the LVR head runs on the final-norm output at latent positions
                normed = runner.parts.norm(out.hidden_states[-1][0])
                for p in e.latent_positions.tolist():
                    logits[p] = model.lm_head(head(normed[p])).float()
        ref = torch.log_softmax(logits, -1)
        cells = res.cells[res.cells.example_id == e.example_id]
        for g, s, p in zip(cells.position_group, cells.step, cells.position):
            dist = _lens_dist(res, e, g, int(s))
            assert _worst(_top(dist), ref[int(p)]) <= tol and _worst(dist, ref[int(p)]) <= 5 * tol, (e.example_id, g)
            n += 1
    return n


# ---------------------------------------------------------------------------------------------- toys
@pytest.fixture(scope="module")
def mediated():
    tm = toy.load("mediated")
    ex = tm.examples("test", 6)
    runner = tm.runner()
    return tm, ex, runner, runner.run(tm.prompts(ex), tm.images(ex), progress=False)


@pytest.mark.parametrize("variant", ["mediated", "bypass", "blind", "free"])
def test_toy_last_layer_reproduces_the_run(variant):
    tm = toy.load(variant)
    ex = tm.examples("test", 5)
    runner = tm.runner()
    trace = runner.run(tm.prompts(ex), tm.images(ex), progress=False)
    _, n = check_last_layer(runner, trace)
    assert n >= 5 * 4  # per example: the first distribution and three consecutive latent pairs


def test_blind_latent_readouts_do_not_depend_on_the_image():
    """blind: latents cannot attend to the image, so their readouts at every layer are those of another image."""
    tm = toy.load("blind")
    ex = tm.examples("test", 4)
    runner = tm.runner()
    prompts, images = tm.prompts(ex), tm.images(ex)
    a = runner.run(prompts, images, progress=False)
    b = runner.run(prompts, images[1:] + images[:1], progress=False)
    assert any(not torch.equal(x.image_embeds, y.image_embeds) for x, y in zip(a, b))
    ra, rb = (readouts.lens(runner, t, top_k=4) for t in (a, b))
    lat_a, lat_b = ra.target("answer"), rb.target("answer")
    assert len(ra.cells) == 4 * 4 * (runner.n_layers + 1)
    assert (ra.cells.top1_token_id.values == rb.cells.top1_token_id.values).all()
    assert abs(ra.cells.entropy.values - rb.cells.entropy.values).max() <= 1e-6
    # the close marker reads the image: there the readouts differ (the check can fail)
    ca, cb = (readouts.lens(runner, t, positions=("close",), layers=[-1], top_k=4).cells for t in (a, b))
    assert abs(ca.entropy.values - cb.entropy.values).max() > 1e-4
    assert len(lat_a) == len(lat_b)


def test_bypass_answer_readouts_ignore_the_latents():
    """bypass: close and answer cannot attend to latents, so zeroing the latents leaves their readouts (every
    layer) unchanged, while the latents' own readouts change."""
    tm = toy.load("bypass")
    ex = tm.examples("test", 4)
    runner = tm.runner()
    trace = runner.run(tm.prompts(ex), tm.images(ex), progress=False)
    zeroed = runner.intervene(trace, Zero(), mode="replay", progress=False)
    groups = ("close", "answer")
    a, b = (readouts.lens(runner, t, positions=groups, top_k=4).cells for t in (trace, zeroed))
    assert len(a) == len(b) > 0
    assert abs(a.entropy.values - b.entropy.values).max() <= 1e-6
    assert (a.top1_token_id.values == b.top1_token_id.values).all()
    la, lb = (readouts.lens(runner, t, top_k=4).cells for t in (trace, zeroed))
    assert abs(la.entropy.values - lb.entropy.values).max() > 1e-3


def test_result_tables_targets_and_commitment(mediated):
    tm, ex, runner, trace = mediated
    gold = dict(zip(trace.example_ids, toy.toy_inputs(ex).gold))
    ids = [int(e.answer_ids[0]) for e in trace]
    res = readouts.lens(runner, trace, positions=("latents", "close"), top_k=3, targets={"mine": ids}, gold=gold)
    t = res.table
    assert list(t.columns[:7]) == ["example_id", "position_group", "step", "layer", "token_id", "logprob", "rank"]
    # a user target given as the run's own answer ids scores exactly like the answer target
    mine, ans = res.target("mine", "latents"), res.target("answer", "latents")
    assert (mine.logprob.values == ans.logprob.values).all() and (mine["rank"].values == ans["rank"].values).all()
    # rank 1 iff the target is the top-1 token
    merged = ans.merge(res.cells, on=["example_id", "position_group", "step", "layer"])
    assert ((merged["rank"] == 1) == (merged.token_id == merged.top1_token_id)).all()
    # early commitment: the earliest latent (step, layer) whose top-1 is the answer token
    lat = res.cells[res.cells.position_group == "latents"]
    for row in res.commitment.itertuples():
        hits = lat[(lat.example_id == row.example_id) & (lat.top1_token_id == row.answer_token_id)]
        assert row.committed == (len(hits) > 0)
        if row.committed:
            first = hits.sort_values(["step", "layer"]).iloc[0]
            assert (row.first_step, row.first_layer) == (first.step, first.layer)
    # KL to the last layer's readout: zero there, positive below, and equal to a direct computation
    last = res.cells[res.cells.layer == runner.n_layers]
    assert (last.kl_to_last.abs() <= 1e-6).all() and (res.cells.kl_to_last >= 0).all()
    e = trace[0]
    lp = readouts.lens_logprobs(runner, e.hidden[1])  # latent step 1, every layer
    ref = (lp[-1].exp() * (lp[-1] - lp)).sum(-1)
    got = res.cells[(res.cells.example_id == e.example_id) & (res.cells.position_group == "latents")
                    & (res.cells.step == 1)].sort_values("layer").kl_to_last.to_numpy()
    assert abs(got - ref.numpy()).max() <= 1e-5 and got[0] > 0.1
    traj = res.trajectory
    assert set(traj.target) == {"answer", "gold", "mine"} and (traj.n == len(trace)).all()
    g = res.target("gold", "close")
    g = g[g.layer == runner.n_layers]
    gold_ids = [runner.tokenizer.convert_tokens_to_ids(v) for v in toy.toy_inputs(ex).gold]
    assert sorted(g.token_id.tolist()) == sorted(gold_ids) and len(g) == len(trace)


def test_errors_name_what_was_wrong(mediated):
    _, _, runner, trace = mediated
    with pytest.raises(InputError, match="positions"):
        readouts.lens(runner, trace, positions=("latent",))
    with pytest.raises(StepOutOfRangeError, match="layers"):
        readouts.lens(runner, trace, layers=[99])
    with pytest.raises(InputError, match="head"):
        readouts.lens(runner, trace, head="lvr")
    with pytest.raises(InputError, match="one value per example"):
        readouts.lens(runner, trace, targets={"x": ["a"]})
    with pytest.raises(InputError, match="projection"):
        readouts.lens(runner, trace, head="projection")


def test_unrecorded_layers_are_read_by_a_teacher_forced_forward(mediated):
    tm, ex, runner, _ = mediated
    part = runner.run(tm.prompts(ex), tm.images(ex), capture_layers=[0, 4], progress=False)
    full = readouts.lens(runner, part, layers=[1, 4], top_k=3)
    assert full.config["source"] == "teacher-forced forward"
    rec = readouts.lens(runner, part, layers=[4], top_k=3)
    assert rec.config["source"] == "trace"
    a = full.cells[full.cells.layer == 4].reset_index(drop=True)
    assert abs(a.top1_logprob.values - rec.cells.top1_logprob.values).max() <= TOL
    # prompt positions come from the prompts' own prefill: the run's first forward, number for number
    cap = runner.run(tm.prompts(ex), tm.images(ex), capture_positions="prompt", progress=False)
    from_trace = readouts.lens(runner, cap, positions=("last_prompt",), top_k=5)
    forced = readouts.lens(runner, part, positions=("last_prompt",), layers=[0, 1, 2, 3, 4], top_k=5)
    assert from_trace.config["source"] == "trace" and forced.config["source"] == "teacher-forced forward"
    assert from_trace.table.equals(forced.table)


# ---------------------------------------------------------------------------------------------- text families
def test_gpt2_coconut_and_codi(tmp_path):
    pytest.importorskip("peft")
    from engine.checkpoints import save_coconut_checkpoint, save_codi_checkpoint, save_gpt2_base
    from latentprobe.engine import coconut_prompt, load_coconut, load_codi

    base = save_gpt2_base(tmp_path / "gpt2")
    save_coconut_checkpoint(tmp_path / "coconut.pt", base)
    coconut = load_coconut(tmp_path / "coconut.pt", base)
    qs = ["what is the red circle ?", "one two three four", "what colour is the circle ?"]
    trace = coconut.run([coconut_prompt(coconut.tokenizer, q) for q in qs], max_new_tokens=8, progress=False)
    res, n = check_last_layer(coconut, trace)
    assert n >= 3 * 5 and check_direct_forward(coconut, trace, res) == len(res.cells)
    save_codi_checkpoint(tmp_path / "codi", base, r=8)
    codi = load_codi(tmp_path / "codi", base, lora_r=8)
    trace = codi.run(qs, max_new_tokens=6 + 1 + 6, progress=False)
    res, n = check_last_layer(codi, trace)
    assert n >= 3 * 5 and check_direct_forward(codi, trace, res) == len(res.cells)
    # through CODI's projection: lm_head of the fed latent z = prj(h) (z[k + 1] is the projection of latent k's output)
    proj = readouts.lens(codi, trace, layers=[-1], top_k=8, head="projection")
    e = trace[0]
    with torch.no_grad():
        ref = torch.log_softmax(codi.parts.lm_head(e.z[1]).float(), -1)
    assert _worst(_lens_dist(proj, e, "latents", 0), ref) <= TOL


def test_llama_codi_and_lvr_head(tmp_path, llama, tok):
    pytest.importorskip("peft")
    from engine.checkpoints import save_codi_checkpoint, save_llama_base
    from latentprobe.engine import load_codi

    base = save_llama_base(tmp_path / "llama")
    save_codi_checkpoint(tmp_path / "codi", base, r=8)
    codi = load_codi(tmp_path / "codi", base, lora_r=8)
    trace = codi.run(["what is the red circle ?", "one two three four"], max_new_tokens=10, progress=False)
    res, n = check_last_layer(codi, trace)
    assert n >= 2 * 5 and check_direct_forward(codi, trace, res) == len(res.cells)
    # LVR's head on Llama: lm_head reads head(norm(h)) at latent positions, so the lens does too
    torch.manual_seed(5)
    head = LvrHead(64).eval()
    spec = get_preset("lvr", num_latents=3, head="latent")
    runner = LatentRunner(llama, tok, spec, head=head)
    text = ["what colour is the circle ?", "what is the red square ?"]
    lens_ = {i: len(tok(t, add_special_tokens=False)["input_ids"]) for i, t in enumerate(text)}
    proc = force_open(tok, spec.open_token, 1, lens_)
    trace = runner.run(text, max_new_tokens=10, logits_processor=proc, progress=False)
    res, n = check_last_layer(runner, trace)
    assert n >= 2 * 3 and check_direct_forward(runner, trace, res, head=head) == len(res.cells)
    plain = readouts.lens(runner, trace, layers=[-1], top_k=8, head="none")
    e = trace[0]
    assert _worst(_lens_dist(plain, e, "latents", 0), _lens_dist(res, e, "latents", 0)) > 1e-3 or \
        set(_lens_dist(plain, e, "latents", 0)) != set(_lens_dist(res, e, "latents", 0))


# ---------------------------------------------------------------------------------------------- Qwen2.5-VL
@pytest.mark.slow
@pytest.mark.parametrize("family", ["monet", "lvr", "mirage"])
def test_qwen_vl_replicas(replica_dir, family):
    import numpy as np
    from PIL import Image

    import latentprobe

    runner = latentprobe.load(replica_dir(family), family)
    tok = runner.tokenizer
    spec = runner.spec
    open_id = tok.convert_tokens_to_ids(spec.open_token)
    close_id = tok.convert_tokens_to_ids(spec.close_token) if spec.close_token else None

    def processor(ids, scores, index):  # open first; close (where sampled) after three latents
        target = open_id if open_id not in ids else (
            close_id if close_id is not None and close_id not in ids and len(ids) - ids.index(open_id) >= 4 else None)
        if target is None:
            return scores
        forced = torch.full_like(scores, float("-inf"))
        forced[target] = 0.0
        return forced

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)) for _ in range(2)]
    msgs = [[{"role": "user", "content": [{"type": "image", "image": im}, {"type": "text", "text": "What colour?"}]}]
            for im in images]
    trace = runner.run(msgs, max_new_tokens=12, logits_processor=processor, progress=False)
    assert all(e.num_latents >= 2 for e in trace) and trace[0].positions_of(Segment.IMAGE).numel() > 0
    _, n = check_last_layer(runner, trace, top_k=32)
    assert n >= 2 * 3


# ---------------------------------------------------------------------------------------------- real weights
@pytest.mark.slow
def test_smollm2_real_weights_with_coconut_tokens(smollm2):
    """SmolLM2-135M-Instruct's real (GGUF) weights, Coconut's tokens added: the lens reproduces the run."""
    import copy

    from latentprobe.engine import coconut_prompt

    tok, model = copy.deepcopy(smollm2.tokenizer), copy.deepcopy(smollm2.model)
    for t in ("<|start-latent|>", "<|end-latent|>", "<|latent|>"):
        tok.add_tokens(t)
    model.resize_token_embeddings(len(tok), mean_resizing=False)
    runner = LatentRunner(model, tok, get_preset("coconut", num_latents=3))
    qs = ["What is 2 plus 3?", "What is the capital of France?"]
    trace = runner.run([coconut_prompt(tok, q, 3) for q in qs], max_new_tokens=6, progress=False)
    # a real 49,152 x 576 unembedding: float32 log-probs of one state differ by about 1e-5 between a product
    # over 1 row and over 64 rows (measured with random weights of this shape: 9.5e-6), so the run's own numbers
    # are reproduced at that floor; the tiny families above hold 1e-5
    res, n = check_last_layer(runner, trace, top_k=16, tol=3e-5)
    assert n >= 2 * (5 + 2)
    # one plain full-sequence forward through 30 real layers rounds differently from the run's cached steps
    assert check_direct_forward(runner, trace, res, tol=1e-4) == len(res.cells)
