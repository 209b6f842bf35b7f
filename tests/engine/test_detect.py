"""Family detection and the wrong-load cases of ``latentprobe.load``, on checkpoints in the published layouts:
the Qwen2.5-VL replicas (Monet, LVR, Mirage; real tokenizer), Coconut's state dict under ``base_causallm.`` and a
Coconut ``save_pretrained`` folder, CODI's official ``codi.*`` / ``prj.*`` layout."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).parent))

import latentprobe  # noqa: E402
from checkpoints import save_coconut_checkpoint, save_codi_checkpoint, save_gpt2_base, save_vl_checkpoint  # noqa: E402
from latentprobe.engine.detect import (FamilyDetectionError, FamilyMismatchError, HeadMismatchError,  # noqa: E402
                                       UnmappedWeightsError, detect_family)
from latentprobe.errors import SpecError  # noqa: E402
from latentprobe.seeding import torch_generator  # noqa: E402

import peft  # noqa: E402,F401  (CODI's layout needs it: a missing peft must fail)


@pytest.fixture(scope="module")
def text_checkpoints(tmp_path_factory):
    """A GPT-2 base, Coconut's state dict, a Coconut save_pretrained folder and CODI's official folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = tmp_path_factory.mktemp("text_families")
    base = save_gpt2_base(root / "base")
    save_coconut_checkpoint(root / "coconut.pt", base)
    tok = AutoTokenizer.from_pretrained(base)
    for t in ("<|start-latent|>", "<|end-latent|>", "<|latent|>"):  # run.py:106-108
        tok.add_tokens(t)
    model = AutoModelForCausalLM.from_pretrained(base)
    model.resize_token_embeddings(len(tok))
    model.save_pretrained(root / "coconut_hf")
    tok.save_pretrained(root / "coconut_hf")
    save_codi_checkpoint(root / "codi", base, r=8)
    return {"base": base, "coconut": root / "coconut.pt", "coconut_hf": root / "coconut_hf", "codi": root / "codi"}


def _copy(src: Path, dst: Path, extra: dict[str, torch.Tensor] | None = None, drop: str | None = None,
          config: dict | None = None) -> Path:
    """A copy of a replica folder with weights added or removed and config entries set."""
    shutil.copytree(src, dst)
    sd = load_file(str(dst / "model.safetensors"))
    sd.update(extra or {})
    if drop is not None:
        del sd[drop]
    save_file(sd, str(dst / "model.safetensors"), metadata={"format": "pt"})
    if config:
        cfg = json.loads((dst / "config.json").read_text())
        (dst / "config.json").write_text(json.dumps({**cfg, **config}))
    return dst


def test_every_family_is_detected_and_loaded_without_a_preset(replica_dir, text_checkpoints):
    for family in ("monet", "lvr", "mirage"):
        detection = detect_family(replica_dir(family))
        assert (detection.family, detection.candidates) == (family, (family,))
        runner = latentprobe.load(replica_dir(family))
        assert runner.spec == latentprobe.get_preset(family)
    for name, family in (("coconut", "coconut"), ("coconut_hf", "coconut"), ("codi", "codi")):
        assert detect_family(text_checkpoints[name]).family == family
    base = text_checkpoints["base"]
    assert latentprobe.load(text_checkpoints["coconut"], base=base).spec.name == "coconut"
    assert latentprobe.load(text_checkpoints["coconut_hf"]).spec.name == "coconut"
    codi = latentprobe.load(text_checkpoints["codi"], base=base, lora_r=8)
    assert codi.spec.name == "codi" and codi.projection is not None


def test_a_checkpoint_no_family_or_several_families_fit_is_refused_with_the_candidates(replica_dir, tmp_path,
                                                                                        text_checkpoints):
    with pytest.raises(FamilyDetectionError, match=r"no published family.*monet: a vision-language config with "
                                                   r"<abs_vis_token>"):
        latentprobe.load(replica_dir("qwen2_5_vl"))
    assert detect_family(text_checkpoints["base"]).candidates == ()
    several = save_vl_checkpoint(tmp_path / "all_tokens")  # a tokenizer holding every family's markers
    with pytest.raises(FamilyDetectionError, match=r"several families.*Candidates: monet, lvr, mirage"):
        latentprobe.load(several)
    assert latentprobe.load(several, "mirage").spec.name == "mirage"  # a preset among the candidates is taken


def test_a_preset_of_another_family_is_refused(replica_dir, text_checkpoints):
    with pytest.raises(FamilyMismatchError, match=r"preset 'toy' does not fit .* mirage checkpoint.*toy presets"):
        latentprobe.load(replica_dir("mirage"), "toy")
    with pytest.raises(FamilyMismatchError, match=r"preset 'coconut' .* codi checkpoint"):
        latentprobe.load(text_checkpoints["codi"], "coconut", base=text_checkpoints["base"])
    with pytest.raises(SpecError, match=r"pass base="):
        latentprobe.load(text_checkpoints["coconut"])


def test_lvr_head_is_never_dropped(replica_dir, tmp_path):
    d = 64  # the replica's hidden size
    g = torch_generator(0, "test_detect", "lvr_head")
    head = {"lvr_head.ln_q.weight": 1 + 0.1 * torch.randn(d, generator=g), "lvr_head.ln_q.bias": torch.zeros(d),
            "lvr_head.mlp.0.weight": 0.05 * torch.randn(d, d, generator=g), "lvr_head.mlp.0.bias": torch.zeros(d),
            "lvr_head.mlp.2.weight": 0.05 * torch.randn(d, d, generator=g), "lvr_head.mlp.2.bias": torch.zeros(d)}
    folder = _copy(replica_dir("lvr"), tmp_path / "lvr_head", head, config={"lvr_head": True, "lvr_head_type": "simple"})
    with pytest.raises(HeadMismatchError, match=r"trained with lvr_head .* 6 lvr_head.\* weights.*head='latent'"):
        latentprobe.load(folder, "lvr")
    runner = latentprobe.load(folder)
    assert runner.spec == latentprobe.get_preset("lvr", head="latent")
    loaded = runner._decoder.head.state_dict()
    assert all(torch.equal(loaded[k[len("lvr_head."):]], v) for k, v in head.items())
    explicit = latentprobe.load(folder, latentprobe.get_preset("lvr", head="latent"))
    assert torch.equal(explicit._decoder.head.mlp[0].weight, head["lvr_head.mlp.0.weight"])
    with pytest.raises(HeadMismatchError, match=r"has no lvr_head.\* weights"):
        latentprobe.load(replica_dir("lvr"), latentprobe.get_preset("lvr", head="latent"))


def test_weights_that_do_not_map_are_listed(replica_dir, tmp_path):
    names = list(load_file(str(replica_dir("mirage") / "model.safetensors")))
    norm = next(k for k in names if k.endswith("norm.weight") and "layers" not in k and "visual" not in k)
    folder = _copy(replica_dir("mirage"), tmp_path / "mirage_odd", {"latent_proj.weight": torch.zeros(4, 4)}, drop=norm)
    with pytest.raises(UnmappedWeightsError, match=r"1 checkpoint weight\(s\) mapped onto nothing: latent_proj.weight; "
                                                   r"1 model weight\(s\) missing .*norm.weight"):
        latentprobe.load(folder, "mirage")
