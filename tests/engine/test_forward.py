"""The traced forward passes the KV cache through the argument transformers 5 keeps: no FutureWarning."""

from __future__ import annotations

import warnings

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
