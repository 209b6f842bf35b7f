"""How traces print and what `features` returns."""

import numpy as np
import pytest
import torch

from latentprobe import toy
from latentprobe.errors import InputError, StepOutOfRangeError


@pytest.fixture(scope="module")
def trace24():
    tm = toy.load("mediated")
    return tm.run(tm.examples("test", 24))


def test_repr_is_a_short_summary(trace24):
    text = repr(trace24)
    assert len(text) < 2000
    assert text.startswith("LatentTrace: 24 example(s)")
    assert "[4 x 128] float32" in text and "tensor(" not in text
    one = repr(trace24[0])
    assert len(one) < 1000 and "tensor(" not in one and trace24[0].example_id in one


def test_html_summary_escapes_text(trace24):
    html = trace24._repr_html_()
    assert html.startswith("<div>") and "<table>" in html and "LatentTrace: 24 example(s)" in html
    odd = trace24[0].replace(answer_text="<script>x</script>")
    assert "<script>" not in odd._repr_html_() and "&lt;script&gt;" in odd._repr_html_()


def test_features_match_the_stacked_tensors(trace24):
    x = trace24.features(layers=2)
    assert x.shape == (24, 4, 128) and x.dtype == np.float32
    stacked, kept = trace24.stack("hidden", layer=2)
    assert kept == list(range(24))
    np.testing.assert_array_equal(x, stacked.numpy())
    both = trace24.features(layers=[0, -1], steps=[1, 3])
    assert both.shape == (24, 2, 2, 128)
    np.testing.assert_array_equal(both[:, 0, 1], torch.stack([e.hidden[1, -1] for e in trace24]).numpy())
    np.testing.assert_array_equal(trace24.features(what="z"), torch.stack([e.z for e in trace24]).numpy())
    np.testing.assert_array_equal(trace24.features(), trace24.features(layers=-1))


def test_features_refuse_what_they_cannot_give(trace24):
    with pytest.raises(StepOutOfRangeError, match="5 residual layers"):
        trace24.features(layers=9)
    with pytest.raises(StepOutOfRangeError, match="steps"):
        trace24.features(layers=1, steps=[7])
    with pytest.raises(InputError, match="what='z'"):
        trace24.features(layers=1, what="z")
    mixed = trace24.select(range(4))
    short = mixed.examples[0].replace(latent_positions=mixed[0].latent_positions[:2], z=mixed[0].z[:2],
                                      hidden=mixed[0].hidden[:2], h_src=mixed[0].h_src[:2])
    mixed = type(mixed)((short,) + mixed.examples[1:], mixed.spec, mixed.config)
    with pytest.raises(InputError, match=r"different numbers of latents \[2, 4\].*num_latents"):
        mixed.features(layers=1)
    assert mixed.features(layers=1, num_latents=4).shape == (3, 4, 128)
    assert mixed.kept_indices(2) == [0]
