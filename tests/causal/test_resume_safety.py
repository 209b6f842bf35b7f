"""Resuming an analysis's folder with anything that changes its results is refused, with what changed:
another model (the trained toys ``free`` then ``mediated``), another ``Lambda`` body or closed-over
value, another mask rule, another spec field, another custom perturbation or logits processor."""

from __future__ import annotations

import pandas as pd
import pytest

from latentprobe.causal import decompose, x_to_z, z_to_y
from latentprobe.engine import ForceOpen, LatentRunner
from latentprobe.fingerprint import mask_rule_of, runner_fingerprint
from latentprobe.interventions import Lambda
from latentprobe.perturbations import Custom
from latentprobe.sweep import SweepConfigMismatch
from latentprobe.toy.model import blind_rule, mediated_rule, toy_spec

from .helpers import MAX_NEW, NB, Boom, force_open, Mirror, _load_trained, runner


def _kw(tok, **extra):
    return dict(n_boot=NB, chunk_size=2, max_new_tokens=MAX_NEW, logits_processor=force_open(tok), progress=False,
                **extra)


def _fails_at_once(prompt, image, meta):
    raise Boom("stop before the first unit")


def _mirror_rows(prompt, image, meta):
    return prompt, image[:, ::-1].copy()


def _mirror_cols(prompt, image, meta):
    return prompt, image[::-1].copy()


def test_decompose_refuses_to_resume_free_with_mediated(inputs, tmp_path):
    free, mediated = _load_trained("free"), _load_trained("mediated")
    kw = _kw(free.tokenizer, outcome="gold_logprob")
    with pytest.raises(Boom):  # killed part way on `free`: one unit stored
        decompose(free.runner(), inputs, Custom(Mirror(limit=3), name="mirror"), out_dir=tmp_path, **kw)
    with pytest.raises(SweepConfigMismatch) as info:
        decompose(mediated.runner(), inputs, Custom(Mirror(), name="mirror"), out_dir=tmp_path, **kw)
    msg = str(info.value)
    assert "'runner.weights': stored 'sha256:" in msg and "'runner.mask_rule': stored None, now {" in msg
    assert "mediated_rule" in msg and "out_dir" in msg and "delete the folder" in msg
    # finished on `free`, then asked again with `mediated`: refused, not the stored rows of `free`
    done = decompose(free.runner(), inputs, Custom(Mirror(), name="mirror"), out_dir=tmp_path, **kw)
    assert len(done.rows) > 0
    with pytest.raises(SweepConfigMismatch, match="runner.weights"):
        decompose(mediated.runner(), inputs, Custom(Mirror(), name="mirror"), out_dir=tmp_path, **kw)
    # the same checkpoint loaded again (a new process, a new module object) resumes
    reloaded = _load_trained("free").runner()
    assert runner_fingerprint(reloaded) == runner_fingerprint(free.runner())
    again = decompose(reloaded, inputs, Custom(Mirror(), name="mirror"), out_dir=tmp_path, **kw)
    pd.testing.assert_frame_equal(again.rows, done.rows)


def test_z_to_y_refuses_another_lambda_body_or_closed_over_value(model, tok, inputs, tmp_path):
    r = runner(model, tok, "free")
    trace = r.run(**inputs.run_kwargs(), max_new_tokens=MAX_NEW, logits_processor=force_open(tok), progress=False)
    kw = dict(modes=("replay",), gold=inputs.gold, n_boot=NB, chunk_size=4, logits_processor=force_open(tok),
              progress=False)
    z_to_y(r, trace, {"scale": Lambda(lambda z, step, example: z * 2)}, out_dir=tmp_path / "a", **kw)
    with pytest.raises(SweepConfigMismatch, match=r"'interventions\.scale\.code\.source': stored 'sha256:"):
        z_to_y(r, trace, {"scale": Lambda(lambda z, step, example: z * -50)}, out_dir=tmp_path / "a", **kw)

    def times(k):
        return lambda z, step, example: z * k

    with pytest.raises(Boom):
        z_to_y(r, trace, {"scale": Lambda(times(2)), "stop": Lambda(lambda z, s, e: (_ for _ in ()).throw(Boom()))},
               out_dir=tmp_path / "b", **kw)
    with pytest.raises(SweepConfigMismatch) as info:
        z_to_y(r, trace, {"scale": Lambda(times(-50)), "stop": Lambda(lambda z, s, e: (_ for _ in ()).throw(Boom()))},
               out_dir=tmp_path / "b", **kw)
    assert "'interventions.scale.code.values.closure.k': stored 2, now -50" in str(info.value)
    assert "interventions.stop" not in str(info.value)  # only what changed is listed


def test_another_mask_rule_or_spec_field_is_refused(model, tok, inputs, tmp_path):
    kw = _kw(tok, outcome="gold_logprob")
    spec = toy_spec("mediated")
    r = LatentRunner(model, tok, spec, mask_rule=mediated_rule)
    assert mask_rule_of(r) is mediated_rule and runner_fingerprint(r)["spec"] == spec.to_dict()
    with pytest.raises(Boom):
        decompose(r, inputs, Custom(_fails_at_once, name="mirror"), out_dir=tmp_path, **kw)
    other_rule = LatentRunner(model, tok, spec, mask_rule=blind_rule)
    with pytest.raises(SweepConfigMismatch) as info:
        decompose(other_rule, inputs, Custom(_fails_at_once, name="mirror"), out_dir=tmp_path, **kw)
    msg = str(info.value)
    assert "'runner.mask_rule.name'" in msg and "blind_rule" in msg and "'runner.mask_rule.source'" in msg
    assert "'runner.weights'" not in msg and "'runner.spec" not in msg
    other_spec = LatentRunner(model, tok, spec.replace(num_latents=3), mask_rule=mediated_rule)
    with pytest.raises(SweepConfigMismatch, match=r"'runner\.spec\.num_latents': stored 4, now 3") as info:
        decompose(other_spec, inputs, Custom(_fails_at_once, name="mirror"), out_dir=tmp_path, **kw)
    assert "'runner.mask_rule" not in str(info.value)


def test_x_to_z_refuses_another_custom_perturbation_body_or_logits_processor(model, tok, inputs, tmp_path):
    r = runner(model, tok, "free")
    kw = _kw(tok, layers=[0])
    x_to_z(r, inputs, [Custom(_mirror_rows, name="mirror")], out_dir=tmp_path, **kw)
    with pytest.raises(SweepConfigMismatch, match=r"'perturbations\.mirror\.fn_code\.name'") as info:
        x_to_z(r, inputs, [Custom(_mirror_cols, name="mirror")], out_dir=tmp_path, **kw)
    assert "'perturbations.mirror.fn_code.source'" in str(info.value)

    class Greedy(ForceOpen):  # the public processor, subclassed: another callable
        def __call__(self, ids, logits, index):
            return super().__call__(ids, logits, index) * 1.0

    with pytest.raises(SweepConfigMismatch, match=r"'logits_processor\.name'"):
        x_to_z(r, inputs, [Custom(_mirror_rows, name="mirror")], out_dir=tmp_path,
               **{**kw, "logits_processor": Greedy(force_open(tok).open_id, tok.eos_token_id)})
    # the same configuration resumes
    res = x_to_z(r, inputs, [Custom(_mirror_rows, name="mirror")], out_dir=tmp_path, **kw)
    assert res.config["runner"]["weights"].startswith("sha256:")
