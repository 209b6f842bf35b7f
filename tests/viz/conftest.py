"""Real analysis output for the viz and schema tests, built once per session.

Geometry and probing run on seeded random arrays; X -> Z, Z -> Y and the mediation decomposition
run on the shipped ``mediated`` toy model with 12 examples.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from latentprobe.causal import decompose, default_interventions, x_to_z, z_to_y  # noqa: E402
from latentprobe.perturbations import ImageSwap  # noqa: E402
from latentprobe.toy.perturbations import Counterfactual, toy_inputs  # noqa: E402
from latentprobe.probing import LinearProbe, compare_representations, probe_sweep  # noqa: E402
from latentprobe.geometry import (  # noqa: E402
    across_instances, cka_against, cka_matrix, collapse_table, norm_table, within_instance,
)

N, K, D = 12, 4, 8
N_BOOT = 200
GROUPS = np.arange(N) % 3


# --------------------------------------------------------------------------- geometry
@pytest.fixture(scope="session")
def latents():
    return np.random.default_rng(0).normal(size=(N, K, D)) + 0.5


@pytest.fixture(scope="session")
def text_tokens():
    return np.random.default_rng(1).normal(size=(N, K, D))


@pytest.fixture(scope="session")
def within(latents):
    return within_instance(latents, n_boot=N_BOOT)


@pytest.fixture(scope="session")
def within_centered(latents):
    return within_instance(latents, center=True, n_boot=N_BOOT)


@pytest.fixture(scope="session")
def across(latents):
    return across_instances(latents, groups=GROUPS, n_boot=N_BOOT)


@pytest.fixture(scope="session")
def collapse(latents, text_tokens):
    return collapse_table(latents, baselines={"text_tokens": text_tokens})


@pytest.fixture(scope="session")
def collapse_grouped(latents):
    return collapse_table(latents, groups=GROUPS)


@pytest.fixture(scope="session")
def norms(latents):
    return norm_table(latents, np.random.default_rng(2).normal(size=(40, D)))


@pytest.fixture(scope="session")
def cka(latents):
    return cka_matrix(latents)


@pytest.fixture(scope="session")
def cka_features(latents):
    return cka_against(latents, np.random.default_rng(3).normal(size=(N, 5)))


# --------------------------------------------------------------------------- probing
@pytest.fixture(scope="session")
def probe_data():
    rng = np.random.default_rng(4)
    y = np.repeat([0, 1], 12)
    feats = rng.normal(size=(24, 2, 3, 6))
    feats[:, 1] += y[:, None, None]  # decodable at layer 1 only
    return feats, y, np.arange(24) // 2


@pytest.fixture(scope="session")
def sweep(probe_data):
    feats, y, groups = probe_data
    return probe_sweep(feats, y, groups, target_name="colour", n_splits=3, seed=0, progress=False,
                       control_types=np.arange(24) % 3, probe=LinearProbe(Cs=(1.0,), inner_cv=2))


@pytest.fixture(scope="session")
def comparison(probe_data):
    feats, y, groups = probe_data
    reps = {"latent": feats[:, 1, 0], "image_tokens": feats[:, 0, 0], "random_model": feats[:, 0, 1]}
    return compare_representations(reps, y, groups, target_name="colour", n_splits=3, seed=0,
                                   control_types=np.arange(24) % 3, probe=LinearProbe(Cs=(1.0,), inner_cv=2))


# --------------------------------------------------------------------------- causal (toy model)
@pytest.fixture(scope="session")
def toy():
    from latentprobe.toy import load

    tm = load("mediated")
    return tm, tm.runner(), toy_inputs(tm.examples(split="test", n=N))


@pytest.fixture(scope="session")
def lens_result(toy):
    from latentprobe.readouts import lens

    _, runner, inputs = toy
    return lens(runner, runner.run(**inputs.run_kwargs(), max_new_tokens=8, progress=False), top_k=3)


@pytest.fixture(scope="session")
def xz(toy):
    _, runner, inputs = toy
    return x_to_z(runner, inputs, [Counterfactual(seed=0), ImageSwap(seed=0)], layers=[0, 1], n_boot=N_BOOT,
                  batch_size=8, progress=False)


@pytest.fixture(scope="session")
def attention_res(toy):
    from latentprobe.readouts import attention

    _, runner, inputs = toy
    trace = runner.run(**inputs.run_kwargs(), max_new_tokens=16, batch_size=8, progress=False)
    return attention(runner, trace.select(range(4)))


@pytest.fixture(scope="session")
def zy(toy):
    _, runner, inputs = toy
    trace = runner.run(**inputs.run_kwargs(), max_new_tokens=16, batch_size=8, progress=False)
    ivs = {k: v for k, v in default_interventions(trace, seed=0).items() if k in ("zero", "add_noise", "swap")}
    return z_to_y(runner, trace, ivs, modes=("replay", "redecode"), gold=inputs.gold, n_boot=N_BOOT, batch_size=8,
                  progress=False)


@pytest.fixture(scope="session")
def patching(toy):
    from latentprobe.causal import patch

    _, runner, inputs = toy
    return patch(runner, inputs.select(range(6)), Counterfactual(seed=0), positions=["image", "latents"],
                 layers=[0, 1], modes=["redecode"], n_boot=N_BOOT)


@pytest.fixture(scope="session")
def med(toy):
    _, runner, inputs = toy
    return decompose(runner, inputs, Counterfactual(seed=0), n_boot=N_BOOT, batch_size=8, progress=False)


@pytest.fixture(scope="session")
def efficiency(toy):
    """The ``efficiency`` analysis's tables on a real toy run (two batches of different sizes)."""
    from types import SimpleNamespace

    from latentprobe.efficiency import cost_summary, decode_costs

    _, runner, inputs = toy
    costs = decode_costs(runner.run(**inputs.run_kwargs(), max_new_tokens=8, progress=False, batch_size=5))
    return SimpleNamespace(costs=costs, summary=cost_summary(costs, n_boot=100))
