"""The reliability table of issue 20, items 5-7: every case is a typed :class:`~latentprobe.errors.LatentProbeError`
(or a warning) whose message names the thing that was wrong; none is raw (a transformers, safetensors, torch or
built-in error) and none is silent.

* item 5, ``latentprobe.load``: broken checkpoint folders are built offline in a temporary folder by saving a tiny
  model (the shipped ``mediated`` toy, a Qwen2.5-VL with Mirage's tokens) and corrupting one thing; where a library
  raised, its error is kept as ``__cause__``;
* item 6, the command line: one line, no traceback, exit 1 (2 for a bad study file); the disk-full, read-only
  and special-path runs, and the resume after a full disk, are in ``tests/test_cli_disk.py``;
* item 7, the smaller cases, each refused before any work (a ``NoOpWarning`` where only some examples of a swap
  would stay unchanged).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import latentprobe
from latentprobe import LatentRunner, LatentSpec, cli, toy
from latentprobe import interventions as iv
from latentprobe.engine.detect import FamilyDetectionError
from latentprobe.errors import (CheckpointFormatError, CheckpointNotFoundError, DataError, InputError,
                                InterventionError, InterventionShapeError, LatentProbeError, LoadArgumentError,
                                LoadError, NoOpWarning, ProbeError, SpecError, StepOutOfRangeError, StudyError)
from latentprobe.perturbations import ImageSwap, QuestionSwap

STUDY = """
[study]
name = "reliability"
seed = 0
[model]
source = "{source}"
{model_extra}
[data]
benchmark = "toy"
split = "test"
n = 8
[generation]
max_new_tokens = 8
batch_size = 8
chunk_size = 8
n_boot = 20
{analyses}
"""
PROBES = '[analyses.probes]\ntargets = ["target_colour"]\nlayers = {layers}\nn_splits = 2\n'
ZY = '[analyses.z_to_y]\ninterventions = ["zero"]\nmodes = ["propagate"]\nlayers = {layers}\n'


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    """A saved toy checkpoint (with its image processor's preprocessor_config.json), a runner and a clean trace."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    d = tmp_path_factory.mktemp("reliability")
    tm = toy.load("mediated")
    good = d / "good"
    tm.model.save_pretrained(good)
    tm.tokenizer.save_pretrained(good)
    Qwen2VLImageProcessorPil().save_pretrained(good)
    inputs = toy.toy_inputs(tm.examples("test", 4))
    runner = tm.runner()
    trace = runner.run(**inputs.run_kwargs(), max_new_tokens=8, progress=False)
    (d / "afile").write_text("not a trace folder")
    return SimpleNamespace(dir=d, good=good, tm=tm, inputs=inputs, runner=runner, trace=trace, n=0)


def _copy(c, change) -> Path:
    """A copy of the good checkpoint with ``change(folder)`` applied."""
    c.n += 1
    folder = c.dir / f"broken{c.n}"
    shutil.copytree(c.good, folder)
    change(folder)
    return folder


def _edit_json(name, edit):
    def change(folder):
        data = json.loads((folder / name).read_text())
        (folder / name).write_text(json.dumps(edit(data)))
    return change


def _cut(name, keep):
    def change(folder):
        raw = (folder / name).read_bytes()
        (folder / name).write_bytes(raw[:keep(len(raw))])
    return change


def _write(name, content):
    def change(folder):
        (folder / name).write_bytes(content)
    return change


def _remove(*names):
    def change(folder):
        for pattern in names:
            for p in folder.glob(pattern):
                p.unlink()
    return change


def _reshape_a_weight(folder):
    from safetensors.torch import load_file, save_file

    sd = load_file(folder / "model.safetensors")
    key = next(k for k in sd if k.endswith("layers.0.mlp.up_proj.weight"))
    sd[key] = torch.zeros(sd[key].shape[0] + 1, sd[key].shape[1])
    save_file(sd, folder / "model.safetensors", metadata={"format": "pt"})


def _split_into_missing_shards(folder):
    (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
    from safetensors import safe_open

    with safe_open(folder / "model-00001-of-00002.safetensors", "pt") as f:
        keys = list(f.keys())
    shard = {k: ("model-00001-of-00002.safetensors" if i % 2 else "model-00002-of-00002.safetensors")
             for i, k in enumerate(keys)}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": shard}))


def _garbage_file(c, name):
    """A file in Coconut's naming (``checkpoint_{epoch}``, no suffix) that holds no tensors."""
    (c.dir / name).write_bytes(b"PK\x03\x04 not a zip archive")
    return c.dir / name


def _load(change, **kw):
    return lambda c: latentprobe.load(_copy(c, change), **kw)


_CUDA = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda:0"  # a device this machine lacks

# (case id, call, expected class, fragments of the message, a library error is kept as the cause)
LOAD_CASES = [
    ("load-none", lambda c: latentprobe.load(None), LoadArgumentError, ["load(None)", "folder path or a hub id"],
     False),
    ("load-int", lambda c: latentprobe.load(5), LoadArgumentError, ["load(5)", "got int"], False),
    ("load-empty-string", lambda c: latentprobe.load(""), LoadArgumentError, ["path is empty"], False),
    ("load-missing-folder", lambda c: latentprobe.load(c.dir / "no" / "such"), CheckpointNotFoundError,
     ["no such folder or file", "no/such"], False),
    ("load-empty-folder", lambda c: latentprobe.load(_copy(c, _remove("*"))), CheckpointNotFoundError,
     ["neither config.json nor weights", "not a checkpoint"], False),
    ("load-no-config", _load(_remove("config.json")), FamilyDetectionError, ["has no config.json"], False),
    ("load-no-weights", _load(_remove("model.safetensors")), CheckpointNotFoundError,
     ["holds config.json but no weights", "save_pretrained"], False),
    ("load-no-tokenizer", _load(_remove("tokenizer*")), CheckpointNotFoundError,
     ["no tokenizer files", "tokenizer.save_pretrained"], False),
    ("load-missing-shard", _load(_split_into_missing_shards), CheckpointNotFoundError,
     ["model.safetensors.index.json", "model-00002-of-00002.safetensors", "download the missing"], False),
    ("load-truncated-safetensors", _load(_cut("model.safetensors", lambda n: n // 2)), CheckpointFormatError,
     ["model.safetensors", "cannot be read", "cut short"], True),
    ("load-truncated-header", _load(_cut("model.safetensors", lambda n: 5)), CheckpointFormatError,
     ["model.safetensors", "cannot be read"], True),
    ("load-garbage-safetensors", _load(_write("model.safetensors", b"\xff" * 100)), CheckpointFormatError,
     ["model.safetensors", "damaged"], True),
    ("load-config-not-json", _load(_write("config.json", b"{not json")), CheckpointFormatError,
     ["config.json cannot be read as JSON", "restore it"], True),
    ("load-tokenizer-config-not-json", _load(_write("tokenizer_config.json", b"\x00\x01")), CheckpointFormatError,
     ["tokenizer_config.json cannot be read as JSON"], True),
    ("load-unknown-model-type", _load(_edit_json("config.json", lambda d: {**d, "model_type": "nonesuch"})),
     CheckpointFormatError, ["config.json", "does not know its model_type", "nonesuch"], True),
    ("load-dtype-float33", lambda c: latentprobe.load(c.good, dtype="float33"), LoadArgumentError,
     ["dtype='float33' is not a torch dtype", "bfloat16"], False),
    ("load-dtype-int", lambda c: latentprobe.load(c.good, dtype=torch.int64), LoadArgumentError,
     ["dtype=torch.int64 is not a floating-point dtype"], False),
    ("load-dtype-int-name", lambda c: latentprobe.load(c.good, dtype="int32"), LoadArgumentError,
     ["dtype='int32'", "floating-point"], False),
    ("load-device-map-absent-gpu", lambda c: latentprobe.load(c.good, device_map=_CUDA), LoadArgumentError,
     [f"device_map='{_CUDA}'", "device_map='cpu'"], False),
    ("load-device-map-not-a-device", lambda c: latentprobe.load(c.good, device_map="fastest"), LoadArgumentError,
     ["'fastest' is not a device"], False),
    ("load-offline-hub-id", lambda c: latentprobe.load("nosuch-owner/nosuch-model"), CheckpointNotFoundError,
     ["'nosuch-owner/nosuch-model' could not be fetched from the Hugging Face Hub", "HF_HUB_OFFLINE",
      "hf download nosuch-owner/nosuch-model"], True),
    ("load-file-for-folder", lambda c: latentprobe.load(c.good / "config.json"), LoadArgumentError,
     ["is a file (config.json)", "pass the folder that holds it"], False),
    ("load-weights-file-for-folder", lambda c: latentprobe.load(c.good / "model.safetensors"), FamilyDetectionError,
     ["is a file of the save_pretrained folder", "load the folder"], False),
    ("load-garbage-state-dict-file", lambda c: latentprobe.load(_garbage_file(c, "checkpoint_3")),
     CheckpointFormatError, ["checkpoint_3: the weights file cannot be read", "damaged"], True),
    ("load-special-file", lambda c: latentprobe.load("/dev/null"), LoadArgumentError,
     ["/dev/null is neither a folder nor a file"], False),
    ("load-mismatched-shapes", _load(_reshape_a_weight), CheckpointFormatError,
     ["other shapes than its config.json", "different models"], True),
    ("load-preprocessor-not-json", _load(_write("preprocessor_config.json", b"{broken")), CheckpointFormatError,
     ["preprocessor_config.json cannot be read as JSON"], True),
    ("load-preprocessor-unknown-type",
     _load(_edit_json("preprocessor_config.json", lambda d: {"image_processor_type": "NoSuchImageProcessor"})),
     CheckpointFormatError, ["reading the image processor (preprocessor_config.json) failed"], True),
    ("load-preprocessor-not-a-dict", _load(_write("preprocessor_config.json", b'["a", "list"]')),
     CheckpointFormatError, ["preprocessor_config.json"], True),
    ("load-chat-template-not-json", _load(_write("chat_template.json", b"{")), CheckpointFormatError,
     ["chat_template.json cannot be read as JSON"], True),
    ("load-codi-missing-checkpoint", lambda c: latentprobe.engine.load_codi(c.dir / "nope.safetensors", c.good),
     (CheckpointNotFoundError, LoadError), ["nope.safetensors"], False),
]


@pytest.mark.parametrize("case, call, err, fragments, caused", LOAD_CASES, ids=[x[0] for x in LOAD_CASES])
def test_load_failures_are_typed(c, case, call, err, fragments, caused):
    with pytest.raises(LatentProbeError) as info:
        call(c)
    e = info.value
    assert isinstance(e, err) and isinstance(e, LoadError), f"{case}: {type(e).__name__}: {e}"
    msg = str(e)
    for fragment in fragments:
        assert fragment in msg, f"{case}: {fragment!r} not in {msg!r}"
    if caused:  # the library's own error is kept, untranslated, as the cause
        assert e.__cause__ is not None and not isinstance(e.__cause__, LatentProbeError), case


def test_a_good_folder_loads_with_its_image_processor(c):
    r = latentprobe.load(c.good)
    assert r.spec.name == "mirage" and type(r.image_processor).__name__ == "Qwen2VLImageProcessorPil"
    bad = _copy(c, _write("preprocessor_config.json", b"{broken"))
    with pytest.raises(CheckpointFormatError):  # no silent fallback to the default image settings
        latentprobe.load(bad)


def test_load_errors_are_exported_and_typed():
    assert latentprobe.LoadError is LoadError and issubclass(LoadError, LatentProbeError)
    for cls in (LoadArgumentError, CheckpointNotFoundError, CheckpointFormatError, FamilyDetectionError):
        assert issubclass(cls, LoadError)
    assert issubclass(CheckpointNotFoundError, FileNotFoundError) and issubclass(LoadArgumentError, TypeError)


def test_a_study_on_a_broken_checkpoint_names_the_folder(c, tmp_path):
    from latentprobe.study.config import ModelConfig
    from latentprobe.study.models import build_model

    folder = _copy(c, _cut("model.safetensors", lambda n: n // 3))
    with pytest.raises(StudyError) as info:
        build_model(ModelConfig(source=str(folder), preset="mirage"), "s.toml")
    assert f"the folder {folder} could not be loaded as a checkpoint" in str(info.value)
    assert isinstance(info.value.__cause__, CheckpointFormatError)


# ----------------------------------------------------------------------------------------------- item 6: the CLI
def _study(c, name, *, source="toy:mediated", model_extra="", analyses=ZY.format(layers="[0]")) -> Path:
    path = c.dir / f"{name}.toml"
    text = STUDY.format(source=source, model_extra=model_extra, analyses=analyses)
    if not source.startswith("toy:"):  # a checkpoint studies real-format data: two GSM8k-Aug questions
        (c.dir / "gsm2.json").write_text(json.dumps([{"question": f"{i} + 1 = ?", "answer": str(i + 1),
                                                      "steps": [f"<<{i}+1={i + 1}>>"]} for i in range(2)]))
        text = text.replace('benchmark = "toy"\nsplit = "test"\nn = 8', f'benchmark = "gsm8k-aug"\nroot = '
                            f'"{c.dir / "gsm2.json"}"\nn = 2')
    path.write_text(text)
    return path


def _damaged_folder(c):
    out = c.dir / "damaged-study"
    if not out.exists():
        code = CliRunner().invoke(cli.main, ["run", str(_study(c, "ok")), "--out", str(out), "--quiet"]).exit_code
        assert code == 0
    copy = c.dir / f"damaged-{c.n}"
    c.n += 1
    shutil.copytree(out, copy)
    (copy / "z_to_y" / "rows.csv").write_bytes(b"\x00\xff,,\"\n\"a")
    return copy


CLI_CASES = [
    ("cli-missing-model-folder", lambda c: ["run", str(_study(c, "missing", source="./no-such-folder",
                                                              model_extra='preset = "mirage"')), "--out",
                                            str(c.dir / "o1")], 2, ["no-such-folder does not exist"]),
    ("cli-broken-model-folder", lambda c: ["run", str(_study(c, "broken", source=str(_copy(c, _write(
        "config.json", b"{"))), model_extra='preset = "mirage"')), "--out", str(c.dir / "o2")], 2,
     ["could not be loaded as a checkpoint", "config.json cannot be read as JSON"]),
    ("cli-garbage-csv", lambda c: ["report", str(_damaged_folder(c))], 2, ["rows.csv: cannot be read"]),
    ("cli-dev-null-out", lambda c: ["run", str(_study(c, "devnull")), "--out", "/dev/null"], 2,
     ["/dev/null is a file, not a folder"]),
    ("cli-file-as-out", lambda c: ["run", str(_study(c, "fileout")), "--out", str(c.dir / "afile")], 2,
     ["'--out'", "afile' is a file"]),
    ("cli-trace-onto-a-file", lambda c: ["trace", "free", "--n", "2", "--out", str(c.dir / "afile")], 2,
     ["'--out'", "afile' is a file"]),
    ("cli-under-a-file", lambda c: ["trace", "free", "--n", "2", "--out", str(c.dir / "afile" / "t")], 1,
     ["afile/t: Not a directory [ENOTDIR]"]),
]


@pytest.mark.parametrize("case, args, code, fragments", CLI_CASES, ids=[x[0] for x in CLI_CASES])
def test_cli_failures_are_one_line(c, case, args, code, fragments):
    res = CliRunner().invoke(cli.main, args(c), standalone_mode=True, catch_exceptions=False)
    lines = res.output.strip().splitlines()
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output and lines[-1].startswith(("latentprobe: error: ",
                                                                    "latentprobe: usage error: ")), res.output
    assert sum(ln.startswith("latentprobe:") for ln in lines) == 1, res.output
    for fragment in fragments:
        assert fragment in lines[-1], f"{case}: {fragment!r} not in {lines[-1]!r}"


# -------------------------------------------------------------------------------------- item 7: the smaller cases
def _load_study(c, name, **kw):
    from latentprobe.study import load_study

    return load_study(_study(c, name, **kw))


def _run_study(c, name, **kw):
    from latentprobe.study import run_study

    return run_study(_study(c, name, **kw), c.dir / f"out-{name}", progress=False)


def _empty_gsm8k(c):
    from latentprobe.data import load_benchmark

    (c.dir / "gsm").mkdir(exist_ok=True)
    (c.dir / "gsm" / "test.json").write_text("[]")
    return load_benchmark("gsm8k-aug", c.dir / "gsm")


def _empty_jsonl(c):
    from latentprobe.data import load_jsonl

    (c.dir / "empty.jsonl").write_text("")
    return load_jsonl(c.dir / "empty.jsonl")


def _probe(labels):
    from latentprobe.probing import LinearProbe

    X = np.random.default_rng(0).normal(size=(len(labels), 4))
    return LinearProbe().fit(X, labels)


def _d(c):
    return c.trace.examples[0].z.shape[-1]


def _k(c):
    return c.trace.examples[0].num_latents


SMALL_CASES = [
    ("zy-layers-all-study", lambda c: _load_study(c, "zy-all", analyses=ZY.format(layers='"all"')), StudyError,
     ["[analyses.z_to_y] key 'layers'", "must be a list"]),
    ("zy-layers-all-api", lambda c: latentprobe.causal.z_to_y(c.runner, c.trace, {"zero": iv.Zero()}, layers="all",
                                                            modes=["replay"], progress=False), InputError,
     ["layers='all'", "list of integers"]),
    ("probe-layers-out-of-range", lambda c: _run_study(c, "probe-99", analyses=PROBES.format(layers="[99]")),
     StudyError, ["[analyses.probes] key 'layers': [99] out of range", "residual layers (0.."]),
    ("toy-dtype", lambda c: _load_study(c, "toy-dtype", model_extra='dtype = "bfloat16"'), StudyError,
     ["[model] key 'dtype': does not apply to the toy models"]),
    ("toy-device-map", lambda c: _load_study(c, "toy-dm", model_extra='device_map = "cuda:0"'), StudyError,
     ["[model] key 'device_map': does not apply to the toy models"]),
    ("empty-jsonl", _empty_jsonl, DataError, ["empty.jsonl: no examples were read"]),
    ("empty-benchmark-file", _empty_gsm8k, DataError, ["test.json: no examples were read"]),
    ("runner-tokenizer-none", lambda c: LatentRunner(c.tm.model, None, c.tm.spec), InputError,
     ["tokenizer=None", "AutoTokenizer"]),
    ("probe-labels-nan", lambda c: _probe([0.0, 1.0, float("nan")] * 4), ProbeError,
     ["labels [2, 5, 8, 11] (4 of 12) are missing (None or NaN)"]),
    ("probe-labels-none", lambda c: _probe(["a", "b", None] * 4), ProbeError, ["(4 of 12) are missing"]),
    ("swap-as-class", lambda c: c.runner.intervene(c.trace, iv.Swap, progress=False), InterventionError,
     ["Swap is a class", "Swap(trace)"]),
    ("zero-as-class", lambda c: c.runner.intervene(c.trace, iv.Zero, progress=False), InterventionError,
     ["Zero is a class"]),
    ("spec-from-dict-text", lambda c: LatentSpec.from_dict("text"), SpecError,
     ["LatentSpec.from_dict('text')", "json.loads"]),
    ("trace-save-onto-file", lambda c: c.trace.save(c.dir / "afile"), InputError,
     ["afile is a file", "a trace is saved as a folder"]),
    ("replace-more-rows", lambda c: c.runner.intervene(c.trace, iv.Replace(torch.zeros(_k(c) + 2, _d(c))),
                                                       progress=False), InterventionShapeError,
     ["Replace.value holds", "would never be used"]),
    ("replace-more-rows-per-example", lambda c: c.runner.intervene(
        c.trace, iv.Replace(torch.zeros(len(c.trace), _k(c) + 1, _d(c))), progress=False), InterventionShapeError,
     ["would never be used"]),
    ("steps-empty", lambda c: c.runner.intervene(c.trace, iv.Zero(), steps=[], progress=False), StepOutOfRangeError,
     ["steps=[] names no latent step"]),
    ("image-swap-identity", lambda c: ImageSwap(mapping=tuple(range(len(c.inputs)))).apply(c.inputs), InputError,
     ["ImageSwap.mapping pairs every example with itself", "changes nothing"]),
    ("question-swap-identity", lambda c: QuestionSwap(mapping=tuple(range(len(c.inputs)))).apply(c.inputs),
     InputError, ["QuestionSwap.mapping pairs every example with itself"]),
    ("swap-identity", lambda c: c.runner.intervene(c.trace, iv.Swap(c.trace, mapping=tuple(range(len(c.trace)))),
                                                   progress=False), InterventionError,
     ["gives every example its own latents"]),
    ("load-none", lambda c: latentprobe.load(None), LoadArgumentError, ["load(None)"]),
]


@pytest.mark.parametrize("case, call, err, fragments", SMALL_CASES, ids=[x[0] for x in SMALL_CASES])
def test_smaller_cases_are_typed(c, case, call, err, fragments):
    with pytest.raises(LatentProbeError) as info:
        call(c)
    assert isinstance(info.value, err), f"{case}: {type(info.value).__name__}: {info.value}"
    for fragment in fragments:
        assert fragment in str(info.value), f"{case}: {fragment!r} not in {str(info.value)!r}"


def test_a_swap_that_leaves_some_examples_unchanged_warns_naming_them(c):
    n = len(c.inputs)
    assert n == 4 and len({m["image_id"] for m in c.inputs.meta}) == 2
    mapping = (0, 2, 1, 1)  # example 0 keeps its own image (the toy shows each image with two questions)
    with pytest.warns(NoOpWarning, match=r"ImageSwap.mapping pairs 1 of 4 example\(s\)") as caught:
        ImageSwap(mapping=mapping).apply(c.inputs)
    assert repr(c.inputs.example_ids[0]) in str(caught[0].message)
    with pytest.warns(NoOpWarning, match="Swap gives 1 example"):
        c.runner.intervene(c.trace, iv.Swap(c.trace, mapping=mapping), mode="replay", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoOpWarning)  # a derangement warns of nothing
        ImageSwap(mapping=(2, 3, 0, 1)).apply(c.inputs)


def test_probes_steps_out_of_range_are_refused_before_any_probe(c):
    with pytest.raises(StudyError, match=r"key 'steps': \[40\] out of range: this run has \d+ latent steps"):
        _run_study(c, "probe-steps", analyses=PROBES.format(layers="[1]") + "steps = [40]\n")
