"""Decoding settings merged as the authors' pipelines merge them, checked against transformers' own merge.

Two Qwen2.5-VL-7B-Instruct ``generation_config.json`` layouts are used (docs/published-protocols.md,
"Decoding settings from the checkpoint"): the early one (``temperature 0.1, top_k 1, top_p 0.001``) and
the later one (``temperature 1e-06``, no top-k/top-p); both set ``repetition_penalty 1.05`` and
``eos_token_id [151645, 151643]``.
"""

from __future__ import annotations

import json

import pytest
import torch
from transformers import GenerationConfig as HFGenerationConfig
from transformers import RepetitionPenaltyLogitsProcessor

from latentprobe.engine.decoding import (CheckpointGeneration, config_from_record, effective_generation,
                                         read_generation_config)
from latentprobe.engine.sampling import _penalise
from latentprobe.errors import InputError, ModelStructureError
from latentprobe.presets import get_preset

BASE = {"bos_token_id": 151643, "pad_token_id": 151643, "do_sample": True, "eos_token_id": [151645, 151643]}
QWEN_EARLY = {**BASE, "repetition_penalty": 1.05, "temperature": 0.1, "top_p": 0.001, "top_k": 1}
QWEN_LATE = {**BASE, "repetition_penalty": 1.05, "temperature": 1e-06}
#: what each authors' script passes to generate() (Mirage src/test.py:61-68, LVR evaluation/evaluation.py:141)
AUTHORS = {"mirage": dict(max_new_tokens=1024, do_sample=True, temperature=0.7, top_p=0.9),
           "lvr": dict(max_new_tokens=512)}


def _transformers_merge(llama, file: dict, **kwargs) -> HFGenerationConfig:
    """The settings ``model.generate(**kwargs)`` runs with on a checkpoint holding ``file``: transformers' own merge."""
    saved = llama.generation_config
    llama.generation_config = HFGenerationConfig(**file)
    try:
        merged, _ = llama._prepare_generation_config(None, **kwargs)
    finally:
        llama.generation_config = saved
    return merged


@pytest.mark.parametrize("file", [QWEN_EARLY, QWEN_LATE], ids=["early", "late"])
@pytest.mark.parametrize("family", ["mirage", "lvr"])
def test_published_settings_equal_transformers_merge_of_the_checkpoint_and_the_authors_arguments(llama, family,
                                                                                                  file):
    hf = _transformers_merge(llama, file, **AUTHORS[family])
    cfg, record = effective_generation("published", get_preset(family), CheckpointGeneration.from_dict(file),
                                       tokenizer_eos=151645)
    assert (cfg.max_new_tokens, cfg.do_sample, cfg.temperature, cfg.top_k, cfg.top_p, cfg.repetition_penalty) == \
        (hf.max_new_tokens, hf.do_sample, hf.temperature, hf.top_k, hf.top_p, hf.repetition_penalty)
    assert list(cfg.eos_token_ids) == hf.eos_token_id == [151645, 151643]
    assert record["eos_token_id"] == [151645, 151643] and record["sources"]["repetition_penalty"] == "checkpoint"


@pytest.mark.parametrize("file", [QWEN_EARLY, QWEN_LATE, {"eos_token_id": 7}], ids=["early", "late", "eos-only"])
def test_checkpoint_mode_equals_generate_without_arguments(llama, file):
    hf = _transformers_merge(llama, file)
    cfg, _ = effective_generation("checkpoint", get_preset("toy"), CheckpointGeneration.from_dict(file),
                                  tokenizer_eos=None)
    assert (cfg.do_sample, cfg.temperature, cfg.top_k, cfg.top_p, cfg.repetition_penalty) == \
        (hf.do_sample, hf.temperature, hf.top_k, hf.top_p, hf.repetition_penalty)
    assert list(cfg.eos_token_ids) == ([hf.eos_token_id] if isinstance(hf.eos_token_id, int) else hf.eos_token_id)


def test_what_each_published_pipeline_takes_from_the_checkpoint():
    early = CheckpointGeneration.from_dict(QWEN_EARLY)
    # Mirage "samples at T=0.7", but top_k=1 from the base model's file makes it greedy, with the 1.05 penalty
    mir, rec = effective_generation("published", get_preset("mirage"), early, tokenizer_eos=151645)
    assert (mir.do_sample, mir.temperature, mir.top_k, mir.top_p, mir.repetition_penalty) == (True, 0.7, 1, 0.9, 1.05)
    assert rec["sources"] == {"do_sample": "published", "temperature": "published", "top_k": "checkpoint",
                              "top_p": "published", "repetition_penalty": "checkpoint", "max_new_tokens": "published",
                              "eos_token_id": "checkpoint"}
    # LVR passes nothing: everything from the file
    lvr, _ = effective_generation("published", get_preset("lvr"), early, tokenizer_eos=151645)
    assert (lvr.do_sample, lvr.temperature, lvr.top_k, lvr.top_p, lvr.repetition_penalty) == (True, 0.1, 1, 0.001, 1.05)
    # Monet (vLLM): its SamplingParams are explicit; only the file's eos ids join the tokenizer's as stop ids
    mon, _ = effective_generation("published", get_preset("monet"), early, tokenizer_eos=151645)
    assert (mon.temperature, mon.top_k, mon.top_p, mon.repetition_penalty, mon.eos_token_ids) == \
        (0.1, 50, 0.8, 1.01, (151645, 151643))
    # CODI's and Coconut's hand-written loops read no generation config: the tokenizer's eos only
    codi, rec = effective_generation("published", get_preset("codi"), early, tokenizer_eos=9)
    assert (codi.do_sample, codi.repetition_penalty, codi.eos_token_ids, codi.max_new_tokens) == (False, 1.0, (9,), 263)
    assert rec["sources"]["eos_token_id"] == "tokenizer"
    # no file: transformers' defaults (greedy) for what LVR leaves to it
    bare, rec = effective_generation("published", get_preset("lvr"), None, tokenizer_eos=151645)
    assert (bare.do_sample, bare.repetition_penalty, bare.eos_token_ids) == (False, 1.0, (151645,))
    assert rec["sources"]["repetition_penalty"] == "transformers default" and rec["checkpoint_file"] is None


def test_explicit_arguments_win_and_the_default_stays_greedy_with_the_checkpoints_eos_list():
    early = CheckpointGeneration.from_dict(QWEN_EARLY, source="ckpt/generation_config.json")
    cfg, rec = effective_generation("published", get_preset("mirage"), early, tokenizer_eos=151645, top_k=None,
                                    repetition_penalty=1.0, temperature=0.5, seed=4)
    assert (cfg.top_k, cfg.repetition_penalty, cfg.temperature, cfg.seed) == (1, 1.0, 0.5, 4)  # None: not given
    assert rec["sources"]["repetition_penalty"] == "argument" and rec["checkpoint_file"] == "ckpt/generation_config.json"
    plain, rec = effective_generation(None, get_preset("mirage"), early, tokenizer_eos=151645)
    assert (plain.do_sample, plain.repetition_penalty, plain.max_new_tokens) == (False, 1.0, 32)
    assert plain.eos_token_ids == (151645, 151643) and rec["mode"] is None
    with pytest.raises(InputError, match="generation='sampled'"):
        effective_generation("sampled", get_preset("mirage"), early, tokenizer_eos=1)
    with pytest.raises(InputError, match="records no published"):
        effective_generation("published", get_preset("toy"), early, tokenizer_eos=1)


def test_a_record_rebuilds_the_settings_for_a_resumed_run():
    cfg, rec = effective_generation("published", get_preset("lvr"), CheckpointGeneration.from_dict(QWEN_LATE),
                                    tokenizer_eos=151645, seed=3)
    assert config_from_record({"generation": rec}) == cfg
    assert config_from_record({"generation": rec}, max_new_tokens=9, seed=1) == cfg.replace(max_new_tokens=9, seed=1)
    old = {"max_new_tokens": 5, "do_sample": False, "temperature": 1.0, "top_k": None, "top_p": None,
           "repetition_penalty": 1.0, "seed": 0, "generation": None}  # a trace written before the record
    assert config_from_record(old).max_new_tokens == 5 and config_from_record(old).eos_token_ids is None


def test_read_generation_config(tmp_path):
    assert read_generation_config(tmp_path) == CheckpointGeneration()
    (tmp_path / "generation_config.json").write_text(json.dumps({**QWEN_LATE, "transformers_version": "4.49.0"}))
    got = read_generation_config(tmp_path)
    assert got.eos_token_ids == (151645, 151643) and got.source.endswith("generation_config.json")
    assert dict(got.values) == {"do_sample": True, "temperature": 1e-06, "repetition_penalty": 1.05}
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": 2}))
    assert read_generation_config(tmp_path).eos_token_ids == (2,)
    (tmp_path / "generation_config.json").write_text("{not json")
    with pytest.raises(ModelStructureError, match="not valid JSON"):
        read_generation_config(tmp_path)
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": ["a"]}))
    with pytest.raises(ModelStructureError, match="eos_token_id"):
        read_generation_config(tmp_path)


def test_repetition_penalty_equals_transformers_processor():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, generator=g) * 3
    logits[[4, 9]] = 0.0  # exactly zero stays zero either way
    ids = torch.randint(0, 50, (40,), generator=g).tolist() + [4, 9, 4]
    for penalty in (1.05, 1.3, 0.8):
        hf = RepetitionPenaltyLogitsProcessor(penalty)(torch.tensor([ids]), logits[None].clone())[0]
        assert torch.equal(_penalise(logits, ids, penalty), hf)
