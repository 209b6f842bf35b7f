"""TransformerLens cross-check: replaying traces through a TransformerBridge reproduces the nnsight captures."""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import transformer_lens  # noqa: E402,F401  (a required dependency: a missing one must fail)

from latentprobe.errors import InputError, InterventionShapeError, ModelStructureError  # noqa: E402
from latentprobe.lens import latent_residuals, replay_with_cache, residual_hook_name, to_bridge  # noqa: E402
from latentprobe.engine import LatentRunner  # noqa: E402
from latentprobe.engine.heads import CodiProjection  # noqa: E402
from latentprobe.presets import get_preset  # noqa: E402

LAT6 = " ".join(["<|latent|>"] * 6)
COCONUT_PROMPTS = [
    f"a b <|start-latent|> {LAT6} <|end-latent|> answer :",
    f"what is the red circle ? <|start-latent|> {LAT6} <|end-latent|> answer :",
]
TEXT_PROMPTS = ["a b", "what is the red circle ? one two three"]
PROBE = torch.tensor([[20, 21, 15, 22, 23, 24]])


def _probe_logits(model):
    with torch.no_grad():
        return model(PROBE).logits.clone()


class Setup:
    def __init__(self, name, request):
        family, _, arch = name.partition("-")
        self.tok = request.getfixturevalue("tok")
        self.model = request.getfixturevalue(arch)
        self.vocab_before = dict(self.tok.get_vocab())
        self.len_before = len(self.tok)
        self.side_before = self.tok.padding_side
        self.logits_before = _probe_logits(self.model)
        self.state_before = {k: v.clone() for k, v in self.model.state_dict().items()}
        proj = None
        if family == "codi":
            torch.manual_seed(1)
            proj = CodiProjection(self.model.config.hidden_size, 64).eval()
        self.runner = LatentRunner(self.model, self.tok, get_preset(family), projection=proj)
        prompts = COCONUT_PROMPTS if family == "coconut" else TEXT_PROMPTS
        self.trace = self.runner.run(prompts, max_new_tokens=12, progress=False)
        self.bridge = to_bridge(self.model, self.tok)


@pytest.fixture(scope="module", params=["coconut-gpt2", "coconut-llama", "codi-llama"])
def setup(request):
    return Setup(request.param, request)


def test_replay_matches_the_trace(setup):
    pid = setup.runner.rspec.placeholder_id
    for e in setup.trace:
        assert e.num_latents == 6
        logits, cache = replay_with_cache(setup.bridge, e, placeholder_id=pid)
        res = latent_residuals(cache, e.latent_positions)
        assert res.shape == e.hidden.shape
        assert (res - e.hidden).abs().max() <= 1e-4
        # the injected latents are what the embedding hook shows at the slots
        emb = cache["hook_embed"][0, e.latent_positions]
        assert (emb - e.z).abs().max() <= 1e-6
        with torch.no_grad():  # and they are not what the placeholder token would have given
            plain = setup.model.get_input_embeddings()(torch.tensor([pid]))[0]
        assert (plain - e.z).abs().max() > 1e-2
        # logits at the answer positions reproduce the recorded answer and its log-probabilities
        assert e.answer_ids.numel() > 0
        a0, na = e.answer_start, e.answer_ids.numel()
        lp = torch.log_softmax(logits[0, a0 - 1:a0 - 1 + na].float(), -1)
        assert torch.equal(lp.argmax(-1), e.answer_ids)
        assert (lp.gather(1, e.answer_ids[:, None]).squeeze(1) - e.answer_logprobs).abs().max() <= 1e-4
        assert (lp[0] - e.first_token_logprobs).abs().max() <= 1e-4


def test_residual_hook_names_map_to_the_trace_layers(setup):
    e = setup.trace[0]
    _, cache = replay_with_cache(setup.bridge, setup.trace, index=0, placeholder_id=setup.runner.rspec.placeholder_id)
    L = setup.runner.parts.n_layers
    assert residual_hook_name(0) == "blocks.0.hook_resid_pre"
    assert residual_hook_name(L) == f"blocks.{L - 1}.hook_resid_post"
    assert residual_hook_name(-1, L) == residual_hook_name(L)
    for layer in range(L + 1):
        got = cache[residual_hook_name(layer)][0, e.latent_positions]
        assert (got - e.hidden[:, layer]).abs().max() <= 1e-4


def test_placeholder_is_read_from_the_trace_spec(setup):
    e = setup.trace[1]
    a = replay_with_cache(setup.bridge, setup.trace, index=1)
    b = replay_with_cache(setup.bridge, e, placeholder_id=setup.runner.rspec.placeholder_id)
    assert torch.equal(a.input_ids, b.input_ids)
    assert torch.equal(a.input_ids[e.latent_positions],
                       torch.full((6,), setup.runner.rspec.placeholder_id, dtype=torch.long))
    assert torch.allclose(a.logits, b.logits, rtol=0, atol=0)
    with pytest.raises(InputError, match="index"):
        replay_with_cache(setup.bridge, setup.trace)
    with pytest.raises(InputError, match="placeholder_id"):
        replay_with_cache(setup.bridge, e)


def test_names_filter_limits_the_cache(setup):
    e = setup.trace[0]
    L = setup.runner.parts.n_layers
    names = [residual_hook_name(i) for i in range(L + 1)]
    _, cache = replay_with_cache(setup.bridge, e, placeholder_id=setup.runner.rspec.placeholder_id, names_filter=names)
    assert not any("attn" in k for k in cache.keys())
    assert (latent_residuals(cache, e.latent_positions) - e.hidden).abs().max() <= 1e-4
    _, partial = replay_with_cache(setup.bridge, e, placeholder_id=setup.runner.rspec.placeholder_id,
                                   names_filter="blocks.0.hook_resid_pre")
    with pytest.raises(InputError, match="hook_resid_post"):
        latent_residuals(partial, e.latent_positions)


def test_the_model_and_tokenizer_are_unchanged(setup):
    replay_with_cache(setup.bridge, setup.trace[0], placeholder_id=setup.runner.rspec.placeholder_id)
    assert setup.bridge.original_model is not setup.model
    assert torch.equal(_probe_logits(setup.model), setup.logits_before)
    after = setup.model.state_dict()
    assert after.keys() == setup.state_before.keys()
    assert all(torch.equal(after[k], v) for k, v in setup.state_before.items())
    assert dict(setup.tok.get_vocab()) == setup.vocab_before
    assert len(setup.tok) == setup.len_before and setup.tok.padding_side == setup.side_before


def test_attention_implementation_of_the_given_model_is_kept(tok, gpt2):
    before = gpt2.config._attn_implementation
    b = to_bridge(gpt2, tok)
    assert b.original_model.config._attn_implementation == "eager"
    assert gpt2.config._attn_implementation == before


def test_wrong_latent_shape_is_a_typed_error(setup):
    e = setup.trace[0]
    bad = e.replace(z=torch.zeros(6, 3))
    with pytest.raises(InterventionShapeError, match="hidden size"):
        replay_with_cache(setup.bridge, bad, placeholder_id=setup.runner.rspec.placeholder_id)


def test_vision_language_models_are_refused_without_installing_anything(tok, qwen):
    with pytest.raises(InputError, match=r"intervene\(trace, mode='replay'\)"):
        to_bridge(qwen, tok)
    assert importlib.util.find_spec("torchvision") is None


def test_unsupported_architecture_is_a_model_structure_error(tok):
    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            from transformers import PretrainedConfig

            self.config = PretrainedConfig(architectures=["NoSuchModelForCausalLM"])
            self.lin = torch.nn.Linear(2, 2)

    with pytest.raises(ModelStructureError, match="no bridge for Odd") as info:
        to_bridge(Odd(), tok)
    assert len(str(info.value)) < 600
    with pytest.raises(ModelStructureError):
        to_bridge(object(), tok)


def test_booting_a_bridge_never_installs_packages(tok, gpt2, monkeypatch):
    # TransformerLens falls back to an unpinned `pip install torchvision` when a processor fails to load; the
    # lens's guard must make that impossible: no subprocess may run while a bridge boots, and the fallback,
    # once patched, reports torchvision missing without running anything
    import subprocess

    import transformer_lens.model_bridge.sources.transformers.helpers as helpers

    from latentprobe import lens

    def forbidden(*args, **kwargs):
        raise AssertionError(f"a subprocess was started while booting a bridge: {args!r}")

    for name in ("check_call", "run", "Popen", "call", "check_output"):
        monkeypatch.setattr(subprocess, name, forbidden)
    to_bridge(gpt2, tok)
    assert helpers._ensure_torchvision is lens._never_install_torchvision
    assert helpers._ensure_torchvision() is False
