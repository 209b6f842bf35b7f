"""Every intervention path goes through the one apply_intervention; bad outputs name where they failed."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import pytest
import torch

from latentprobe import interventions as iv
from latentprobe.engine import InterventionMode, LatentRunner, apply_intervention
from latentprobe.errors import InterventionShapeError
from latentprobe.presets import get_preset

VL = ["<|vision_start|> <|image_pad|> <|vision_end|> what colour is the circle ?",
      "<|vision_start|> <|image_pad|> <|vision_end|> what is ?"]


@dataclass(eq=False)
class Recorder(iv.Intervention):
    """Leaves z unchanged; records who called it and with what."""

    calls: list = field(default_factory=list)

    def apply(self, z, step, example, layer=0):
        caller = sys._getframe(1)
        self.calls.append((caller.f_code.co_name, caller.f_locals.get("mode"), example.example_id, step, layer))
        return z.clone()


@dataclass(eq=False)
class Shrink(iv.Intervention):
    """Returns a vector one coordinate short at ``layer``."""

    layer: int = 0

    def apply(self, z, step, example, layer=0):
        return z[:-1] if layer == self.layer else z


@pytest.fixture(scope="module")
def setup(qwen, tok, images):
    r = LatentRunner(qwen, tok, get_preset("toy", open_mode="appended"))
    tr = r.run(VL, images[:2], example_ids=["ex-a", "ex-b"], max_new_tokens=8, progress=False)
    return r, tr


@pytest.mark.parametrize("mode, prefill_layers", [("replay", True), ("propagate", False), ("redecode", True)])
def test_every_mode_and_layer_calls_the_one_apply_intervention(setup, mode, prefill_layers):
    # layer 0: the fed vector (the recorded one in replay/redecode, a regenerated one in propagate);
    # layer 2: patched in the prefill (replay, redecode) or in decode steps (propagate resumes at step 1)
    r, tr = setup
    rec = Recorder()
    out = r.intervene(tr, rec, steps=[1, 2], layers=[0, 2], mode=mode, progress=False)
    assert rec.calls, "the intervention was called"
    assert {c[0] for c in rec.calls} == {"apply_intervention"}
    assert {c[1] for c in rec.calls} == {InterventionMode(mode)}
    expect = {(eid, s, layer) for eid in ("ex-a", "ex-b") for s in (1, 2) for layer in (0, 2)}
    assert {c[2:] for c in rec.calls} == expect
    assert len(rec.calls) == len(expect)  # once per example, step and layer
    for a, b in zip(tr, out):  # the recorder changes nothing
        torch.testing.assert_close(a.z, b.z, rtol=0, atol=1e-5)


@pytest.mark.parametrize("mode", ["replay", "propagate", "redecode"])
@pytest.mark.parametrize("layer", [0, 2])
def test_a_bad_output_shape_names_example_step_layer_and_mode(setup, mode, layer):
    r, tr = setup
    with pytest.raises(InterventionShapeError) as err:
        r.intervene(tr.select([1]), Shrink(layer), steps=[2], layers=[layer], mode=mode, progress=False)
    msg = str(err.value)
    assert "'ex-b'" in msg and "latent step 2" in msg and f"layer {layer}" in msg and f"mode '{mode}'" in msg


def test_apply_intervention_checks_the_type_too():
    ex = type("E", (), {"example_id": "e1"})()
    with pytest.raises(InterventionShapeError, match=r"example 'e1', latent step 3, layer 0, mode 'replay'"):
        apply_intervention(iv.Lambda(lambda z, s, e: 1.0), torch.zeros(4), step=3, example=ex, layer=0,
                           mode=InterventionMode.REPLAY)
