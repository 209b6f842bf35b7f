"""The published families' presets: each reproduces its authors' inference loop.

Every preset's ``notes`` name the repository, commit and file it follows; the line-level citations are
in ``docs/published-protocols.md``. ``toy`` and ``toy-text`` are the shipped toy models' protocols.
"""

from __future__ import annotations

from typing import Any

from latentprobe.errors import SpecError
from latentprobe.spec import DecodingSettings, LatentSpec, PromptConventions

__all__ = ["get_preset", "list_presets", "register_preset"]

_PRESETS: dict[str, LatentSpec] = {}


def register_preset(spec: LatentSpec, *, overwrite: bool = False) -> LatentSpec:
    """Make ``spec`` available by name through :func:`get_preset` (and ``load(folder, name)``).

    Parameters
    ----------
    spec : LatentSpec
        The family's protocol; its ``name`` is the preset's name.
    overwrite : bool
        Replace a preset registered under the same name (otherwise that is refused).

    Returns
    -------
    LatentSpec
        ``spec`` itself.

    Raises
    ------
    SpecError
        A preset named ``spec.name`` exists and ``overwrite`` is false.

    Examples
    --------
    A variant of the toy's protocol with two latents, registered under its own name:

    >>> from latentprobe import get_preset, register_preset
    >>> spec = register_preset(get_preset("toy").replace(name="toy-two-latents", num_latents=2), overwrite=True)
    >>> get_preset("toy-two-latents").num_latents
    2
    """
    if spec.name in _PRESETS and not overwrite:
        raise SpecError(f"a preset named {spec.name!r} exists; pass overwrite=True to replace it.")
    _PRESETS[spec.name] = spec
    return spec


def list_presets() -> list[str]:
    """Names of the registered presets, sorted.

    Returns
    -------
    list of str
        The names :func:`get_preset` takes.
    """
    return sorted(_PRESETS)


def get_preset(name: str, **overrides: Any) -> LatentSpec:
    """The preset called ``name``, optionally with some fields changed (e.g. ``num_latents=16``).

    Parameters
    ----------
    name : str
        A registered preset (:func:`list_presets`).
    **overrides
        Fields of :class:`~latentprobe.spec.LatentSpec` to change in the returned copy.

    Returns
    -------
    LatentSpec
        The registered spec, or a copy with ``overrides`` applied.

    Raises
    ------
    SpecError
        No preset is called ``name`` (the known ones are listed).
    """
    try:
        spec = _PRESETS[name]
    except KeyError:
        raise SpecError(f"no preset named {name!r}; known presets: {', '.join(list_presets())}.") from None
    return spec.replace(**overrides) if overrides else spec

_QWEN_IMAGE = "Qwen2.5-VL"
#: qwen_vl_utils' fetch_image bounds (4*28*28 .. 16384*28*28): every VL family's script calls process_vision_info
#: before the processor (Monet inference/load_and_gen_vllm.py:85, LVR evaluation/evaluation.py:128, Mirage
#: src/test.py:55), so its resize comes first and the processor's bounds apply to the resized image.
_QWEN_VL_UTILS = (4 * 28 * 28, 16384 * 28 * 28)
_MONET_SYSTEM = ("You are a helpful multimodal assistant. You are required to answer the question based on the "
                 "image provided. Put your final answer in \\boxed{}.")

register_preset(LatentSpec(
    name="monet", base=_QWEN_IMAGE, open_mode="emitted", open_token="<abs_vis_token>",
    close_token="</abs_vis_token>", num_latents=10, first_offset=0, stop="end_token", min_latents=1,
    slot_policy="sampled", projection="identity", max_segments=None, latent_budget="stop", latent_eos="end",
    published_generation=DecodingSettings(
        do_sample=True, temperature=0.1, top_k=50, top_p=0.8, repetition_penalty=1.01, max_new_tokens=4096,
        from_checkpoint=("eos_token_id",),
        notes="vLLM SamplingParams in inference/load_and_gen_vllm.py (max_model_len 4096, bfloat16); vLLM adds the "
              "checkpoint's generation_config eos ids to the stop ids (SamplingParams.update_from_generation_config)."),
    prompt=PromptConventions(
        system_prompt=_MONET_SYSTEM, add_generation_prompt=True, prefix="<image>\n", content_order="text_first",
        min_pixels=256 * 28 * 28, max_pixels=8192 * 28 * 28, pre_resize=_QWEN_VL_UTILS,
        notes="system prompt: README's VLMEvalKit setting (the vLLM example sends none); the vLLM example "
              "prepends a literal '<image>\\n' to every image prompt (load_and_gen_vllm.py:87-88). Images: "
              "qwen_vl_utils' resize, then vLLM's processor bounds 256*28*28 .. 8192*28*28 (mm_processor_kwargs, "
              "load_and_gen_vllm.py:31-32, 49-52)."),
    notes="NOVAglow646/Monet@08939998 inference/vllm/monet_gpu_model_runner.py (apply_vllm_monet.py): the "
          "first latent replaces the sampled <abs_vis_token>'s own input; a sampled </abs_vis_token> closes "
          "(after >= 1 latent), else the close is forced at LATENT_SIZE=10 (inference/example.sh; the runner's "
          "own default is 0); unlimited segments. vLLM's stop check reads every sampled id, so an eos sampled at "
          "a latent step ends the request (latent_eos='end'), and max_tokens counts every position, so the "
          "budget ends a segment (latent_budget='stop'; runner :1655-1666).",
))
register_preset(LatentSpec(
    name="lvr", base=_QWEN_IMAGE, open_mode="emitted", open_token="<|lvr_start|>",
    close_token=None, num_latents=8, first_offset=1, stop="quota", min_latents=0,
    slot_policy="sampled", projection="identity", max_segments=None, latent_budget="complete_started",
    published_generation=DecodingSettings(
        do_sample=False, max_new_tokens=512,
        from_checkpoint=("do_sample", "temperature", "top_k", "top_p", "repetition_penalty", "eos_token_id"),
        notes="evaluation/evaluation.py:141 passes only max_new_tokens: do_sample, temperature, top-k, top-p, the "
              "repetition penalty and the eos list come from the checkpoint's generation_config.json "
              "(Qwen2.5-VL-Instruct's: greedy-equivalent with repetition penalty 1.05)."),
    prompt=PromptConventions(
        system_prompt=None, add_generation_prompt=True, content_order="image_first", pre_resize=_QWEN_VL_UTILS,
        notes="evaluation: apply_chat_template(add_generation_prompt=True), images before the question, which "
              "ends with \"\\nAnswer with the option's letter from the given choices directly.\"; min/max "
              "pixels from the checkpoint's processor (training: 128*28*28 .. 5120*28*28)."),
    notes="VincentLeebang/lvr@637a9f7e src/model/qwen_lvr_model.py (_lvr_deocding_by_steps, 'steps' "
          "decoding, evaluation/evaluation.py STEP_LIST 4/8/16): after K latents the token sampled from the "
          "last latent's logits is fed, no close is forced, any later <|lvr_start|> re-enters with a fresh "
          "quota. 'latent' decoding: stop='similarity' with end_embedding= (lvr_latent_end_emb), "
          "end_distance mse/mae/cosine, end_threshold 0.02. With lvr_head: head='latent' and "
          "head=LvrHead (src/train/monkey_patch_forward_lvr.py); the published scripts train with LVR_HEAD=False.",
))
register_preset(LatentSpec(
    name="mirage", base=_QWEN_IMAGE, open_mode="emitted", open_token="<|latent_start|>",
    close_token="<|latent_end|>", num_latents=8, first_offset=1, stop="end_token", min_latents=0,
    slot_policy="placeholder", slot_token="<|latent_pad|>", projection="identity", max_segments=1,
    latent_budget="stop",
    published_generation=DecodingSettings(
        do_sample=True, temperature=0.7, top_p=0.9, max_new_tokens=1024,
        from_checkpoint=("top_k", "repetition_penalty", "eos_token_id"),
        notes="src/test.py:61-68 generate(do_sample=True, temperature=0.7, top_p=0.9, max_new_tokens=1024); top-k, "
              "the repetition penalty and the eos list come from the checkpoint's generation_config.json "
              "(transformers' top_k=50 where it sets none)."),
    prompt=PromptConventions(
        system_prompt=None, add_generation_prompt=False, suffix="<|im_start|>assistant", content_order="image_first",
        image_placeholder="<image>", pre_resize=_QWEN_VL_UTILS,
        notes="src/test.py: chat template without generation prompt, the image moved to the question's <image> "
              "(src/utils.py place_input_image), then '<|im_start|>assistant' with no newline."),
    notes="UMass-Embodied-AGI/Mirage@53f26de2 transformers/src/transformers/generation/utils.py (_sample): a "
          "sampled <|latent_end|> closes (0 latents allowed), else forced after MAX_LATENT_LEN=8. Deviation: "
          "the authors' loop never resets its counters, so a second <|latent_start|> enters an uncapped segment "
          "that (after a sampled first close) cannot close; here max_segments=1 makes a later start marker "
          "ordinary text. A start sampled inside a segment is fed there as a token by the authors' loop; here it "
          "is an ordinary (pad-slot) latent step.",
))
register_preset(LatentSpec(
    name="coconut", base="GPT-2 / Llama", open_mode="prompt", open_token="<|start-latent|>",
    close_token="<|end-latent|>", num_latents=6, first_offset=1, stop="fixed",
    slot_policy="placeholder", slot_token="<|latent|>", projection="identity",
    published_generation=DecodingSettings(
        do_sample=False, max_new_tokens=64,
        notes="coconut.py generate: greedy argmax, batch 1; max_new_tokens 64 for GSM8K, 128 otherwise (run.py)."),
    prompt=PromptConventions(
        add_generation_prompt=False, suffix="\n", add_special_tokens=True,
        notes="dataset.py: question + '\\n' tokenised with special tokens, then <|start-latent|>, K x "
              "<|latent|>, <|end-latent|> (the caller writes them in the prompt)."),
    notes="facebookresearch/coconut@27273cb8 coconut.py, dataset.py (get_question_latent_dataset): markers "
          "and K=6 <|latent|> slots are in the prompt; latent k = h at the position before it.",
))
register_preset(LatentSpec(
    name="codi", base="GPT-2 / Llama", open_mode="appended", open_token=-2, close_token=-1,
    num_latents=6, first_offset=1, stop="fixed", slot_policy="none", projection="module", suppress=(-1,),
    published_generation=DecodingSettings(
        do_sample=False, max_new_tokens=6 + 1 + 256,
        notes="test.py with scripts/test_gpt2.sh, test_llama1b.sh: --greedy True over logits[:, :vocab-1] "
              "(the spec's suppress); without it T=0.1, top-k 40, top-p 0.95. test.py decodes 256 answer tokens "
              "after the 6 latents and <eot> (here the budget counts those 7 positions too)."),
    prompt=PromptConventions(
        add_generation_prompt=False, strip_question=True, question_replacements=(("  ", " "),), add_special_tokens=True,
        notes="test.py:170-180: question.strip().replace('  ', ' '), plain tokenizer call (special tokens on: "
              "BOS on Llama), no chat template; <bot> appended with no eos before it (--remove_eos True)."),
    checkpoint="adapter",
    notes="zhenyi4/codi@4fd88d4b src/model.py, test.py: pad, <bot>, <eot> are ids V, V+1, V+2 after "
          "resize_token_embeddings(V+3) (no strings: open_token=-2, close_token=-1 count from the end of the "
          "vocabulary); <bot> appended, 6 latents f(h) with f = prj (MLP + LayerNorm), then <eot>; greedy "
          "decoding never picks <eot>.",
))
register_preset(LatentSpec(
    name="toy", base="Qwen2.5-VL (tiny, shipped)", open_mode="emitted", open_token="<|latent_start|>",
    close_token="<|latent_end|>", num_latents=4, first_offset=1, stop="fixed",
    slot_policy="placeholder", slot_token="<|latent_pad|>", projection="identity",
    notes="The embedded default's protocol (Mirage-like, fixed K=4, close forced).",
))
register_preset(LatentSpec(
    name="toy-text", base="Qwen2.5-VL (tiny, shipped)", open_mode="emitted", open_token="<|caption|>",
    close_token="<|caption_end|>", num_latents=10, first_offset=1, stop="end_token", min_latents=1,
    slot_policy="none", projection="identity", mediator="text",
    notes="Explicit text imagination: a short caption of the queried object between markers.",
))

register_preset(LatentSpec(
    name="capimagine", base=_QWEN_IMAGE, open_mode="emitted", open_token="<observation>",
    close_token="</observation>", num_latents=2048, first_offset=1, stop="end_token", min_latents=0,
    slot_policy="none", projection="identity", max_segments=None, mediator="text", latent_budget="stop",
    latent_eos="end",
    published_generation=DecodingSettings(
        do_sample=False, max_new_tokens=2048,
        from_checkpoint=("do_sample", "temperature", "top_k", "top_p", "repetition_penalty", "eos_token_id"),
        notes="README: inference 'through the official code from Qwen2.5-VL' (model.generate with the checkpoint's "
              "generation_config.json); the paper (sec. 5.1) evaluates with Monet's protocol (VLMEvalKit's "
              "Qwen2VLChat, max_new_tokens 2048)."),
    prompt=PromptConventions(
        system_prompt=None, add_generation_prompt=True, content_order="image_first", pre_resize=_QWEN_VL_UTILS,
        notes="Qwen2.5-VL's official inference: chat template with the generation prompt, the image before the "
              "question, qwen_vl_utils' resize; no system message (the template inserts 'You are a helpful "
              "assistant.'). The paper's benchmark runs add Monet's system prompt (see the monet preset)."),
    notes="Text imagination (arXiv 2602.22766). AI9Stars/CapImagine@c107ee7f holds only README.md: CapImagine-7B is a "
          "Qwen2.5-VL-7B fine-tune decoded by plain Hugging Face generate, so nothing is forced: a span closes when "
          "the model writes its close marker (num_latents=2048 is the budget, never reached first), an eos inside a "
          "span ends the sequence, spans are unlimited. Markers: not published. The model was trained with Monet's "
          "codebase (paper sec. 5.1), whose tokenizer adds <abs_vis_token_pad>, <abs_vis_token>, </abs_vis_token>, "
          "<observation>, </observation> as special tokens (NOVAglow646/Monet@08939998 src/main.py:64-68), and "
          "Monet's data wrap the text read off an intermediate image in <observation>...</observation> (src/task.py:"
          "41-43): the span here. A third-party reproduction (payamsiabd/capimage@e74472d train/data.py) reads the "
          "paper's figure as <think_image>...</think_image> text; with a checkpoint that writes other markers, "
          "override open_token/close_token (get_preset('capimagine', open_token=..., close_token=...)).",
))
register_preset(LatentSpec(
    name="plain", base="any causal LM or Qwen2.5-VL", open_mode="none", open_token=None, close_token=None,
    num_latents=10, first_offset=1, stop="end_token", min_latents=0, slot_policy="none", projection="identity",
    max_segments=1, mediator="text", latent_budget="stop", latent_eos="end",
    prompt=PromptConventions(
        add_generation_prompt=True, content_order="image_first",
        notes="the checkpoint's chat template with the generation prompt (a model without one: the plain text); a "
              "chain-of-thought instruction goes in the question (a study's [prompt] template) or system_prompt."),
    notes="No latent protocol: ordinary generation, nothing forced. The first num_latents generated tokens are "
          "recorded like latents (z = their embeddings, h_src = the output that chose each one, per-layer residuals "
          "at their positions), so a text chain of thought gives the baseline curve of the latent analyses and the "
          "model can serve as a second model; the answer is the whole generated text. Change K with "
          "get_preset('plain', num_latents=...).",
))
