"""Issue acceptance on the shipped planted toys: probes and the behavioural probe recover the truth."""

import warnings

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from latentprobe import probing
from latentprobe.errors import ControlTaskWarning
from latentprobe.behavioural import behavioural_probe
from latentprobe.toy.behavioural import toy_derived_inputs
from latentprobe.toy import load

# every test here runs the shipped toys and fits nested-CV probes (several seconds each)
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Probe fits are small: one BLAS thread each keeps them from oversubscribing a busy 2-core machine."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


# questions whose words do not name the queried colour (otherwise even blind latents could read it)
TEMPLATES = ("colour_of_shape", "colour_left_of")


def _latent_features(variant, n=300, templates=TEMPLATES):
    tm = load(variant)
    ex = [e for e in tm.examples("test") if e.template in templates and e.attributes["target_colour"] != "none"][:n]
    tr = tm.runner().run(tm.prompts(ex), tm.images(ex), example_ids=[e.example_id for e in ex],
                         max_new_tokens=8, batch_size=64, progress=False)
    n_layers = tm.model.config.text_config.num_hidden_layers
    lat, kept = tr.stack("hidden", layer=n_layers)
    y = np.array([ex[i].attributes["target_colour"] for i in kept])
    groups = np.array([ex[i].image_id for i in kept])
    # the default control types of the probes analyses: the questions, recurring across the folds
    types = probing.recurring_types([ex[i].question for i in kept], groups, n_splits=4, seed=0)
    return lat.numpy().mean(1), y, groups, tr, kept, types


@pytest.fixture(scope="module")
def mediated():
    return _latent_features("mediated")


@pytest.fixture(scope="module")
def blind():
    return _latent_features("blind")


def test_mediated_latents_encode_the_queried_colour(mediated):
    X, y, g, _, _, types = mediated
    with warnings.catch_warnings():
        warnings.simplefilter("error", ControlTaskWarning)
        s = probing.compare_representations({"latent": X}, y, g, task="classification", n_splits=4, seed=0,
                                            control_types=types).iloc[0]
    assert s.control_recur == 1.0
    assert s.ci_low > s.chance + 0.3
    assert s.score > max(s.majority, s.shuffle, s.control) + 0.3
    assert s.selectivity >= 0.5 and s.selectivity_ci_low > 0.4


def test_group_keyed_control_warns_on_the_toy(mediated):
    X, y, g, _, _, _ = mediated
    with pytest.warns(ControlTaskWarning, match="cannot be learned by construction"):
        s = probing.compare_representations({"latent": X}, y, g, n_splits=4, seed=0, control_types=g).iloc[0]
    assert s.control_recur == 0.0


def test_blind_latents_sit_at_chance(blind):
    X, y, g, _, _, types = blind
    s = probing.compare_representations({"latent": X}, y, g, task="classification", n_splits=4, seed=0,
                                        control_types=types).iloc[0]
    assert s.ci_low <= s.chance + 0.05 and s.score < s.chance + 0.15
    assert s.selectivity_ci_low < 0.1


def test_blind_latents_reading_the_question_are_not_selective():
    """With ``shape_of_colour`` questions the colour is named in the question, so the blind toy's latents decode it
    from the question alone: the question-keyed control catches it; a control keyed by image ids does not."""
    X, y, g, _, _, types = _latent_features("blind", templates=TEMPLATES + ("shape_of_colour",))
    s = probing.compare_representations({"latent": X}, y, g, n_splits=4, seed=0, control_types=types).iloc[0]
    assert s.score > s.majority + 0.1  # decodable ...
    assert s.selectivity_ci_low <= 0.0 <= s.selectivity_ci_high and abs(s.selectivity) < 0.05  # ... from the question
    with pytest.warns(ControlTaskWarning):
        old = probing.compare_representations({"latent": X}, y, g, n_splits=4, seed=0, control_types=g,
                                              control_labels="per_type").iloc[0]
    assert old.selectivity_ci_low > 0.0  # the former default: a control that cannot fail calls it selective


def test_regression_to_image_features_separates_the_variants(mediated, blind):
    r2 = {}
    for name, (X, _, g, tr, kept, _) in {"mediated": mediated, "blind": blind}.items():
        feats = tr.image_features(kept).numpy()
        r2[name] = probing.cross_validate_probe(X, feats, g, task="regression", n_splits=4, seed=0).score
    assert r2["mediated"] > r2["blind"] + 0.1
    assert r2["blind"] < 0.05


@pytest.mark.parametrize("variant,carries", [("mediated", True), ("blind", False)])
def test_behavioural_probe(variant, carries):
    tm = load(variant)
    original, derived = toy_derived_inputs(tm.examples("test", n=300))
    res = behavioural_probe(tm.runner(), original, derived, max_new_tokens=8, batch_size=64, n_boot=500)
    acc = res.summary.set_index("condition").accuracy
    test = res.tests.set_index("name").loc["latents_only - blank"]
    if carries:
        assert acc["latents_only"] > acc["blank"] + 0.2 and test.p_value < 1e-3
    else:
        assert abs(acc["latents_only"] - acc["blank"]) < 0.1
    assert acc["image"] > 0.5
