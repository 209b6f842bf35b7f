"""Tests for latentprobe.interventions: the registry and rebuilding from configs (no model needed)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch

from latentprobe.errors import InterventionError
from latentprobe.seeding import torch_generator
from latentprobe.interventions import (
    AddNoise,
    GaussianReplace,
    Intervention,
    Lambda,
    MatchedDisplacement,
    MeanAblate,
    NoLatents,
    RepeatFirst,
    Replace,
    ReplaceNoise,
    Scale,
    Swap,
    Zero,
    intervention_from_config,
    register_intervention,
    registered_interventions,
)


def _example(index=0, example_id="e0", k=3, d=4):
    z = torch.arange(k * d, dtype=torch.float32).reshape(k, d) + 1.0
    return SimpleNamespace(index=index, example_id=example_id, z=z, hidden=z[:, None].repeat(1, 2, 1),
                           num_latents=k)


@register_intervention
@dataclass(frozen=True)
class ShiftBy(Intervention):
    """A user-defined intervention: add ``amount`` to every coordinate."""

    amount: float = 1.0
    tag: str = "shift"

    def apply(self, z, step, example, layer=0):
        return z + self.amount


def test_user_defined_intervention_round_trips():
    iv = ShiftBy(amount=2.5, tag="mine")
    cfg = iv.to_config()
    assert cfg == {"type": "ShiftBy", "amount": 2.5, "tag": "mine"}
    rebuilt = intervention_from_config(json.loads(json.dumps(cfg)))
    assert isinstance(rebuilt, ShiftBy) and rebuilt == iv
    ex = _example()
    torch.testing.assert_close(rebuilt(ex.z[0], 0, ex), ex.z[0] + 2.5)
    assert registered_interventions()["ShiftBy"] is ShiftBy


def test_duplicate_name_is_refused():
    register_intervention(ShiftBy)  # the same class again: a no-op

    def other():
        @dataclass(frozen=True)
        class ShiftBy(Intervention):  # same name, different class
            def apply(self, z, step, example, layer=0):
                return z

        return ShiftBy

    with pytest.raises(InterventionError, match="already registered"):
        register_intervention(other())
    assert registered_interventions()["ShiftBy"] is ShiftBy
    with pytest.raises(InterventionError, match="Intervention subclass"):
        register_intervention(int)


def test_every_built_in_is_registered():
    names = set(registered_interventions())
    assert {"Replace", "Zero", "Scale", "AddNoise", "ReplaceNoise", "MeanAblate", "Swap", "RepeatFirst", "Lambda",
            "GaussianReplace", "MatchedDisplacement", "NoLatents"} <= names


@pytest.mark.parametrize("iv", [Replace(torch.ones(4)), Zero(), Scale(0.5), AddNoise(scale=0.3, seed=2),
                                ReplaceNoise(seed=1), MeanAblate(torch.zeros(3, 4)), RepeatFirst(),
                                GaussianReplace(std=2.0, seed=3), NoLatents()],
                         ids=lambda iv: type(iv).__name__)
def test_built_ins_round_trip(iv):
    cfg = json.loads(json.dumps(iv.to_config()))
    rebuilt = intervention_from_config(cfg)
    assert type(rebuilt) is type(iv) and rebuilt.to_config() == iv.to_config()
    if not isinstance(iv, NoLatents):
        ex = _example()
        torch.testing.assert_close(rebuilt(ex.z[1], 1, ex), iv(ex.z[1], 1, ex))


def test_references_are_not_rebuilt_from_config():
    trace = [_example(0, "a"), _example(1, "b")]
    for iv in (Swap(trace, (1, 0)), MatchedDisplacement(trace, (1, 0)), Lambda(lambda z, s, e: z)):
        with pytest.raises(InterventionError, match="cannot rebuild"):
            intervention_from_config(iv.to_config())
    with pytest.raises(InterventionError, match="register_intervention"):
        intervention_from_config({"type": "NoSuchThing"})


def test_moved_interventions_keep_their_draws():
    ex = _example(0, "ex-7")
    z = ex.z[2]
    a = GaussianReplace(std=1.5, seed=4)(z, 2, ex)
    assert torch.equal(a, GaussianReplace(std=1.5, seed=4)(z, 2, ex))
    assert not torch.equal(a, GaussianReplace(std=1.5, seed=5)(z, 2, ex))
    # the draw of the analysis module they came from: keyed by (seed, "gauss", example_id, step, layer)
    want = torch.randn(z.shape, generator=torch_generator(4, "gauss", "ex-7", 2, 0), dtype=torch.float32) * 1.5
    assert torch.equal(a, want)
    src = [_example(0, "a"), _example(1, "b")]
    src[1].z = src[1].z * -1.0
    moved = MatchedDisplacement(src, (1, 0), seed=0)(src[0].z[0], 0, src[0])
    dist = (src[1].z[0] - src[0].z[0]).norm()
    torch.testing.assert_close((moved - src[0].z[0]).norm(), dist)
    with pytest.raises(InterventionError, match="drop_latents"):
        NoLatents()(z, 0, ex)
