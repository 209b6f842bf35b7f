"""Tuned lens: identity init is the logit lens, exact save/load, typed errors for another model, and on
SmolLM2's real weights a held-out KL below the logit lens at every layer but the last."""

from __future__ import annotations

import json

import pytest
import torch

from latentprobe import LatentRunner, toy
from latentprobe.errors import CheckpointFormatError, CheckpointNotFoundError, InputError, LensMismatchError
from latentprobe.presets import get_preset
from latentprobe.readouts import TunedLens, fit_tuned_lens, lens_kl, tuned_lens_path
from latentprobe.readouts._sample_text import SAMPLE_TEXTS
from latentprobe.readouts._tuned_core import _text_residuals
from latentprobe.readouts.tuned import JSON_FILE, TENSOR_FILE

TOY_TEXTS = ["what colour is the circle ?", "what colour is the square ?", "answer : red", "answer : blue",
             "is the square green ?", "what is the colour of the circle ?"]


@pytest.fixture(scope="module")
def toy_model():
    return toy.load("mediated")


@pytest.fixture(scope="module")
def runner(toy_model):
    return toy_model.runner()


@pytest.fixture(scope="module")
def fitted(runner):
    return fit_tuned_lens(runner, TOY_TEXTS, steps=15, batch_positions=8, held_out=0.34, seed=3)


def _ids(runner, text):
    return list(runner.tokenizer(text)["input_ids"])


def test_identity_lens_is_the_logit_lens_exactly(runner):
    lens = TunedLens.identity(runner)
    ids = _ids(runner, TOY_TEXTS[0])
    h = _text_residuals(runner, ids)                                   # [seq, n_layers + 1, d]
    assert h.shape == (len(ids), runner.n_layers + 1, runner.hidden_size)
    parts = runner.parts
    for layer in range(runner.n_layers + 1):
        direct = parts.lm_head(parts.norm(h[:, layer]))
        assert torch.equal(lens.logits(runner, h[:, layer], layer), direct)
        assert torch.equal(lens.logits(runner, h[:, layer], layer, tuned=False), direct)
    with torch.no_grad():  # the last layer's readout is the model's own next-token distribution
        model_logits = runner.model(input_ids=torch.tensor([ids])).logits[0]
    assert (lens.logits(runner, h[:, -1], runner.n_layers) - model_logits).abs().max().item() <= 1e-5
    table = lens_kl(runner, lens, TOY_TEXTS[:2])
    wide = table.pivot(index="layer", columns="lens", values="kl")
    assert (wide["tuned"] == wide["logit"]).all()
    assert wide.loc[runner.n_layers].tolist() == [0.0, 0.0]
    assert set(table["n_positions"]) == {len(_ids(runner, TOY_TEXTS[0])) + len(_ids(runner, TOY_TEXTS[1]))}


def test_fit_lowers_training_loss_and_reports_held_out_positions(runner, fitted):
    assert fitted.loss.shape == (15,) and torch.isfinite(torch.as_tensor(fitted.loss)).all()
    on_train = lens_kl(runner, fitted.lens, [TOY_TEXTS[i] for i in fitted.train_examples])
    total = on_train.groupby("lens")["kl"].sum()
    assert total["tuned"] < total["logit"]  # the fitted objective went down on the positions it was fitted on
    assert len(fitted.held_out_examples) == 2
    assert set(fitted.train_examples) | set(fitted.held_out_examples) == set(range(len(TOY_TEXTS)))
    n_held = sum(len(_ids(runner, TOY_TEXTS[i])) for i in fitted.held_out_examples)
    assert set(fitted.table["n_positions"]) == {n_held}
    assert fitted.lens.info.settings["n_held_out_positions"] == n_held
    assert fitted.lens.weight_.abs().max() > 0  # it moved away from the identity
    last = fitted.table[fitted.table.layer == runner.n_layers]
    assert last["kl"].tolist() == [0.0, 0.0]
    again = lens_kl(runner, fitted.lens, [TOY_TEXTS[i] for i in fitted.held_out_examples])
    assert again.equals(fitted.table)


def test_save_load_round_trip_is_exact(runner, fitted, tmp_path, monkeypatch):
    lens = fitted.lens
    path = lens.save(tmp_path / "lens")
    assert sorted(p.name for p in path.iterdir()) == sorted([JSON_FILE, TENSOR_FILE])
    back = TunedLens.load(path, runner=runner)
    assert torch.equal(back.weight_, lens.weight_) and torch.equal(back.bias_, lens.bias_)
    assert back.info == lens.info
    h = torch.randn(5, runner.hidden_size, generator=torch.Generator().manual_seed(0))
    for layer in range(runner.n_layers + 1):
        assert torch.equal(back.logits(runner, h, layer), lens.logits(runner, h, layer))
    # by name, under $LATENTPROBE_LENS_DIR
    monkeypatch.setenv("LATENTPROBE_LENS_DIR", str(tmp_path / "lenses"))
    lens.save(tuned_lens_path("toy-mediated"))
    assert torch.equal(TunedLens.load("toy-mediated").weight_, lens.weight_)
    with pytest.raises(CheckpointNotFoundError, match="no tuned_lens.json"):
        TunedLens.load("no-such-lens")
    with pytest.raises(InputError, match="one folder name"):
        tuned_lens_path("a/b")


def test_damaged_or_edited_files_are_refused(fitted, tmp_path):
    path = fitted.lens.save(tmp_path / "lens")
    blob = bytearray((path / TENSOR_FILE).read_bytes())
    blob[-1] ^= 1
    (path / TENSOR_FILE).write_bytes(bytes(blob))
    with pytest.raises(CheckpointFormatError, match="SHA-256"):
        TunedLens.load(path)
    path = fitted.lens.save(tmp_path / "lens2")
    meta = json.loads((path / JSON_FILE).read_text())
    meta["format_version"] = 99
    (path / JSON_FILE).write_text(json.dumps(meta))
    with pytest.raises(CheckpointFormatError, match="version 99"):
        TunedLens.load(path)


def test_a_lens_of_another_model_raises_a_typed_error(fitted, tmp_path, tok, llama):
    other = toy.load("bypass").runner()  # same architecture and sizes, other weights
    with pytest.raises(LensMismatchError, match="fingerprint"):
        fitted.lens.logits(other, torch.zeros(2, other.hidden_size), 0)
    with pytest.raises(LensMismatchError, match="fingerprint"):
        lens_kl(other, fitted.lens, TOY_TEXTS[:2])
    path = fitted.lens.save(tmp_path / "lens")
    with pytest.raises(LensMismatchError, match="fingerprint"):
        TunedLens.load(path, runner=other)
    small = LatentRunner(llama, tok, "coconut")
    with pytest.raises(LensMismatchError, match=r"model 'Qwen2_5_VLForConditionalGeneration' vs 'LlamaForCausalLM'"):
        fitted.lens.check(small)
    with pytest.raises(LensMismatchError, match="d_model 128 vs 64"):
        fitted.lens.check(small)


def test_fit_on_latents_from_a_trace(toy_model, runner):
    ex = toy_model.examples("test", 6)
    trace = toy_model.run(ex)
    fit = fit_tuned_lens(runner, trace, steps=3, batch_positions=8, held_out=0.34)
    k = sum(int(e.hidden.shape[0]) for e in trace.examples)
    assert fit.lens.info.settings["source"] == "latents"
    assert fit.lens.info.settings["n_train_positions"] + fit.lens.info.settings["n_held_out_positions"] == k
    partial = toy_model.run(ex[:2], capture_layers=[0, 1])
    with pytest.raises(InputError, match="capture_layers='all'"):
        fit_tuned_lens(runner, partial, steps=1)


@pytest.mark.parametrize("kwargs, match", [
    (dict(held_out=1.0), "held_out=1.0"),
    (dict(steps=0), "steps=0"),
    (dict(optimizer="lbfgs"), "optimizer='lbfgs'"),
])
def test_bad_settings_are_input_errors(runner, kwargs, match):
    with pytest.raises(InputError, match=match):
        fit_tuned_lens(runner, TOY_TEXTS, **kwargs)


def test_bad_inputs_are_input_errors(runner):
    with pytest.raises(InputError, match="at least 2"):
        fit_tuned_lens(runner, TOY_TEXTS[:1], steps=1)
    with pytest.raises(InputError, match="list of texts"):
        fit_tuned_lens(runner, "one text", steps=1)
    with pytest.raises(InputError, match=r"inputs\[1\] is float"):
        fit_tuned_lens(runner, ["a", 1.5], steps=1)
    with pytest.raises(InputError, match="residual layers are 0..4"):
        TunedLens.identity(runner).translate(torch.zeros(1, runner.hidden_size), 5)


@pytest.mark.slow
def test_smollm2_tuned_lens_beats_the_logit_lens_on_held_out_text(smollm2):
    # markers that exist in SmolLM2's vocabulary; the spec plays no part in reading text positions
    spec = get_preset("coconut", open_token="<|im_start|>", close_token="<|im_end|>", slot_token="<|endoftext|>")
    runner = LatentRunner(smollm2.model, smollm2.tokenizer, spec)
    fit = fit_tuned_lens(runner, SAMPLE_TEXTS, held_out=0.2, steps=20, batch_positions=8, seed=0)
    wide = fit.table.pivot(index="layer", columns="lens", values="kl")
    L = runner.n_layers
    assert L == 30 and len(fit.held_out_examples) == 2 and fit.table["n_positions"].iloc[0] >= 100
    assert (wide.loc[: L - 1, "tuned"] < wide.loc[: L - 1, "logit"]).all(), wide
    assert wide.loc[L].tolist() == [0.0, 0.0]


def test_example_script_quick_writes_the_lens_and_table(tmp_path, monkeypatch, capsys):
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "examples" / "tuned_lens.py"
    main = runpy.run_path(str(script), run_name="example")["main"]
    fit = main(["--quick", "--n", "8", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "held-out KL(final || lens)" in out and f"{len(fit.table) // 2 - 1} layers before the last" in out
    back = TunedLens.load(tmp_path / "lens")
    assert torch.equal(back.weight_, fit.lens.weight_)
    import pandas as pd
    table = pd.read_csv(tmp_path / "tuned_lens_kl.csv")
    assert list(table.columns) == ["layer", "lens", "kl", "n_positions"] and len(table) == len(fit.table)
