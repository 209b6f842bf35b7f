"""The shipped toy models: planted causal graphs, recorded accuracies, training/inference agreement, determinism."""

from __future__ import annotations

import json
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from latentprobe import toy  # noqa: E402
from latentprobe.toy import checkpoints, encoding, evaluation, forward, training  # noqa: E402
from latentprobe.toy.model import build_model, mask_rule  # noqa: E402
from latentprobe.toy.shapes import make_dataset  # noqa: E402
from latentprobe.toy.vocab import build_tokenizer  # noqa: E402
from latentprobe.trace import Segment  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """One thread, as the recorded evaluation used (reproducible, and fast on a busy machine)."""
    with evaluation._deterministic(evaluation.EVAL_THREADS):
        yield


@pytest.fixture(scope="module")
def shipped() -> dict[str, toy.ToyModel]:
    return {v: toy.load(v) for v in toy.VARIANTS}


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def _batch(model, tok, variant: str, n: int = 6, seed: int = 3) -> encoding.Batch:
    ex = make_dataset(n, 1, seed=seed)
    return encoding.collate(model, encoding.encode_examples(tok, ex, variant), int(tok.pad_token_id))


def _grad(out: torch.Tensor, wrt: torch.Tensor) -> torch.Tensor:
    (g,) = torch.autograd.grad(out, wrt, allow_unused=True)
    return torch.zeros_like(wrt) if g is None else g


def _models(shipped, variant: str, tok):
    """The shipped model and a random-weights model of the same architecture."""
    return [("shipped", shipped[variant].model), ("random", build_model(tok.get_vocab(), seed=11))]


# ----------------------------------------------------------------------------- planted causal graphs


def _answer_logits(logits: torch.Tensor) -> torch.Tensor:
    # close position (predicts the answer) and answer position (predicts <eos>): the last two columns
    return logits[:, -2:].float().pow(2).sum()


@pytest.mark.parametrize("which", ["shipped", "random"])
def test_mediated_answer_gets_nothing_from_pixels_with_latents_fixed(shipped, tok, which):
    variant_models = {v: dict(_models(shipped, v, tok))[which] for v in ("mediated", "free")}
    grads = {}
    for v, model in variant_models.items():
        b = _batch(model, tok, v)
        with torch.no_grad():
            z, _, _ = forward.rollout(model, b, rule=mask_rule(v))
        z = z.clone().requires_grad_(True)
        pv = b.pixel_values.clone().requires_grad_(True)
        _, logits = forward.forward_sequence(model, b, rule=mask_rule(v), latents=z, pixel_values=pv)
        grads[v] = _grad(_answer_logits(logits), pv)
    assert torch.count_nonzero(grads["mediated"]) == 0
    assert grads["free"].abs().sum() > 0  # positive control: the same gradient without the rule


@pytest.mark.parametrize("which", ["shipped", "random"])
def test_bypass_answer_gets_nothing_from_latents(shipped, tok, which):
    grads = {}
    for v in ("bypass", "free"):
        model = dict(_models(shipped, v, tok))[which]
        b = _batch(model, tok, v)
        with torch.no_grad():
            z, _, _ = forward.rollout(model, b, rule=mask_rule(v))
        z = z.clone().requires_grad_(True)
        _, logits = forward.forward_sequence(model, b, rule=mask_rule(v), latents=z)
        grads[v] = _grad(_answer_logits(logits), z)
    assert torch.count_nonzero(grads["bypass"]) == 0
    assert grads["free"].abs().sum() > 0


@pytest.mark.parametrize("which", ["shipped", "random"])
def test_blind_latents_get_nothing_from_pixels(shipped, tok, which):
    grads = {}
    for v in ("blind", "free"):
        model = dict(_models(shipped, v, tok))[which]
        b = _batch(model, tok, v)
        pv = b.pixel_values.clone().requires_grad_(True)
        z, _, _ = forward.rollout(model, b, rule=mask_rule(v), pixel_values=pv)  # latents computed by the model
        grads[v] = _grad(z.float().pow(2).sum(), pv)
    assert torch.count_nonzero(grads["blind"]) == 0
    assert grads["free"].abs().sum() > 0


def test_mediated_latents_do_carry_the_image(shipped, tok):
    """In ``mediated`` the pixels reach the answer only through z: with z recomputed, the gradient is nonzero."""
    model = shipped["mediated"].model
    b = _batch(model, tok, "mediated")
    pv = b.pixel_values.clone().requires_grad_(True)
    _, _, logits = forward.rollout(model, b, rule=mask_rule("mediated"), pixel_values=pv)
    assert _grad(_answer_logits(logits), pv).abs().sum() > 0


def test_text_close_and_answer_see_neither_the_image_nor_the_open_marker(tok):
    """``text``: the close marker and the answer attend to the question and the caption span only (the caption
    positions themselves read the image, to write the caption)."""
    seg = torch.tensor([encoding.encode_examples(tok, make_dataset(1, 1, seed=3), "text")[0].segs])
    allowed = mask_rule("text")(seg, seg)[0]
    rows = torch.isin(seg[0], torch.tensor([Segment.CLOSE, Segment.GEN]))
    cols = torch.isin(seg[0], torch.tensor([Segment.IMAGE, Segment.OPEN]))
    assert int(rows.sum()) == 2 and int(cols.sum()) == 17
    assert not allowed[rows][:, cols].any()
    assert allowed[rows][:, ~cols].all() and allowed[~rows].all()


# ----------------------------------------------------------------------------- training matches inference


@pytest.mark.parametrize("variant", ["mediated", "free"])
def test_training_forward_matches_runner(shipped, tok, variant):
    m = shipped[variant]
    ex = m.examples("test", n=4)
    trace = m.run(ex)
    b = encoding.collate(m.model, encoding.encode_examples(tok, ex, variant), int(tok.pad_token_id))
    with torch.no_grad():
        z, _, logits = forward.rollout(m.model, b, rule=m.mask_rule)
    for i, e in enumerate(trace):
        assert e.num_latents == 4
        torch.testing.assert_close(e.z, z[i], atol=2e-4, rtol=1e-4)
        first = torch.log_softmax(logits[i, -2].float(), -1)
        torch.testing.assert_close(e.first_token_logprobs, first, atol=2e-4, rtol=1e-4)
    segs = trace[0].segments.tolist()
    assert segs[-7:-1] == [Segment.OPEN] + [Segment.LATENT] * 4 + [Segment.CLOSE]


def test_text_training_sequence_matches_runner(shipped, tok):
    m = shipped["text"]
    ex = m.examples("test", n=8)
    trace = m.run(ex)
    enc = encoding.encode_examples(tok, ex, "text")
    same = 0
    for e, it in zip(trace, enc):
        assert e.segments.tolist()[:e.prompt_len] == it.segs[:e.prompt_len]
        same += e.input_ids.tolist() == it.ids and e.segments.tolist() == it.segs
        # the training forward over the runner's own sequence gives the runner's answer distribution
        own = encoding._Encoded(e.input_ids.tolist(), e.segments.tolist(), [encoding.IGNORE] * e.seq_len, ex[e.index].image())
        b = encoding.collate(m.model, [own], int(tok.pad_token_id))
        with torch.no_grad():
            _, logits = forward.forward_sequence(m.model, b, rule=m.mask_rule)
        first = torch.log_softmax(logits[0, e.answer_start - 1].float(), -1)
        torch.testing.assert_close(e.first_token_logprobs, first, atol=2e-4, rtol=1e-4)
    assert same >= 4  # mostly the training caption itself, with the same segment codes


# ----------------------------------------------------------------------------- recorded accuracies


@pytest.mark.slow
@pytest.mark.parametrize("variant", toy.VARIANTS)
def test_shipped_weights_reproduce_recorded_accuracy(shipped, variant):
    """Re-evaluate on the whole held-out split, exactly as at training time (same batches)."""
    m = shipped[variant]
    meta = m.metadata
    ex = m.examples("test")
    assert len(ex) == meta["n_test"]
    assert meta["eval_threads"] == torch.get_num_threads()
    trace = m.run(ex, batch_size=meta["train_args"]["eval_batch_size"])
    answers = trace.answers
    assert m.accuracy(trace, ex) == meta["test_accuracy"]
    n = meta["n_first"]
    assert m.accuracy(answers[:n], ex[:n]) == meta["test_accuracy_first"]
    assert meta["majority_baseline"] == toy.majority_baseline(ex)
    assert all(e.finished for e in trace)  # every generation ended with <eos> within the budget


@pytest.mark.parametrize("variant", toy.VARIANTS)
def test_trained_models_beat_majority_by_far(shipped, variant):
    """The runner's answers match gold far above the majority-class baseline (measured above)."""
    meta = shipped[variant].metadata
    assert meta["majority_baseline"] < 0.2
    assert meta["test_accuracy"] >= 0.8
    assert meta["test_accuracy"] >= meta["majority_baseline"] + 0.6
    assert min(meta["test_accuracy_by_template"].values()) >= 0.6  # every question type, not one easy template


def test_metadata_records_what_it_claims(shipped):
    for v, m in shipped.items():
        meta = m.metadata
        for key in ("config_kwargs", "train_args", "seed", "test_accuracy", "majority_baseline", "n_test",
                    "train_seconds", "torch_version", "sha256"):
            assert key in meta, (v, key)
        assert meta["variant"] == v
        assert meta["weights_dtype"] == "float16"
        json.dumps(meta)


# ----------------------------------------------------------------------------- public API


def test_load_is_safetensors_only(monkeypatch):
    def no_pickle(*a, **k):
        raise AssertionError("torch.load must not be used")

    monkeypatch.setattr(torch, "load", no_pickle)
    models = [toy.load(v) for v in toy.VARIANTS]
    for m in models:
        assert all(p.dtype == torch.float32 for p in m.model.parameters())
        assert m.model.lm_head.weight.data_ptr() == m.model.model.language_model.embed_tokens.weight.data_ptr()
        assert not m.model.training


def test_toy_model_api(shipped):
    m = shipped["mediated"]
    test = m.examples("test")
    train = m.examples("train", n=5)
    assert len(train) == 5 and len(m.examples("test", n=3)) == 3
    assert not {e.image_id for e in test} & {e.image_id for e in m.examples("train")}
    assert m.prompts(test[:2])[0].endswith("<|vision_start|> <|image_pad|>")
    imgs = m.images(test[:2])
    assert imgs[0].shape == (112, 112, 3) and imgs[0].dtype.name == "uint8"
    assert m.spec.name == "toy" and shipped["text"].spec.name == "toy-text"
    assert m.mask_rule is toy.mask_rule("mediated") and shipped["free"].mask_rule is None
    # two right, one wrong, one a different case of the right word (accuracy is exact matching)
    answers = [test[0].answer, test[1].answer, "not-an-answer", test[3].answer.upper()]
    assert m.accuracy(answers, test[:4]) == 0.5
    with pytest.raises(ValueError, match="3 answers for 4 examples"):
        m.accuracy(answers[:3], test[:4])
    with pytest.raises(ValueError):
        m.examples("valid")
    with pytest.raises(ValueError):
        toy.load("nope")


# ----------------------------------------------------------------------------- trainer determinism


_TINY = dict(n_images=12, steps=2, recurrent_steps=2, batch_size=4, vision_steps=2, pretrain_steps=2,
             evaluate_test=False, progress=False, cache_base=False, threads=1)


def _state(seed: int) -> dict[str, torch.Tensor]:
    meta = training.train_variant("mediated", seed=seed, return_model=True, **_TINY)
    return {k: v.clone() for k, v in meta["state_dict"].items()}  # float32, as trained


def test_trainer_is_deterministic():
    a, b, c = _state(0), _state(0), _state(1)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_saved_weights_round_trip(tmp_path):
    meta = training.train_variant("free", out_dir=tmp_path, seed=0, return_model=True, **_TINY)
    loaded = toy.load("free", tmp_path)
    ref = meta["model"].state_dict()
    got = loaded.model.state_dict()
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    # the file is a pure function of the weights: saving again gives the recorded hash
    assert checkpoints.save_weights(loaded.model, tmp_path / "again.safetensors") == loaded.metadata["sha256"]
