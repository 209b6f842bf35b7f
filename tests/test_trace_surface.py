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
    assert both.shape == (24, 2, 2, 128)  # [n, layers, steps, d]: what probe_sweep takes
    np.testing.assert_array_equal(both[:, 1, 0], torch.stack([e.hidden[1, -1] for e in trace24]).numpy())
    np.testing.assert_array_equal(both[:, 0, 1], torch.stack([e.hidden[3, 0] for e in trace24]).numpy())
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


# ----------------------------------------------------------------------------- persistence

import json  # noqa: E402
import shutil  # noqa: E402

from latentprobe import LatentTrace  # noqa: E402
from latentprobe.errors import TraceFormatError  # noqa: E402


@pytest.fixture(scope="module")
def saved(trace24, tmp_path_factory):
    return trace24.select(range(3)).save(tmp_path_factory.mktemp("t") / "trace")


def _copy(saved, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(saved, dst)
    return dst


def _edit_json(folder, fn):
    p = folder / "trace.json"
    meta = json.loads(p.read_text())
    fn(meta)
    p.write_text(json.dumps(meta))


def test_round_trip_is_exact(saved, trace24):
    back = LatentTrace.load(saved)
    assert back.example_ids == trace24.example_ids[:3] and back.spec == trace24.spec
    for a, b in zip(back, trace24.select(range(3))):
        assert torch.equal(a.z, b.z) and torch.equal(a.hidden, b.hidden) and a.answer_text == b.answer_text
        assert a.hidden.dtype == b.hidden.dtype


def test_clashing_ids_or_indices_refused_on_construction(trace24):
    a, b = trace24.select([0, 1]), trace24.select([2, 3])
    with pytest.raises(TraceFormatError, match="index 0, 1 appear"):
        LatentTrace(a.examples + b.examples, a.spec, a.config)
    with pytest.raises(TraceFormatError, match="example_id .*s0-img00002-q0"):
        LatentTrace(a.examples + (a[0].replace(index=7),), a.spec, a.config)


@pytest.mark.parametrize("damage, where", [
    (lambda d: (d / "trace.safetensors").write_bytes((d / "trace.safetensors").read_bytes()[:-100]), "trace.safetensors"),
    (lambda d: (d / "trace.json").write_text("{not json"), "not valid JSON"),
    (lambda d: _edit_json(d, lambda m: m["examples"][0].update(example_id="edited")), "was edited"),
    (lambda d: _edit_json(d, lambda m: m.update(format_version=1)), "format_version"),
])
def test_damaged_traces_name_the_file(saved, tmp_path, damage, where):
    folder = _copy(saved, tmp_path)
    damage(folder)
    with pytest.raises(TraceFormatError, match=where):
        LatentTrace.load(folder)


def test_a_swapped_tensor_file_is_refused(saved, trace24, tmp_path):
    other = trace24.select([5, 6, 7]).save(tmp_path / "other")
    folder = _copy(saved, tmp_path)
    shutil.copy(other / "trace.safetensors", folder / "trace.safetensors")
    with pytest.raises(TraceFormatError, match="tensor_sha256"):
        LatentTrace.load(folder)


def test_a_consistent_edit_of_shapes_is_still_caught(saved, tmp_path):
    # edit a shape record and recompute the integrity hash as a careful forger would: the tensor check still fails
    from latentprobe.trace_store import _integrity

    folder = _copy(saved, tmp_path)

    def forge(meta):
        meta["examples"][0]["tensors"]["z"]["shape"] = [4, 64]
        meta["integrity"] = _integrity(meta)

    _edit_json(folder, forge)
    with pytest.raises(TraceFormatError, match=r"tensor '0.z' has shape \[4, 128\].*records \[4, 64\]"):
        LatentTrace.load(folder)


def test_features_feed_the_probes_and_geometry_directly(trace24):
    from latentprobe import geometry, probing

    tm = toy.load("mediated")
    ex = tm.examples("test", 24)
    y = np.array([e.answer for e in ex])
    groups = np.array([e.image_id for e in ex])
    res = probing.probe_sweep(trace24.features(layers=[0, 4]), y, groups, controls=False,
                              n_splits=3, probe=probing.LinearProbe(Cs=(1.0,)), progress=False)
    # cells are indexed by position in the layers list (0 -> layer 0, 1 -> layer 4)
    assert sorted(set(res.scores["layer"])) == [0, 1] and sorted(set(res.scores["step"])) == [0, 1, 2, 3]
    within = geometry.within_instance(trace24.features(layers=4))
    assert within.step_matrix.shape == (4, 4)
