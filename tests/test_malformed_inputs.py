"""Malformed inputs across the public API: each gets a typed error whose message names the problem.

One row per case: (case id, call, expected error class, fragment of the message). Every expected
class is a :class:`~latentprobe.errors.LatentProbeError`; no case may leak a built-in error from
deep inside (an IndexError from the embedding, a TypeError from a dataclass, PIL's "truncated").
"""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from latentprobe import geometry as geo
from latentprobe import interventions as iv
from latentprobe.causal import decompose, summarize_mediation, summarize_x_to_z, summarize_z_to_y, x_to_z, z_to_y
from latentprobe.data import load_jsonl
from latentprobe.data.loaders import load_image
from latentprobe.engine import LatentRunner
from latentprobe.engine.patching import InterventionMode, apply_intervention
from latentprobe.errors import (
    DataError, DTypeError, EmptyAnswersError, ImageBatchError, InputError, InterventionError,
    InterventionShapeError, LatentProbeError, NonFiniteError, NonFiniteInterventionError, ProbeError, ShapeError,
    SimilarityError, SpecError, StatsInputError, StepOutOfRangeError, TooFewSamplesError, TraceFormatError,
)
from latentprobe.perturbations import (BlankImage, Custom, ImageSwap, InputSet, InstanceSwap, NoiseImage, Occlude,
                                       QuestionSwap)
from latentprobe.presets import get_preset
from latentprobe.probing import LinearProbe, cross_validate_probe
from latentprobe.spec import LatentSpec
from latentprobe.stats import bootstrap_ci
from latentprobe.trace import LatentTrace
from tiny import tiny_gpt2

LAT6 = " ".join(["<|latent|>"] * 6)
COCONUT = [f"a b <|start-latent|> {LAT6} <|end-latent|> answer :", f"c <|start-latent|> {LAT6} <|end-latent|>"]
VL = "<|vision_start|> <|image_pad|> <|vision_end|> what is ?"
SPEC = dict(name="s", open_mode="emitted", open_token="<bot>", close_token="<eot>", num_latents=3)


@pytest.fixture(scope="module")
def ctx(tok, gpt2, qwen, images, tmp_path_factory):
    r = LatentRunner(gpt2, tok, "coconut")
    trace = r.run(COCONUT, example_ids=["p", "q"], max_new_tokens=4, progress=False)
    wide = LatentRunner(tiny_gpt2(tok, hidden=128), tok, "coconut")
    trace128 = wide.run(COCONUT, max_new_tokens=4, progress=False)
    empty = LatentTrace(tuple(e.replace(answer_ids=e.answer_ids[:0], answer_logprobs=e.answer_logprobs[:0],
                                        answer_text="") for e in trace.examples), trace.spec, trace.config)
    inputs = InputSet(("p", "q"), tuple(COCONUT), gold=("a", "b"))
    vl_inputs = InputSet(("u", "v"), (VL, VL), images=(images[0], images[1]), gold=("a", "b"))
    d = tmp_path_factory.mktemp("malformed")
    (d / "imgs").mkdir()
    from PIL import Image

    Image.fromarray(images[0]).save(d / "imgs" / "ok.png")
    raw = (d / "imgs" / "ok.png").read_bytes()
    (d / "imgs" / "cut.png").write_bytes(raw[: len(raw) // 2])
    (d / "secret.png").write_bytes(raw)

    def jsonl(name: str, rows: list) -> str:
        p = d / name
        p.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
        return str(p)

    return SimpleNamespace(r=r, trace=trace, trace128=trace128, empty=empty, tok=tok, gpt2=gpt2, qwen=qwen,
                           images=images, inputs=inputs, vl_inputs=vl_inputs, dir=d, jsonl=jsonl,
                           appended=LatentRunner(qwen, tok, get_preset("toy", open_mode="appended")))


def _nan_lambda(z, step, example):
    return z * float("nan")


def _ex(trace):
    return trace.examples[0]


_NAN = torch.full((64,), float("nan"))
_ONES = torch.ones(64)
_X = np.random.default_rng(0).normal(size=(10, 8))
_XNAN = np.where(np.arange(80).reshape(10, 8) == 3, np.nan, _X)
_XINF = np.where(np.arange(80).reshape(10, 8) == 5, np.inf, _X)
_L = np.random.default_rng(1).normal(size=(6, 3, 8))
_LNAN = np.where(np.arange(144).reshape(6, 3, 8) == 7, np.nan, _L)
_Y = np.array([0, 1] * 5)
_G = np.arange(10)

CASES = [
    # ---------------------------------------------------------------- LatentSpec
    ("spec-bogus-field", lambda c: LatentSpec(**SPEC, bogus_field=1), SpecError, "unknown field(s) ['bogus_field']"),
    ("spec-missing-field", lambda c: LatentSpec(name="s"), SpecError, "missing required field(s)"),
    ("spec-too-many-positional", lambda c: LatentSpec(*range(30)), SpecError, "at most"),
    ("spec-num-latents-bool", lambda c: LatentSpec(**{**SPEC, "num_latents": True}), SpecError, "num_latents"),
    ("spec-num-latents-zero", lambda c: LatentSpec(**{**SPEC, "num_latents": 0}), SpecError, "num_latents"),
    ("spec-num-latents-negative", lambda c: LatentSpec(**{**SPEC, "num_latents": -2}), SpecError, "num_latents"),
    ("spec-num-latents-float", lambda c: LatentSpec(**{**SPEC, "num_latents": 2.5}), SpecError, "num_latents"),
    ("spec-open-mode", lambda c: LatentSpec(**{**SPEC, "open_mode": "sometimes"}), SpecError, "open_mode"),
    ("spec-from-dict-unknown", lambda c: LatentSpec.from_dict({**SPEC, "colour": 1}), SpecError, "unknown field"),
    ("preset-unknown", lambda c: get_preset("nope"), LatentProbeError, "nope"),
    # ---------------------------------------------------------------- runner construction
    ("runner-spec-int", lambda c: LatentRunner(c.gpt2, c.tok, 5), SpecError, "spec=5"),
    ("runner-spec-none", lambda c: LatentRunner(c.gpt2, c.tok, None), SpecError, "LatentSpec or a preset"),
    ("runner-codi-no-projection", lambda c: LatentRunner(c.gpt2, c.tok, "codi"), SpecError, "projection="),
    # ---------------------------------------------------------------- run: prompts and ids
    ("run-token-id-too-large", lambda c: c.r.run([[1, 2, 10**6]], progress=False), InputError, "outside the model's embedding"),
    ("run-token-id-negative", lambda c: c.r.run([[-1, 2]], progress=False), InputError, "[-1]"),
    ("run-token-ids-float", lambda c: c.r.run([[1.5, 2.0]], progress=False), InputError, "list of token ids"),
    ("run-token-ids-bool", lambda c: c.r.run([[True, 2]], progress=False), InputError, "list of token ids"),
    ("run-prompt-none", lambda c: c.r.run([None], progress=False), InputError, "NoneType"),
    ("run-prompt-empty-ids", lambda c: c.r.run([[]], progress=False), InputError, "the prompt is empty"),
    ("run-single-string", lambda c: c.r.run(COCONUT[0], progress=False), InputError, "wrap it"),
    ("run-no-prompts", lambda c: c.r.run([], progress=False), InputError, "no prompts"),
    ("run-duplicate-ids", lambda c: c.r.run(COCONUT, example_ids=["a", "a"], progress=False), InputError,
     "duplicates ['a']"),
    ("run-ids-count", lambda c: c.r.run(COCONUT, example_ids=["a"], progress=False), InputError, "1 example_ids for 2"),
    ("run-ids-string", lambda c: c.r.run(COCONUT, example_ids="ab", progress=False), InputError, "list of ids"),
    ("run-context-gpt2", lambda c: c.r.run([[5] * 300], progress=False), InputError, "n_positions"),
    ("run-context-with-budget", lambda c: c.r.run([[5] * 250], max_new_tokens=10, progress=False), InputError,
     "holds 256"),
    ("run-images-on-gpt2", lambda c: c.r.run(["a"], [c.images[0]], progress=False), ImageBatchError, "takes no images"),
    ("run-image-count", lambda c: c.appended.run([VL, VL], c.images[:1], progress=False), ImageBatchError,
     "1 image entries for 2"),
    ("run-placeholder-count", lambda c: c.appended.run([VL], [[c.images[0], c.images[1]]], max_new_tokens=8,
                                                       progress=False), ImageBatchError, "1 image placeholder"),
    # ---------------------------------------------------------------- run: settings
    ("run-batch-zero", lambda c: c.r.run(COCONUT, batch_size=0, progress=False), InputError, "batch_size=0"),
    ("run-batch-negative", lambda c: c.r.run(COCONUT, batch_size=-3, progress=False), InputError, "batch_size=-3"),
    ("run-batch-bool", lambda c: c.r.run(COCONUT, batch_size=True, progress=False), InputError, "batch_size=True"),
    ("run-batch-float", lambda c: c.r.run(COCONUT, batch_size=2.0, progress=False), InputError, "batch_size=2.0"),
    ("run-max-new-bool", lambda c: c.r.run(COCONUT, max_new_tokens=True, progress=False), InputError,
     "max_new_tokens=True"),
    ("run-max-new-zero", lambda c: c.r.run(COCONUT, max_new_tokens=0, progress=False), InputError, "max_new_tokens=0"),
    ("run-max-new-negative", lambda c: c.r.run(COCONUT, max_new_tokens=-5, progress=False), InputError,
     "max_new_tokens=-5"),
    ("run-budget-appended", lambda c: c.appended.run([VL], [c.images[0]], max_new_tokens=3, progress=False), InputError,
     "cannot hold spec"),
    ("run-seed-bool", lambda c: c.r.run(COCONUT, seed=True, progress=False), InputError, "seed=True"),
    ("run-seed-float", lambda c: c.r.run(COCONUT, seed=1.5, progress=False), InputError, "seed=1.5"),
    ("run-top-k-zero", lambda c: c.r.run(COCONUT, do_sample=True, top_k=0, progress=False), InputError, "top_k=0"),
    ("run-top-k-bool", lambda c: c.r.run(COCONUT, do_sample=True, top_k=True, progress=False), InputError, "top_k"),
    ("run-top-p-zero", lambda c: c.r.run(COCONUT, do_sample=True, top_p=0.0, progress=False), InputError, "top_p"),
    ("run-top-p-large", lambda c: c.r.run(COCONUT, do_sample=True, top_p=1.5, progress=False), InputError, "top_p"),
    ("run-temperature-nan", lambda c: c.r.run(COCONUT, temperature=float("nan"), progress=False), InputError,
     "temperature"),
    ("run-temperature-inf", lambda c: c.r.run(COCONUT, do_sample=True, temperature=float("inf"), progress=False),
     InputError, "temperature"),
    ("run-temperature-zero-sampled", lambda c: c.r.run(COCONUT, do_sample=True, temperature=0.0, progress=False),
     InputError, "temperature"),
    ("run-repetition-zero", lambda c: c.r.run(COCONUT, repetition_penalty=0.0, progress=False), InputError,
     "repetition_penalty"),
    ("run-do-sample-str", lambda c: c.r.run(COCONUT, do_sample="yes", progress=False), InputError, "do_sample"),
    ("run-generation-bogus", lambda c: c.r.run(COCONUT, generation="fast", progress=False), InputError, "generation="),
    ("run-capture-layers-str", lambda c: c.r.run(COCONUT, capture_layers="some", progress=False), InputError,
     "capture_layers"),
    ("run-capture-layers-range", lambda c: c.r.run(COCONUT, capture_layers=[99], progress=False), InputError,
     "capture_layers"),
    ("run-capture-positions", lambda c: c.r.run(COCONUT, capture_positions="all", progress=False), InputError,
     "capture_positions"),
    # ---------------------------------------------------------------- intervene
    ("intervene-hidden-128-to-64", lambda c: c.r.intervene(c.trace128, iv.Zero()), InputError, "hidden size is 64"),
    ("intervene-not-a-trace", lambda c: c.r.intervene([1, 2], iv.Zero()), InputError, "LatentTrace"),
    ("intervene-batch-zero", lambda c: c.r.intervene(c.trace, iv.Zero(), batch_size=0), InputError, "batch_size=0"),
    ("intervene-batch-bool", lambda c: c.r.intervene(c.trace, iv.Zero(), batch_size=False), InputError,
     "batch_size=False"),
    ("intervene-mode", lambda c: c.r.intervene(c.trace, iv.Zero(), mode="rewind"), InterventionError, "mode='rewind'"),
    ("intervene-layer-range", lambda c: c.r.intervene(c.trace, iv.Zero(), layers=(99,)), StepOutOfRangeError, "99"),
    ("intervene-layers-empty", lambda c: c.r.intervene(c.trace, iv.Zero(), layers=()), StepOutOfRangeError,
     "out of range"),
    ("intervene-step-range", lambda c: c.r.intervene(c.trace, iv.Zero(), steps=[99]), StepOutOfRangeError,
     "steps [99]"),
    ("intervene-steps-bool", lambda c: c.r.intervene(c.trace, iv.Zero(), steps=[True]), InputError, "steps=[True]"),
    ("intervene-layers-float", lambda c: c.r.intervene(c.trace, iv.Zero(), layers=(0.5,)), InputError, "layers=(0.5,)"),
    ("intervene-drop-in-replay", lambda c: c.r.intervene(c.trace, None, drop_latents=True), InterventionError,
     "drop_latents"),
    ("intervene-max-new-zero", lambda c: c.r.intervene(c.trace, None, mode="redecode", max_new_tokens=0), InputError,
     "max_new_tokens=0"),
    ("intervene-not-intervention", lambda c: c.r.intervene(c.trace, 5), InterventionError, "not an intervention"),
    ("intervene-replace-hidden", lambda c: c.r.intervene(c.trace, iv.Replace(torch.ones(32))), InterventionShapeError,
     "hidden size is 64"),
    ("intervene-replace-n", lambda c: c.r.intervene(c.trace, iv.Replace(torch.ones(5, 6, 64))), InterventionShapeError,
     "trace has 2 examples"),
    ("intervene-mean-ablate-hidden", lambda c: c.r.intervene(c.trace, iv.MeanAblate(torch.ones(32))),
     InterventionShapeError, "MeanAblate.mean"),
    ("intervene-swap-mapping-range", lambda c: c.r.intervene(c.trace, iv.Swap(c.trace, mapping=(0, 7))),
     StepOutOfRangeError, "[7]"),
    ("intervene-swap-mapping-len", lambda c: c.r.intervene(c.trace, iv.Swap(c.trace, mapping=(0,))),
     InterventionShapeError, "1 entries for 2"),
    ("intervene-lambda-nan", lambda c: c.r.intervene(c.trace, _nan_lambda), NonFiniteInterventionError,
     "example 'p', latent step 0"),
    ("intervene-lambda-nan-redecode", lambda c: c.r.intervene(c.trace, _nan_lambda, mode="redecode"),
     NonFiniteInterventionError, "mode 'redecode'"),
    ("intervene-lambda-nan-layer", lambda c: c.r.intervene(c.trace, _nan_lambda, layers=(1,)),
     NonFiniteInterventionError, "layer 1"),
    ("intervene-lambda-shape", lambda c: c.r.intervene(c.trace, lambda z, s, e: z[:3]), InterventionShapeError,
     "same shape"),
    ("intervene-lambda-not-tensor", lambda c: c.r.intervene(c.trace, lambda z, s, e: 1.0), InterventionShapeError,
     "float"),
    ("intervene-no-latents-apply", lambda c: c.r.intervene(c.trace, iv.NoLatents()), InterventionError,
     "drop_latents=True"),
    ("apply-nan-names-step", lambda c: apply_intervention(iv.Lambda(_nan_lambda), torch.ones(64), step=3,
                                                          example=_ex(c.trace), layer=0, mode=InterventionMode.REPLAY),
     NonFiniteInterventionError, "latent step 3"),
    ("apply-inf-output", lambda c: apply_intervention(iv.Lambda(lambda z, s, e: z / 0), torch.ones(64), step=0,
                                                      example=_ex(c.trace), layer=0, mode="replay"),
     NonFiniteInterventionError, "non-finite"),
    # ---------------------------------------------------------------- interventions (construction)
    ("replace-nan", lambda c: iv.Replace(_NAN), InterventionError, "non-finite"),
    ("replace-inf", lambda c: iv.Replace(torch.full((64,), float("inf"))), InterventionError, "non-finite"),
    ("replace-list", lambda c: iv.Replace([1.0, 2.0]), InterventionShapeError, "torch.Tensor"),
    ("replace-int-tensor", lambda c: iv.Replace(torch.ones(64, dtype=torch.long)), InterventionError, "floating-point"),
    ("replace-empty", lambda c: iv.Replace(torch.ones(0)), InterventionShapeError, "non-empty"),
    ("replace-4d", lambda c: iv.Replace(torch.ones(1, 1, 1, 64)), InterventionShapeError, "[n, K, d]"),
    ("scale-nan", lambda c: iv.Scale(float("nan")), InterventionError, "Scale.factor=nan"),
    ("scale-inf", lambda c: iv.Scale(float("inf")), InterventionError, "Scale.factor=inf"),
    ("scale-minus-inf", lambda c: iv.Scale(float("-inf")), InterventionError, "Scale.factor=-inf"),
    ("scale-bool", lambda c: iv.Scale(True), InterventionError, "Scale.factor=True"),
    ("scale-str", lambda c: iv.Scale("2"), InterventionError, "Scale.factor='2'"),
    ("add-noise-nan", lambda c: iv.AddNoise(scale=float("nan")), InterventionError, "AddNoise.scale"),
    ("add-noise-negative", lambda c: iv.AddNoise(scale=-1.0), InterventionError, ">= 0"),
    ("add-noise-seed-float", lambda c: iv.AddNoise(seed=1.5), InterventionError, "AddNoise.seed"),
    ("replace-noise-seed-str", lambda c: iv.ReplaceNoise(seed="a"), InterventionError, "ReplaceNoise.seed"),
    ("gaussian-std-nan", lambda c: iv.GaussianReplace(std=float("nan")), InterventionError, "GaussianReplace.std"),
    ("gaussian-std-negative", lambda c: iv.GaussianReplace(std=-2.0), InterventionError, "GaussianReplace.std"),
    ("mean-ablate-nan", lambda c: iv.MeanAblate(_NAN), InterventionError, "MeanAblate.mean"),
    ("mean-ablate-list", lambda c: iv.MeanAblate([0.0]), InterventionShapeError, "torch.Tensor"),
    ("swap-empty-source", lambda c: iv.Swap([]), InterventionError, "non-empty LatentTrace"),
    ("swap-mapping-str", lambda c: iv.Swap(c.trace, mapping=("a",)), InterventionError, "Swap.mapping"),
    ("swap-mapping-bool", lambda c: iv.Swap(c.trace, mapping=(True, 0)), InterventionError, "Swap.mapping"),
    ("displacement-seed", lambda c: iv.MatchedDisplacement(c.trace, seed=0.5), InterventionError, "seed"),
    ("lambda-not-callable", lambda c: iv.Lambda(5), InterventionError, "not callable"),
    ("as-intervention-int", lambda c: iv.as_intervention(5), InterventionError, "not an intervention"),
    ("from-config-unknown", lambda c: iv.intervention_from_config({"type": "Nope"}), InterventionError, "'Nope'"),
    ("from-config-lambda", lambda c: iv.intervention_from_config({"type": "Lambda", "fn": "f"}), InterventionError,
     "Python callable"),
    ("register-non-class", lambda c: iv.register_intervention(int), InterventionError, "Intervention subclass"),
    # ---------------------------------------------------------------- perturbations
    ("occlude-inverted", lambda c: Occlude(box=(10, 10, 2, 2)), InputError, "top < bottom"),
    ("occlude-negative", lambda c: Occlude(box=(-1, 0, 4, 4)), InputError, "0 <= top"),
    ("occlude-three", lambda c: Occlude(box=(0, 0, 4)), InputError, "4 ints"),
    ("occlude-fill-300", lambda c: Occlude(fill=300), InputError, "0..255"),
    ("occlude-fill-word", lambda c: Occlude(fill="red"), InputError, "'noise'"),
    ("occlude-outside-image", lambda c: Occlude(box=(0, 0, 500, 500)).apply(c.vl_inputs), ImageBatchError,
     "does not lie inside"),
    ("occlude-named-box", lambda c: Occlude(box="target").apply(c.vl_inputs), InputError, "OccludeTarget"),
    ("blank-fill-negative", lambda c: BlankImage(fill=-1), InputError, "BlankImage.fill"),
    ("blank-fill-pair", lambda c: BlankImage(fill=(1, 2)), InputError, "(R, G, B)"),
    ("blank-no-images", lambda c: BlankImage().apply(c.inputs), InputError, "has none"),
    ("noise-sigma-nan", lambda c: NoiseImage(sigma=float("nan")), InputError, "NoiseImage.sigma"),
    ("noise-sigma-negative", lambda c: NoiseImage(sigma=-1.0), InputError, "NoiseImage.sigma"),
    ("noise-additive-str", lambda c: NoiseImage(additive="yes"), InputError, "NoiseImage.additive"),
    ("image-swap-mapping-str", lambda c: ImageSwap(mapping=("a",)), InputError, "ImageSwap.mapping"),
    ("image-swap-seed-float", lambda c: ImageSwap(seed=1.5), InputError, "ImageSwap.seed"),
    ("image-swap-mapping-range", lambda c: ImageSwap(mapping=(0, 9)).apply(c.vl_inputs), InputError, "outside 0..1"),
    ("question-swap-name", lambda c: QuestionSwap(name=""), InputError, "QuestionSwap.name"),
    ("question-swap-mapping-len", lambda c: QuestionSwap(mapping=(0,)).apply(c.inputs), InputError, "1 entries for 2"),
    ("instance-swap-mapping-int", lambda c: InstanceSwap(mapping=5), InputError, "InstanceSwap.mapping"),
    ("custom-not-callable", lambda c: Custom(fn=3), InputError, "not callable"),
    # ---------------------------------------------------------------- causal analyses
    ("zy-n-boot-zero", lambda c: z_to_y(c.r, c.trace, n_boot=0), InputError, "n_boot=0"),
    ("zy-n-boot-bool", lambda c: z_to_y(c.r, c.trace, n_boot=True), InputError, "n_boot=True"),
    ("zy-chunk-zero", lambda c: z_to_y(c.r, c.trace, chunk_size=0), InputError, "chunk_size=0"),
    ("zy-batch-negative", lambda c: z_to_y(c.r, c.trace, batch_size=-1), InputError, "batch_size=-1"),
    ("zy-seed-float", lambda c: z_to_y(c.r, c.trace, seed=0.5), InputError, "seed=0.5"),
    ("zy-max-new-zero", lambda c: z_to_y(c.r, c.trace, max_new_tokens=0), InputError, "max_new_tokens=0"),
    ("zy-gold-unknown-ids", lambda c: z_to_y(c.r, c.trace, gold={"p": "a", "zz": "b"}), InputError, "['zz']"),
    ("zy-gold-count", lambda c: z_to_y(c.r, c.trace, gold=["a"]), InputError, "1 gold answers for 2"),
    ("zy-gold-missing-ids", lambda c: z_to_y(c.r, c.trace, gold={"p": "a"}), InputError, "1 missing (['q'])"),
    ("zy-gold-inputset-other-ids",
     lambda c: z_to_y(c.r, c.trace, gold=InputSet(("x", "q"), ("a", "b"), gold=("1", "2"))), InputError, "1 unknown to the data (['x']); 1 missing (['p'])"),
    ("zy-modes", lambda c: z_to_y(c.r, c.trace, modes=("rewind",)), InputError, "not understood"),
    ("zy-scorer", lambda c: z_to_y(c.r, c.trace, scorer="fuzzy"), InputError, "scorer='fuzzy'"),
    ("zy-not-a-trace", lambda c: z_to_y(c.r, [1, 2]), InputError, "LatentTrace"),
    ("zy-all-answers-empty", lambda c: z_to_y(c.r, c.empty), EmptyAnswersError, "every one of the 2 answers"),
    ("zy-scale-nan", lambda c: z_to_y(c.r, c.trace, {"bad": iv.Scale(float("nan"))}), InterventionError,
     "Scale.factor"),
    ("summary-zy-confidence", lambda c: summarize_z_to_y(_zy_rows(), ci=1.5), InputError, "ci=1.5"),
    ("summary-zy-confidence-nan", lambda c: summarize_z_to_y(_zy_rows(), ci=float("nan")), InputError,
     "ci=nan"),
    ("summary-zy-n-boot", lambda c: summarize_z_to_y(_zy_rows(), n_boot=0), InputError, "n_boot=0"),
    ("summary-med-confidence", lambda c: summarize_mediation(_zy_rows(), ci=0.0), InputError, "ci=0.0"),
    ("summary-med-outcome", lambda c: summarize_mediation(_zy_rows(), outcome="speed"), InputError, "outcome='speed'"),
    ("summary-xz-n-boot", lambda c: summarize_x_to_z(_zy_rows(), n_boot=-1), InputError, "n_boot=-1"),
    ("xz-n-boot-zero", lambda c: x_to_z(c.r, c.inputs, QuestionSwap(), n_boot=0), InputError, "n_boot=0"),
    ("xz-max-new-bool", lambda c: x_to_z(c.r, c.inputs, QuestionSwap(), max_new_tokens=True), InputError,
     "max_new_tokens=True"),
    ("xz-no-perturbations", lambda c: x_to_z(c.r, c.inputs, []), InputError, "no perturbations"),
    ("xz-layers-range", lambda c: x_to_z(c.r, c.inputs, QuestionSwap(), layers=[99]), InputError, "[99]"),
    ("decompose-n-boot-zero", lambda c: decompose(c.r, c.inputs, QuestionSwap(), n_boot=0), InputError, "n_boot=0"),
    ("decompose-batch-zero", lambda c: decompose(c.r, c.inputs, QuestionSwap(), batch_size=0), InputError,
     "batch_size=0"),
    ("decompose-gold-unknown", lambda c: decompose(c.r, c.inputs, QuestionSwap(), gold={"nope": "a"}), InputError,
     "['nope']"),
    ("decompose-treatment", lambda c: decompose(c.r, c.inputs, "swap"), InputError, "Perturbation"),
    ("decompose-budget-too-small", lambda c: decompose(c.appended, c.vl_inputs, BlankImage(), max_new_tokens=3),
     InputError, "cannot hold spec"),
    ("decompose-outcome", lambda c: decompose(c.r, c.inputs, QuestionSwap(), outcome="speed"), InputError, "outcome"),
    # ---------------------------------------------------------------- probes
    ("probe-nan", lambda c: cross_validate_probe(_XNAN, _Y, groups=_G), ProbeError, "NaN or infinite"),
    ("probe-inf", lambda c: cross_validate_probe(_XINF, _Y, groups=_G), ProbeError, "NaN or infinite"),
    ("probe-one-class", lambda c: cross_validate_probe(_X, np.zeros(10, int), groups=_G), ProbeError, "single class"),
    ("probe-one-group", lambda c: cross_validate_probe(_X, _Y, groups=np.zeros(10, int)), ProbeError, "1 distinct"),
    ("probe-y-length", lambda c: cross_validate_probe(_X, _Y[:5], groups=_G), ProbeError, "5 entries"),
    ("probe-task", lambda c: cross_validate_probe(_X, _Y, groups=_G, task="ranking"), ProbeError, "task must be"),
    ("probe-n-splits", lambda c: cross_validate_probe(_X, _Y, groups=_G, n_splits=1), ProbeError, "n_splits"),
    ("probe-regression-inf", lambda c: cross_validate_probe(_X, np.r_[np.inf, np.zeros(9)], groups=_G,
                                                            task="regression"), ProbeError, "regression targets"),
    ("linear-probe-nan", lambda c: LinearProbe().fit(_XNAN, _Y), ProbeError, "NaN or infinite"),
    # ---------------------------------------------------------------- geometry
    ("cosine-nan", lambda c: geo.cosine_matrix(_XNAN), NonFiniteError, "NaN or infinite"),
    ("cosine-inf", lambda c: geo.cosine_matrix(_XINF), NonFiniteError, "NaN or infinite"),
    ("cosine-huge", lambda c: geo.cosine_matrix(_X * 1e300), NonFiniteError, "overflow"),
    ("cosine-1d", lambda c: geo.cosine_matrix(np.ones(5)), ShapeError, "2-D"),
    ("cosine-strings", lambda c: geo.cosine_matrix(np.array([["a"]])), DTypeError, "dtype"),
    ("cosine-chunk-zero", lambda c: geo.cosine_matrix(_X, chunk_size=0), SimilarityError, "chunk_size"),
    ("cka-nan", lambda c: geo.linear_cka(_XNAN, _X), NonFiniteError, "NaN"),
    ("cka-one-row", lambda c: geo.linear_cka(_X[:1], _X[:1]), TooFewSamplesError, "at least 4"),
    ("cka-rows-mismatch", lambda c: geo.linear_cka(_X, _X[:5]), ShapeError, "10 rows but y has 5"),
    ("effective-rank-nan", lambda c: geo.effective_rank(_XNAN), NonFiniteError, "NaN"),
    ("participation-inf", lambda c: geo.participation_ratio(_XINF), NonFiniteError, "NaN"),
    ("within-nan", lambda c: geo.within_instance(_LNAN), NonFiniteError, "NaN"),
    ("within-2d", lambda c: geo.within_instance(_X), ShapeError, "3-D"),
    ("across-nan", lambda c: geo.across_instances(_LNAN), NonFiniteError, "NaN"),
    ("across-one-instance", lambda c: geo.across_instances(_L[:1]), TooFewSamplesError, "at least 2 instances"),
    ("across-n-boot", lambda c: geo.across_instances(_L, n_boot=-1), SimilarityError, "n_boot"),
    ("across-ci", lambda c: geo.across_instances(_L, ci=2.0), SimilarityError, "ci=2.0"),
    ("random-matched-nan", lambda c: geo.random_matched_norm(_XNAN), NonFiniteError, "NaN"),
    # ---------------------------------------------------------------- statistics
    ("bootstrap-n-boot", lambda c: bootstrap_ci(np.ones(5), n_boot=0), StatsInputError, "n_boot"),
    ("bootstrap-nan", lambda c: bootstrap_ci(np.r_[np.nan, 1.0]), StatsInputError, "NaN"),
    ("bootstrap-confidence", lambda c: bootstrap_ci(np.ones(5), confidence=1.0), StatsInputError, "confidence"),
    # ---------------------------------------------------------------- data loaders
    ("jsonl-dotdot", lambda c: load_jsonl(c.jsonl("up.jsonl", [{"question": "q", "image": "../secret.png"}]),
                                          image_root=c.dir / "imgs"), DataError, "outside image_root"),
    ("jsonl-dotdot-names-row-field", lambda c: load_jsonl(c.jsonl("up2.jsonl", [
        {"question": "q", "image": "ok.png"}, {"question": "q", "image": "../secret.png"}]), image_root=c.dir / "imgs"),
     DataError, "row 1 (line 2), field 'image'"),
    ("jsonl-absolute", lambda c: load_jsonl(c.jsonl("abs.jsonl", [{"question": "q", "image": str(c.dir / "secret.png")}]),
                                            image_root=c.dir / "imgs"), DataError, "outside image_root"),
    ("jsonl-truncated-image", lambda c: load_jsonl(c.jsonl("cut.jsonl", [{"question": "q", "image": "cut.png"}]),
                                                   image_root=c.dir / "imgs"), DataError, "cut.png"),
    ("jsonl-missing-image", lambda c: load_jsonl(c.jsonl("gone.jsonl", [{"question": "q", "image": "gone.png"}]),
                                                 image_root=c.dir / "imgs"), DataError, "does not exist"),
    ("jsonl-bad-json", lambda c: load_jsonl(c.jsonl("bad.jsonl", ['{"question": ']), image_key=None), DataError,
     "bad.jsonl, line 1: not valid JSON"),
    ("jsonl-not-object", lambda c: load_jsonl(c.jsonl("list.jsonl", ["[1, 2]"]), image_key=None), DataError,
     "JSON object"),
    ("jsonl-no-question", lambda c: load_jsonl(c.jsonl("noq.jsonl", [{"text": "q"}]), image_key=None), DataError,
     "no 'question' field"),
    ("jsonl-limit-zero", lambda c: load_jsonl(c.jsonl("lim.jsonl", [{"question": "q"}]), image_key=None, limit=0),
     DataError, "limit=0"),
    ("jsonl-missing-file", lambda c: load_jsonl(c.dir / "nothing.jsonl"), DataError, "does not exist"),
    ("image-truncated", lambda c: load_image(c.dir / "imgs" / "cut.png"), DataError, "cut.png"),
    ("image-size-zero", lambda c: load_image(c.dir / "imgs" / "ok.png", size=0), DataError, "size=0"),
    # ---------------------------------------------------------------- traces
    ("trace-clashing-indices", lambda c: LatentTrace((_ex(c.trace), _ex(c.trace).replace(example_id="other")),
                                                     c.trace.spec, c.trace.config), TraceFormatError, "ind"),
    ("trace-clashing-ids", lambda c: LatentTrace((_ex(c.trace), c.trace.examples[1].replace(example_id="p")),
                                                 c.trace.spec, c.trace.config), TraceFormatError, "example_id p appear"),
    ("trace-truncated-tensor-file", lambda c: LatentTrace.load(_damaged(c, "cut", _truncate)), TraceFormatError,
     "trace.safetensors"),
    ("trace-edited-json", lambda c: LatentTrace.load(_damaged(c, "edit", _edit_json)), TraceFormatError, "trace.json"),
    ("trace-swapped-tensor-file", lambda c: LatentTrace.load(_damaged(c, "swap", _swap_tensors)), TraceFormatError,
     "tensor_sha256"),
    ("trace-missing-json", lambda c: LatentTrace.load(_damaged(c, "nojson", _drop_json)), TraceFormatError,
     "trace.json"),
    ("trace-load-missing", lambda c: LatentTrace.load(c.dir / "no-trace"), TraceFormatError, "no-trace"),
]


def _damaged(c, name, damage):
    """A copy of the module's trace saved under ``name`` and damaged by ``damage(folder, ctx)``."""
    path = c.dir / f"trace-{name}"
    if not path.exists():
        c.trace.save(path)
        damage(path, c)
    return path


def _truncate(path, c):
    f = path / "trace.safetensors"
    f.write_bytes(f.read_bytes()[:100])


def _edit_json(path, c):
    f = path / "trace.json"
    meta = json.loads(f.read_text())
    meta["examples"][0]["example_id"] = "edited"
    f.write_text(json.dumps(meta))


def _swap_tensors(path, c):
    other = c.dir / "trace-other"
    if not other.exists():
        c.trace128.save(other)
    (path / "trace.safetensors").write_bytes((other / "trace.safetensors").read_bytes())


def _drop_json(path, c):
    (path / "trace.json").unlink()


def _zy_rows():
    import pandas as pd

    return pd.DataFrame({"example_id": ["a", "b"], "intervention": ["x", "x"], "mode": ["replay", "replay"],
                         "condition": ["clean", "clean"], "correct": [1.0, 0.0]})


def test_the_table_is_large_and_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) >= 100 and len(set(ids)) == len(ids)
    assert all(issubclass(c[2], LatentProbeError) for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_malformed_input(ctx, case):
    _, call, expected, fragment = case
    with pytest.raises(expected) as info:
        call(ctx)
    assert isinstance(info.value, LatentProbeError)
    assert fragment in str(info.value), f"{fragment!r} not in {str(info.value)!r}"


def test_a_nan_intervention_never_reports_a_flip_rate(ctx):
    """Scale(nan) / Replace(nan) used to give empty answers and a flip rate of 1.0; now refused up front."""
    with pytest.raises(InterventionError):
        z_to_y(ctx.r, ctx.trace, {"nan": iv.Lambda(_nan_lambda)}, modes=("replay",), n_boot=10)
