import pytest
import torch

import latentprobe
from latentprobe.errors import SpecError, SpecTokenError
from latentprobe.engine import LatentRunner
from latentprobe.spec import LatentSpec, get_preset, list_presets
from tiny import make_tokenizer


def test_presets_are_listed_and_returned():
    names = latentprobe.list_presets()
    for n in ("monet", "lvr", "mirage", "coconut", "codi", "toy"):
        assert n in names
        assert latentprobe.get_preset(n).name == n
    assert get_preset("lvr", num_latents=16).num_latents == 16
    with pytest.raises(SpecError, match="known presets"):
        get_preset("nope")


def test_preset_protocols_match_the_families():
    assert get_preset("monet").first_offset == 0 and get_preset("monet").num_latents == 10
    assert get_preset("mirage").stop == "end_token" and get_preset("mirage").slot_token == "<|latent_pad|>"
    assert get_preset("coconut").open_mode == "prompt" and get_preset("coconut").num_latents == 6
    assert get_preset("codi").open_mode == "appended" and get_preset("codi").projection == "module"
    assert get_preset("lvr").slot_policy == "sampled"


@pytest.mark.parametrize("bad", [dict(num_latents=0), dict(num_latents=-3), dict(first_offset=2),
                                 dict(slot_policy="placeholder", slot_token=None), dict(stop="end_token", close_token=None),
                                 dict(open_mode="prompt", slot_token=None), dict(min_latents=99)])
def test_invalid_specs_raise(bad):
    kw = dict(name="x", open_mode="emitted", open_token="<a>", close_token="<b>", num_latents=4)
    kw.update(bad)
    with pytest.raises(SpecError):
        LatentSpec(**kw)


def test_token_ids_come_from_the_tokenizer():
    spec = get_preset("mirage")
    a = spec.resolve(make_tokenizer())
    b = spec.resolve(make_tokenizer(extra_specials=("<x1>", "<x2>")))  # shifts the words, not the markers
    tok_a = make_tokenizer()
    assert a.open_id == tok_a.convert_tokens_to_ids("<|latent_start|>")
    assert a.slot_id == tok_a.convert_tokens_to_ids("<|latent_pad|>")
    custom = LatentSpec(name="c", open_mode="emitted", open_token="<x2>", close_token="<x1>", num_latents=2)
    r = custom.resolve(make_tokenizer(extra_specials=("<x1>", "<x2>")))
    assert r.open_id != r.close_id and a.open_id == b.open_id


def test_missing_tokens_raise_a_clear_error():
    spec = LatentSpec(name="new", open_mode="emitted", open_token="<think>", close_token="</think>", num_latents=3)
    with pytest.raises(SpecTokenError, match=r"open_token='<think>'.*close_token='</think>'.*add_special_tokens"):
        spec.resolve(make_tokenizer())


def test_spec_roundtrips_through_a_dict():
    s = get_preset("codi")
    assert LatentSpec.from_dict(s.to_dict()) == s


def test_a_new_family_in_a_few_lines(qwen, tok, images):
    spec = LatentSpec(name="my-model", open_mode="appended", open_token="<|lvr_start|>",
                      close_token="<|lvr_end|>", num_latents=3, slot_policy="placeholder", slot_token="<|latent_pad|>")
    tr = LatentRunner(qwen, tok, spec).run(["<|vision_start|> <|image_pad|> <|vision_end|> a b"], [images[0]],
                                           max_new_tokens=6, progress=False)
    assert tr[0].num_latents == 3
