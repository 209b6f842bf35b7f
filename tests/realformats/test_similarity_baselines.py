"""Similarity baselines from a real run's captures, on the Monet replica (real Qwen2.5-VL tokenizer and chat
template, random weights): text-token, image-token and prompt-last states at indices matched to the latent steps,
checked against what they must equal (the token embeddings, the image features, and, for Monet, whose first latent
is fed on the open marker's own slot, the first latent itself after the final norm), then the maps the
``latent_similarity`` and ``collapse`` analyses write beside the latents'."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import latentprobe
from latentprobe.analyses import Context, get_analysis
from latentprobe.engine import ForceOpen
from latentprobe.geometry import BASELINE_NAMES, MatchedPositions, baseline_states, matched_indices
from latentprobe.schema_similarity import ACROSS_SOURCES
from latentprobe.seeding import numpy_rng
from latentprobe.trace import Segment

pytestmark = pytest.mark.slow

SIZES = [(97, 131), (140, 84), (64, 64), (120, 120), (90, 150)]


@pytest.fixture(scope="module")
def monet(replica_dir):
    runner = latentprobe.load(replica_dir("monet"), "monet")
    images = [numpy_rng(0, "baselines", i).integers(0, 256, (h, w, 3), dtype=np.uint8) for i, (w, h) in enumerate(SIZES)]
    prompts = [[{"role": "user", "content": [{"type": "text", "text": f"What is shown in picture number {i}?"},
                                             {"type": "image"}]}] for i in range(len(SIZES))]
    return runner, prompts, images


@pytest.fixture(scope="module")
def trace(monet):
    runner, prompts, images = monet
    return runner.run(prompts, images, max_new_tokens=14, capture_positions=MatchedPositions(12),
                      logits_processor=ForceOpen.for_runner(runner, keep_eos=True), progress=False, batch_size=2)


def test_matched_positions_capture_few_positions_of_each_kind(trace):
    for e in trace:
        segs = e.segments[: e.prompt_len]
        text, image = [torch.nonzero(segs == c).flatten().tolist() for c in (Segment.TEXT, Segment.IMAGE)]
        want = {text[i] for i in matched_indices(len(text), 12)} | {image[i] for i in matched_indices(len(image), 12)}
        assert e.captured_positions.tolist() == sorted(want | {e.prompt_len - 1})
        assert len(image) > 12 and len(text) > 12  # the capture is a selection, not the whole prompt


def test_baselines_equal_what_the_model_reads_there(monet, trace):
    runner = monet[0]
    z, kept = trace.stack("z")
    k = z.shape[1]
    assert k >= 2 and len(kept) >= 3
    base = baseline_states(trace, kept, k)
    assert set(base) == set(BASELINE_NAMES)
    emb = runner.parts.embed
    for row, i in enumerate(kept):
        e = trace[i]
        segs = e.segments[: e.prompt_len]
        text = torch.nonzero(segs == Segment.TEXT).flatten()
        image = torch.nonzero(segs == Segment.IMAGE).flatten()
        # text tokens at layer 0: the token embeddings of the ids at k evenly spaced text positions
        picked = text[matched_indices(len(text), 12)][matched_indices(12, k)]
        with torch.no_grad():
            want = emb(e.input_ids[picked]).float().numpy()
        np.testing.assert_allclose(base["text_tokens"][row], want, rtol=0, atol=1e-6)
        # image tokens at layer 0: the image features the language model read at those positions
        rank = {int(p): r for r, p in enumerate(image.tolist())}
        img_picked = image[matched_indices(len(image), 12)][matched_indices(12, k)]
        want = e.image_embeds[[rank[int(p)] for p in img_picked]].float().numpy()
        np.testing.assert_allclose(base["image_tokens"][row], want, rtol=0, atol=1e-6)
        # prompt last at the last layer: Monet's first latent is the final norm of exactly this state
        assert int(e.latent_positions[0]) == e.prompt_len  # the open marker's own slot, right after the prompt
        with torch.no_grad():
            normed = runner.parts.norm(torch.as_tensor(base["prompt_last"][row, 0])[None]).float().numpy()[0]
        np.testing.assert_allclose(normed, e.z[0].float().numpy(), rtol=1e-4, atol=1e-4)
        assert np.array_equal(base["prompt_last"][row], np.repeat(base["prompt_last"][row, :1], k, axis=0))


def test_similarity_and_collapse_write_the_baseline_maps(monet, trace):
    runner, prompts, images = monet
    from latentprobe.perturbations import InputSet

    inputs = InputSet(example_ids=tuple(e.example_id for e in trace), prompts=tuple(prompts), images=tuple(images))
    ctx = Context(runner, inputs, max_new_tokens=14, progress=False, capture_positions=MatchedPositions(12),
                  logits_processor=ForceOpen.for_runner(runner, keep_eos=True), batch_size=2)
    ctx._trace = trace  # the clean run above (the same settings)
    sim = get_analysis("latent_similarity")
    res = sim.run(ctx, sim.Options(n_boot=50).resolved({"seed": 0, "ci": 0.95, "batch_size": 2}), None)
    table = res["across_sources"]
    ACROSS_SOURCES.check(table)
    z, kept = trace.stack("z")
    assert list(dict.fromkeys(table.source)) == ["latent", *BASELINE_NAMES]
    assert (table.groupby("source").size() == z.shape[1]).all() and set(table.n) == {len(kept)}
    maps = res["maps"]
    base = baseline_states(trace, kept, z.shape[1])
    for name in BASELINE_NAMES:  # each map is the cosine matrix of that source at that index
        u = base[name] / np.linalg.norm(base[name], axis=-1, keepdims=True)
        np.testing.assert_allclose(maps[name], np.einsum("ikd,jkd->kij", u, u), atol=1e-5)
    assert np.allclose(maps["prompt_last"], maps["prompt_last"][:1])  # one state, the same map at every index
    latent = table[table.source == "latent"].reset_index(drop=True)
    assert np.allclose(latent.mean_offdiag, res["across"].mean_offdiag)
    assert sim.figures(res)[-1].layout.meta["kind"] == "across_instance_summary"
    col = get_analysis("collapse")
    out = col.run(ctx, col.Options().resolved({"seed": 0, "ci": 0.95, "batch_size": 2}), None)
    assert set(out["collapse"].source) == {"latent", "random_matched_norm", *BASELINE_NAMES}
