"""Bad input gets a clear, typed error."""

import pytest
import torch
from torch import nn

from latentprobe import interventions as iv
from latentprobe.errors import (ImageBatchError, InterventionShapeError, ModelStructureError, SpecError,
                                SpecTokenError, StepOutOfRangeError)
from latentprobe.engine import LatentRunner
from latentprobe.spec import LatentSpec
from latentprobe.presets import get_preset
from latentprobe.trace import LatentTrace
from latentprobe.errors import TraceFormatError

VL = "<|vision_start|> <|image_pad|> <|vision_end|> what is ?"


class NoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)


def test_model_without_locatable_layers(tok):
    with pytest.raises(ModelStructureError, match="layers=, norm= and embed="):
        LatentRunner(NoLayers(), tok, "toy")
    with pytest.raises(ModelStructureError):
        LatentRunner("not a model", tok, "toy")


def test_explicit_paths_that_do_not_exist(gpt2, tok):
    with pytest.raises(ModelStructureError, match="final norm"):
        LatentRunner(gpt2, tok, "codi", projection=nn.Identity(), layers="transformer.h", norm="transformer.nope",
                     embed="transformer.wte")


def test_spec_tokens_missing_from_the_tokenizer(qwen, tok):
    spec = LatentSpec(name="x", open_mode="emitted", open_token="<think>", close_token="</think>", num_latents=2)
    with pytest.raises(SpecTokenError, match="<think>"):
        LatentRunner(qwen, tok, spec)


def test_k_not_positive():
    with pytest.raises(SpecError, match=r"num_latents=0: use an integer >= 1 \(K, the number of latents"):
        get_preset("toy", num_latents=0)


def test_codi_needs_its_projection(llama, tok):
    with pytest.raises(SpecError, match="projection"):
        LatentRunner(llama, tok, "codi")


@pytest.fixture(scope="module")
def trace(qwen, tok, images):
    return LatentRunner(qwen, tok, get_preset("toy", open_mode="appended")).run([VL, VL], [images[0], images[1]],
                                                                                max_new_tokens=8, progress=False)


def test_intervention_shape_mismatch(qwen, tok, trace):
    r = LatentRunner(qwen, tok, get_preset("toy", open_mode="appended"))
    with pytest.raises(InterventionShapeError, match="hidden size is 64"):
        r.intervene(trace, iv.Replace(torch.zeros(65)), progress=False)
    with pytest.raises(InterventionShapeError):
        r.intervene(trace, iv.MeanAblate(torch.zeros(4, 3)), progress=False)
    with pytest.raises(InterventionShapeError, match="same shape|returned"):
        r.intervene(trace, lambda z, s, e: z[:3], progress=False)


def test_steps_and_layers_out_of_range(qwen, tok, trace):
    r = LatentRunner(qwen, tok, get_preset("toy", open_mode="appended"))
    with pytest.raises(StepOutOfRangeError, match=r"4 latent step\(s\) \(0..3\); steps \[4\]"):
        r.intervene(trace, iv.Zero(), steps=[4], progress=False)
    with pytest.raises(StepOutOfRangeError):
        r.intervene(trace, iv.Zero(), steps=[-1], progress=False)
    with pytest.raises(StepOutOfRangeError, match="residual layers are 0..2"):
        r.intervene(trace, iv.Zero(), layers=[3], progress=False)
    with pytest.raises(StepOutOfRangeError):
        trace.stack("hidden", layer=9)


def test_image_batch_mismatch(qwen, gpt2, tok, images):
    r = LatentRunner(qwen, tok, "toy")
    with pytest.raises(ImageBatchError, match="2 image entries for 3 prompts"):
        r.run([VL, VL, VL], images[:2], progress=False)
    with pytest.raises(ImageBatchError, match="1 image placeholder"):
        r.run([VL], [[images[0], images[1]]], progress=False)
    with pytest.raises(ImageBatchError, match="0 image placeholder"):
        r.run(["what is ?"], [images[0]], progress=False)
    with pytest.raises(ImageBatchError, match="uint8"):
        r.run([VL], [images[0].astype("float32")], progress=False)
    # any size goes through the image processor (resized to multiples of 28 px)
    assert r.run([VL], [images[0][:100, :90]], max_new_tokens=2, progress=False)[0].image_grid_thw.tolist() == [[1, 8, 6]]
    with pytest.raises(ImageBatchError, match="takes no images"):
        LatentRunner(gpt2, tok, "coconut").run(["a"], [images[0]], progress=False)


def test_trace_folder_that_is_not_a_trace(tmp_path):
    with pytest.raises(TraceFormatError):
        LatentTrace.load(tmp_path)
