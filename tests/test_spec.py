import pytest
import torch

import latentprobe
from latentprobe.errors import SpecError, SpecTokenError
from latentprobe.engine import LatentRunner
from latentprobe.spec import LatentSpec
from latentprobe.presets import get_preset, list_presets
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


@pytest.mark.parametrize("name, fields", [
    ("monet", dict(stop="end_token", num_latents=10, min_latents=1, first_offset=0, max_segments=None,
                   slot_policy="sampled")),
    ("lvr", dict(stop="quota", num_latents=8, close_token=None, max_segments=None, head="none", first_offset=1)),
    ("mirage", dict(stop="end_token", num_latents=8, min_latents=0, max_segments=1, slot_policy="placeholder")),
    ("coconut", dict(stop="fixed", num_latents=6, open_mode="prompt", open_token="<|start-latent|>")),
    ("codi", dict(stop="fixed", num_latents=6, open_token=-2, close_token=-1, suppress=(-1,), open_mode="appended")),
])
def test_presets_follow_the_published_loops(name, fields):
    spec = get_preset(name)
    assert {k: getattr(spec, k) for k in fields} == fields
    commit = {"monet": "NOVAglow646/Monet@08939998", "lvr": "VincentLeebang/lvr@637a9f7e",
              "mirage": "UMass-Embodied-AGI/Mirage@53f26de2", "coconut": "facebookresearch/coconut@27273cb8",
              "codi": "zhenyi4/codi@4fd88d4b"}[name]
    assert commit in spec.notes
    assert spec.published_generation is not None and spec.prompt is not None


def test_published_settings_and_prompt_conventions_are_data():
    monet = get_preset("monet")
    g = monet.published_generation
    assert (g.do_sample, g.temperature, g.top_k, g.top_p, g.repetition_penalty, g.max_new_tokens) == \
        (True, 0.1, 50, 0.8, 1.01, 4096)
    assert (monet.prompt.min_pixels, monet.prompt.max_pixels) == (256 * 28 * 28, 8192 * 28 * 28)
    assert monet.prompt.system_prompt.startswith("You are a helpful multimodal assistant.")
    mirage = get_preset("mirage")
    assert mirage.prompt.suffix == "<|im_start|>assistant" and not mirage.prompt.add_generation_prompt
    assert (mirage.published_generation.temperature, mirage.published_generation.top_p) == (0.7, 0.9)
    assert get_preset("codi").published_generation.do_sample is False


def test_toy_presets_are_unchanged():
    toy, text = get_preset("toy"), get_preset("toy-text")
    assert (toy.stop, toy.num_latents, toy.min_latents, toy.max_segments, toy.slot_policy, toy.open_token) == \
        ("fixed", 4, 1, 1, "placeholder", "<|latent_start|>")
    assert (text.stop, text.num_latents, text.min_latents, text.mediator, text.slot_policy) == \
        ("end_token", 10, 1, "text", "none")
    assert toy.published_generation is None and toy.head == "none" and toy.suppress == ()


@pytest.mark.parametrize("bad", [dict(num_latents=0), dict(num_latents=-3), dict(first_offset=2),
                                 dict(slot_policy="placeholder", slot_token=None), dict(stop="end_token", close_token=None),
                                 dict(open_mode="prompt", slot_token=None), dict(min_latents=99)])
def test_invalid_specs_raise(bad):
    kw = dict(name="x", open_mode="emitted", open_token="<a>", close_token="<b>", num_latents=4)
    kw.update(bad)
    with pytest.raises(SpecError):
        LatentSpec(**kw)


@pytest.mark.parametrize("bad, fragment", [
    (dict(stop="never"), "stop='never'"), (dict(max_segments=0), "max_segments=0"),
    (dict(max_segments=2.5), "max_segments=2.5"), (dict(min_latents=-1), "min_latents=-1"),
    (dict(num_latents=True), "num_latents=True"), (dict(head="mlp"), "head='mlp'"),
    (dict(end_distance="l2"), "end_distance='l2'"), (dict(end_threshold=0.0), "end_threshold=0.0"),
    (dict(end_threshold=float("nan")), "end_threshold=nan"), (dict(open_token=""), "open_token=''"),
    (dict(open_token=1.5), "open_token=1.5"), (dict(suppress=["<a>"]), "suppress="),
    (dict(stop="fixed", close_token=None), "close_token=None"),
    (dict(mediator="text", stop="quota"), "mediator='text'"), (dict(published_generation={"x": 1}), "published_generation"),
])
def test_new_fields_are_validated_with_the_field_and_the_fix(bad, fragment):
    kw = dict(name="x", open_mode="emitted", open_token="<a>", close_token="<b>", num_latents=4)
    kw.update(bad)
    with pytest.raises(SpecError, match=r"LatentSpec 'x'.*" + fragment.replace("[", r"\[").replace(".", r"\.")):
        LatentSpec(**kw)


def test_unlimited_segments_zero_latents_and_no_close_are_valid():
    s = LatentSpec(name="x", open_mode="emitted", open_token="<a>", close_token=None, num_latents=4, stop="quota",
                   min_latents=0, max_segments=None)
    assert s.max_segments is None and s.min_latents == 0


def test_unknown_fields_are_spec_errors():
    with pytest.raises(SpecError, match="unknown field"):
        get_preset("lvr").replace(bogus=1)
    with pytest.raises(SpecError, match="unknown field"):
        LatentSpec.from_dict({**get_preset("lvr").to_dict(), "bogus": 1})


def test_markers_by_id_resolve_on_a_tokenizer_without_such_strings():
    # CODI: a base tokenizer of V ids gets [PAD] (id V) as its test.py does; <bot>/<eot> exist only as rows
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<|endoftext|>", "a", "b", "c"])}
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>")),
                                  eos_token="<|endoftext|>")
    V = len(tok)
    tok.add_special_tokens({"pad_token": "[PAD]"})
    rs = get_preset("codi").resolve(tok, vocab_size=V + 3)
    assert (rs.pad_id, rs.open_id, rs.close_id, rs.suppress_ids) == (V, V + 1, V + 2, (V + 2,))
    with pytest.raises(SpecTokenError, match="vocab_size="):
        get_preset("codi").resolve(tok)
    with pytest.raises(SpecTokenError, match="outside the model's vocabulary"):
        get_preset("codi", open_token=V + 7).resolve(tok, vocab_size=V + 3)


def _tokenizer_with_markers_rotated():
    """The tests' tokenizer with its special markers rotated by five places: every marker gets another id."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from tiny import SPECIALS, WORDS

    order = SPECIALS[:3] + SPECIALS[8:] + SPECIALS[3:8]
    tok = Tokenizer(models.WordLevel(vocab={t: i for i, t in enumerate(order + WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    fast.add_special_tokens({"additional_special_tokens": order[3:]})
    return fast


def test_token_ids_come_from_the_tokenizer():
    spec = get_preset("mirage")
    tok_a, tok_b = make_tokenizer(), _tokenizer_with_markers_rotated()
    a, b = spec.resolve(tok_a), spec.resolve(tok_b)
    for rs, tok in ((a, tok_a), (b, tok_b)):
        assert rs.open_id == tok.convert_tokens_to_ids("<|latent_start|>")
        assert rs.close_id == tok.convert_tokens_to_ids("<|latent_end|>")
        assert rs.slot_id == tok.convert_tokens_to_ids("<|latent_pad|>")
    # the two tokenizers place the markers differently, so ids fixed in advance would fail one of them
    assert (a.open_id, a.close_id, a.slot_id) != (b.open_id, b.close_id, b.slot_id)
    assert a.open_id != b.open_id and a.close_id != b.close_id and a.slot_id != b.slot_id
    custom = LatentSpec(name="c", open_mode="emitted", open_token="<x2>", close_token="<x1>", num_latents=2)
    r = custom.resolve(make_tokenizer(extra_specials=("<x1>", "<x2>")))
    assert r.open_id == r.close_id + 1


def test_missing_tokens_raise_a_clear_error():
    spec = LatentSpec(name="new", open_mode="emitted", open_token="<think>", close_token="</think>", num_latents=3)
    with pytest.raises(SpecTokenError, match=r"open_token='<think>'.*close_token='</think>'.*add_special_tokens"):
        spec.resolve(make_tokenizer())


@pytest.mark.parametrize("name", list_presets())
def test_spec_roundtrips_through_a_dict(name):
    s = get_preset(name)
    assert LatentSpec.from_dict(s.to_dict()) == s
    import json

    assert LatentSpec.from_dict(json.loads(json.dumps(s.to_dict()))) == s


def test_a_new_family_in_a_few_lines(qwen, tok, images):
    spec = LatentSpec(name="my-model", open_mode="appended", open_token="<|lvr_start|>",
                      close_token="<|lvr_end|>", num_latents=3, slot_policy="placeholder", slot_token="<|latent_pad|>")
    tr = LatentRunner(qwen, tok, spec).run(["<|vision_start|> <|image_pad|> <|vision_end|> a b"], [images[0]],
                                           max_new_tokens=6, progress=False)
    assert tr[0].num_latents == 3


def test_plain_has_no_markers_and_reads_the_first_generated_tokens(tok):
    from latentprobe import LatentSpec

    plain = get_preset("plain")
    assert (plain.open_mode, plain.open_token, plain.close_token, plain.mediator) == ("none", None, None, "text")
    rs = plain.resolve(tok)
    assert rs.open_id == -1 and rs.close_id is None
    with pytest.raises(SpecError, match="open_mode='none'"):
        LatentSpec(name="x", open_mode="none", open_token=None, close_token=None, num_latents=3)  # a latent mediator
    with pytest.raises(SpecError, match="no markers"):
        plain.replace(open_token="<eos>")
    cap = get_preset("capimagine")
    assert (cap.mediator, cap.stop, cap.min_latents, cap.max_segments, cap.latent_eos) == ("text", "end_token", 0, None, "end")
