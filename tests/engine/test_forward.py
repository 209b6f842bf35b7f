"""The traced forward passes the KV cache through the argument transformers 5 keeps: no FutureWarning."""

from __future__ import annotations

import warnings

import torch

import pytest

from latentprobe.engine import LatentRunner
from latentprobe.presets import get_preset

VL = ["<|vision_start|> <|image_pad|> <|vision_end|> what colour is the circle ?"]


@pytest.mark.parametrize("arch", ["qwen", "gpt2", "llama"])
def test_no_future_warning_from_generation_or_interventions(request, tok, images, arch):
    model = request.getfixturevalue(arch)
    spec = get_preset("toy", open_mode="appended")
    prompts, imgs = (VL, images[:1]) if arch == "qwen" else (["what is the red circle ?"], None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        r = LatentRunner(model, tok, spec)
        tr = r.run(prompts, imgs, max_new_tokens=8, progress=False)
        for mode in ("replay", "propagate", "redecode"):
            r.intervene(tr, lambda z, step, ex: z, steps=[1], layers=[0, 1], mode=mode, progress=False)
    assert tr[0].num_latents == spec.num_latents


def test_the_cache_goes_through_the_argument_the_model_declares():
    # an unknown cache= would vanish into **kwargs and the model would silently run without its cache
    from latentprobe.engine.forward import cache_kwarg
    from latentprobe.errors import ModelStructureError

    class New(torch.nn.Module):
        def forward(self, inputs_embeds=None, cache=None, **kwargs):
            return None

    class Old(torch.nn.Module):
        def forward(self, inputs_embeds=None, past_key_values=None, **kwargs):
            return None

    class Neither(torch.nn.Module):
        def forward(self, inputs_embeds=None, **kwargs):
            return None

    class Wrapper(torch.nn.Module):  # forwards **kwargs to the model it wraps, as peft does
        def __init__(self):
            super().__init__()
            self.inner = Old()

        def get_base_model(self):
            return self.inner

        def forward(self, *args, **kwargs):
            return self.inner(*args, **kwargs)

    assert cache_kwarg(New()) == "cache" and cache_kwarg(Old()) == "past_key_values"
    assert cache_kwarg(Wrapper()) == "past_key_values"
    with pytest.raises(ModelStructureError, match="neither cache= nor past_key_values="):
        cache_kwarg(Neither())


def test_a_runner_prints_a_summary(qwen, tok):
    r = LatentRunner(qwen, tok, get_preset("mirage"))
    text = repr(r)
    assert text.startswith("LatentRunner") and "Qwen2_5_VLForConditionalGeneration" in text and "takes images" in text
    assert f"open {r.resolved.open_id}, close {r.resolved.close_id}" in text and len(text) < 1000
    assert "<table>" in r._repr_html_()
