"""Loading published checkpoints with everything a faithful run needs.

* :func:`load`: a Hugging Face checkpoint (local folder, or a hub id where there is network) with its
  tokenizer, chat template and image processor (transformers' Pil backend, no torchvision), the
  spec's tokens checked against the tokenizer, and the family's prompt conventions;
* :func:`load_codi`: CODI's official layout (``zhenyi4/codi``): base model + LoRA (merged) under
  ``codi.``, projection under ``prj.``; needs ``peft`` (``pip install latentprobe[codi]``);
* :func:`load_coconut`: Coconut's published format (``facebookresearch/coconut``): a GPT-2 (or
  Llama) state dict, optionally under ``base_causallm.``, with the three added tokens;
* :func:`coconut_prompt`: a question as Coconut's evaluation feeds it.

The per-family prompt conventions are the presets' own (:attr:`LatentSpec.prompt`, cited in
``docs/published-protocols.md``); :func:`convention_for` turns one into what the engine applies.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch
from torch import nn

from latentprobe.engine.checkpoint_files import (check_checkpoint, check_device_map, checkpoint_source,
                                                 chat_template_of, image_processor_of, library_errors,
                                                 torch_dtype)
from latentprobe.engine.decoding import read_generation_config
from latentprobe.engine.detect import (RUNNER_WEIGHTS, FamilyDetectionError, FamilyMismatchError, UnmappedWeightsError,
                                       check_loading_info, check_preset_fits, checkpoint_evidence, detect_family,
                                       lvr_weights, resolve_preset)
from latentprobe.engine.heads import CodiProjection
from latentprobe.engine.inputs import PromptConvention
from latentprobe.engine.runner import LatentRunner
from latentprobe.errors import CheckpointNotFoundError, LoadError, ModelStructureError, SpecError, SpecTokenError
from latentprobe.presets import get_preset
from latentprobe.spec import LatentSpec

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

__all__ = ["FAMILY_CONVENTIONS", "convention_for", "MissingDependencyError", "check_spec_tokens", "load", "load_codi", "load_coconut",
           "coconut_prompt"]

def convention_for(spec: LatentSpec) -> PromptConvention | None:
    """The prompt convention ``load`` applies: the spec's published :attr:`LatentSpec.prompt`, as the engine reads it.

    ``None`` when the spec records none (the chat template's defaults apply).

    Parameters
    ----------
    spec : LatentSpec
        The family's spec.

    Returns
    -------
    PromptConvention or None
    """
    p = spec.prompt
    if p is None:
        return None
    return PromptConvention(add_generation_prompt=p.add_generation_prompt, suffix=p.suffix, image_prefix=p.prefix,
                            min_pixels=p.min_pixels, max_pixels=p.max_pixels, system_prompt=p.system_prompt,
                            content_order=p.content_order, image_placeholder=p.image_placeholder,
                            pre_resize=None if p.pre_resize is None else tuple(p.pre_resize))


#: The published families' conventions, derived from their presets (one source: ``presets.py``).
FAMILY_CONVENTIONS: dict[str, PromptConvention] = {
    name: conv for name in ("monet", "lvr", "mirage") if (conv := convention_for(get_preset(name))) is not None
}


class MissingDependencyError(LoadError, ImportError):
    """An optional dependency a loader needs is not installed."""


def check_spec_tokens(spec: LatentSpec, tokenizer: PreTrainedTokenizerBase) -> None:
    """Check that every marker of ``spec`` is one token of ``tokenizer``.

    Parameters
    ----------
    spec : LatentSpec
        The family's spec.
    tokenizer : PreTrainedTokenizerBase
        The checkpoint's tokenizer.

    Raises
    ------
    SpecTokenError
        Naming each missing token and its role, and how to add them (and what adding means: an
        untrained embedding, unless the checkpoint was trained with them).
    """
    vocab = tokenizer.get_vocab()
    missing = [f"{role}={tok!r}" for role, tok in spec.tokens().items() if tok not in vocab]
    if missing:
        toks = [t.split("=", 1)[1] for t in missing]
        raise SpecTokenError(
            f"preset {spec.name!r}: the checkpoint's tokenizer has no token(s) {', '.join(missing)}. This is not a "
            f"{spec.name} checkpoint, or its tokenizer was saved without the added tokens. To add them (their "
            f"embeddings are then untrained): tokenizer.add_tokens([{', '.join(toks)}], special_tokens=True); "
            "model.resize_token_embeddings(len(tokenizer)); then build LatentRunner(model, tokenizer, spec)."
        )


def _is_vl(config: Any) -> bool:
    return getattr(config, "vision_config", None) is not None


def load(model: str | os.PathLike, preset: str | LatentSpec | None = None, *, dtype: torch.dtype | str | None = None,
         device_map: str | dict | None = None, revision: str | None = None, trust_remote_code: bool = False,
         projection: nn.Module | None = None, convention: PromptConvention | None = None,
         base: str | os.PathLike | None = None, **runner_kwargs: Any) -> LatentRunner:
    """A :class:`~latentprobe.engine.runner.LatentRunner` on a published checkpoint.

    The checkpoint's ``generation_config.json`` is read (:func:`~latentprobe.engine.decoding.read_generation_config`)
    and given to the runner as ``generation_defaults``: its eos list stops every run, and
    ``run(generation="published")`` takes from it what the authors' script left to it.

    Parameters
    ----------
    model:
        A local folder (``save_pretrained`` layout) or a hub id (needs network; set
        ``HF_HUB_OFFLINE=1`` to use only the local cache).
    preset:
        A preset name (``"monet"``, ``"lvr"``, ``"mirage"``, ``"coconut"``, ``"codi"``) or a spec; ``None``:
        the family detected from the checkpoint's tokens, config and weights
        (:func:`~latentprobe.engine.detect.detect_family`; LVR with ``head="latent"`` when it carries ``lvr_head``).
    dtype:
        e.g. ``torch.bfloat16`` (default: the checkpoint's ``dtype``, else float32).
    device_map:
        Passed to ``from_pretrained`` (``"auto"`` shards over the visible devices; needs accelerate).
    revision, trust_remote_code:
        Passed to every ``from_pretrained``; remote code runs only when asked.
    projection:
        ``f`` for specs with ``projection="module"``; CODI checkpoints load with :func:`load_codi`.
    convention:
        Override the family's prompt convention (default :func:`convention_for` the spec).
    base:
        For Coconut's and CODI's official layouts (a state dict of the fine-tuned weights only): the base
        model; the checkpoint then goes to :func:`load_coconut` / :func:`load_codi`, with ``runner_kwargs``
        as their own arguments (``num_latents``, ``lora_r``, ...).

    Returns
    -------
    LatentRunner

    Raises
    ------
    LoadError
        Every failure to load (the subclasses below; the library's own error, if any, is ``__cause__``):
        ``LoadArgumentError`` for ``model=None``, an unknown or integer ``dtype``, a ``device_map`` naming a device
        this machine lacks, a file given for its folder; ``CheckpointNotFoundError`` for a missing folder, weights,
        tokenizer or shard, or a hub id the hub cannot serve (offline); ``CheckpointFormatError`` for a damaged
        weights file, a JSON file that does not parse (``preprocessor_config.json`` included: no fallback to
        default image settings), an unknown ``model_type``, weights of another shape than ``config.json`` says.
    SpecTokenError
        If a marker of the spec is not in the checkpoint's tokenizer (the message says how to add it).
    FamilyDetectionError
        ``preset=None`` and the checkpoint matches no family or several (the candidates are listed).
    FamilyMismatchError
        The preset is another family's (or a toy's) than the checkpoint's.
    HeadMismatchError
        The checkpoint carries ``lvr_head`` weights the preset would ignore, or the preset has a head the
        checkpoint lacks.
    UnmappedWeightsError
        Checkpoint weights that map onto nothing in the model, or model weights the checkpoint lacks (all listed).

    Examples
    --------
    A saved toy (a tiny Qwen2.5-VL with Mirage's latent tokens) loads from its folder as a published
    checkpoint does; its family is detected from its tokens:

    >>> import tempfile
    >>> import latentprobe
    >>> from latentprobe import toy
    >>> tm = toy.load("mediated")
    >>> folder = tempfile.mkdtemp()
    >>> _ = tm.model.save_pretrained(folder), tm.tokenizer.save_pretrained(folder)
    >>> runner = latentprobe.load(folder)
    >>> runner.spec.name, type(runner.model).__name__
    ('mirage', 'Qwen2_5_VLForConditionalGeneration')

    A published checkpoint needs network and about 16 GB of GPU memory, so is not run here:

    >>> runner = latentprobe.load("Miiche/vsp_spatial_planning_direct_sft", "mirage",
    ...                           dtype=torch.bfloat16, device_map="auto")  # doctest: +SKIP
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer

    src = checkpoint_source(model)
    where = f"load({src!r})"
    torch_dt = torch_dtype(dtype, where)
    check_device_map(device_map, where)
    check_checkpoint(src, where)
    local = Path(src).exists()
    detection = detect_family(src) if local else None  # the files: added tokens, config.json, weight names
    if detection is not None and detection.evidence.layout == "state_dict":
        return _load_official_layout(src, preset, detection, base, dtype, device_map, revision, runner_kwargs)
    common = {"revision": revision, "trust_remote_code": trust_remote_code}
    with library_errors(src, where, "reading the tokenizer (tokenizer.json, tokenizer_config.json)"):
        tokenizer = AutoTokenizer.from_pretrained(src, **common)
    with library_errors(src, where, "reading config.json"):
        config = AutoConfig.from_pretrained(src, **common)
    if detection is None:  # a hub id: judged by its tokenizer and config (the weight names are not known)
        detection = detect_family(checkpoint_evidence(src, tokenizer=tokenizer, config=config))
    spec = resolve_preset(preset, detection, where)
    if spec.projection == "module" and projection is None:
        raise SpecError(f"preset {spec.name!r} feeds f(h) through a projection module; load CODI's official "
                        "checkpoints with latentprobe.engine.loading.load_codi(checkpoint, base), or pass projection=.")
    check_spec_tokens(spec, tokenizer)
    check_preset_fits(spec, detection, where)
    vl = _is_vl(config)
    cls = AutoModelForImageTextToText if vl else AutoModelForCausalLM
    kw: dict[str, Any] = dict(common)
    if torch_dt is not None:
        kw["dtype"] = torch_dt
    if device_map is not None:
        kw["device_map"] = device_map
    with library_errors(src, where, "loading the weights (model.safetensors / pytorch_model.bin)"):
        hf_model, info = cls.from_pretrained(src, output_loading_info=True, **kw)
    check_loading_info(info, where, RUNNER_WEIGHTS)
    for name, value in lvr_weights(src, spec, where).items():
        runner_kwargs.setdefault(name, value.to(hf_model.get_input_embeddings().weight))
    conv = convention if convention is not None else convention_for(spec)
    image_processor = image_processor_of(src, revision, trust_remote_code, conv, where) if vl else None
    with library_errors(src, where, "reading the chat template (chat_template.jinja / chat_template.json)"):
        chat_template_of(src, tokenizer, revision)
    if projection is not None:
        projection = projection.to(hf_model.get_input_embeddings().weight.device)
    # the decoding settings generate() takes from the checkpoint (Mirage's test.py and LVR's evaluation.py pass
    # only some; every eos id of the file stops): docs/published-protocols.md, "Decoding settings"
    with library_errors(src, where, "reading generation_config.json"):
        runner_kwargs.setdefault("generation_defaults", read_generation_config(src, revision))
    return LatentRunner(hf_model, tokenizer, spec, projection=projection, image_processor=image_processor,
                        prompt_convention=conv, **runner_kwargs)


def _load_official_layout(src: str, preset: str | LatentSpec | None, detection: Any, base: Any, dtype: Any,
                          device_map: Any, revision: str | None, kwargs: dict[str, Any]) -> LatentRunner:
    """A state dict in Coconut's or CODI's official layout, sent to :func:`load_coconut` / :func:`load_codi`."""
    where = f"load({src!r})"
    family = detection.family
    asked = None if preset is None else (preset if isinstance(preset, str) else preset.name)
    if family is None:
        p = Path(src)
        hint = (f" {p} is a file of the save_pretrained folder {p.parent}: load the folder." if p.is_file() and
                (p.parent / "config.json").is_file() else f" The folder {p} has no config.json." if p.is_dir() else "")
        raise FamilyDetectionError(f"{where}: a state dict that is neither Coconut's (keys under base_causallm.) nor "
                                   f"CODI's (codi.* and prj.* keys) official layout: {detection.describe()}; load a "
                                   "save_pretrained folder, with its config.json and tokenizer, instead." + hint)
    if asked is not None and asked != family:
        raise FamilyMismatchError(f"{where}: preset {asked!r} does not fit this checkpoint, which is a {family} "
                                  f"checkpoint ({detection.reasons[family]}); load it with preset {family!r} or none.")
    if base is None:
        raise SpecError(f"{where}: a {family} checkpoint in its official layout holds the fine-tuned weights only; "
                        f"pass base=, the model it was fine-tuned from (e.g. load(path, base='gpt2')).")
    kw: dict[str, Any] = dict(kwargs)
    if dtype is not None and dtype != "auto":
        kw["dtype"] = torch_dtype(dtype, where)
    if isinstance(device_map, str) and device_map != "auto":
        kw["device"] = device_map
    loader = load_codi if family == "codi" else load_coconut
    return loader(src, base, revision=revision, **kw)


def _state_dict(checkpoint: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors: a file, or a folder with ``model.safetensors`` / ``pytorch_model.bin``."""
    path = Path(checkpoint)
    if path.is_dir():
        for name in ("model.safetensors", "pytorch_model.bin", "checkpoint"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise CheckpointNotFoundError(f"{checkpoint}: no model.safetensors or pytorch_model.bin in this folder.")
    if not path.is_file():
        raise CheckpointNotFoundError(f"{checkpoint}: no such checkpoint file or folder.")
    with library_errors(str(path), f"{path}", f"reading the weights ({path.name})"):
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    return sd.get("state_dict", sd) if isinstance(sd, dict) else sd


def load_codi(checkpoint: str | os.PathLike, base: str | os.PathLike, *, num_latents: int = 6,
              lora_r: int = 128, lora_alpha: int = 32, target_modules: Sequence[str] | None = None,
              prj_dim: int | None = None, layer_norm: bool = True, dtype: torch.dtype | None = None,
              device: str | torch.device | None = None, revision: str | None = None) -> LatentRunner:
    """A runner on a CODI checkpoint in the official layout (``zhenyi4/codi``).

    Rebuilds what CODI's ``test.py`` builds: the base model (``base``: e.g. ``"gpt2"`` or
    ``"meta-llama/Llama-3.2-1B-Instruct"``) resized to ``V + 3`` (pad ``V``, ``<bot>`` ``V+1``,
    ``<eot>`` ``V+2``), wrapped with LoRA (``r=128, alpha=32`` on GPT-2's ``c_attn, c_proj, c_fc`` or
    Llama's attention and MLP projections), the checkpoint's ``codi.*`` weights loaded into it and the
    LoRA merged; the ``prj.1.*``, ``prj.3.*``, ``prj.ln.*`` weights into a
    :class:`~latentprobe.engine.heads.CodiProjection`. The official code has no strings for bot and
    eot; the tokenizer gets ``<bot>`` and ``<eot>`` as names for ids ``V+1`` and ``V+2`` so the
    ``"codi"`` preset reads them.

    Needs ``peft`` (``pip install latentprobe[codi]``). The model and the projection are cast to
    ``dtype`` (default float32) and moved to ``device``.

    Parameters
    ----------
    checkpoint : str | os.PathLike
        The checkpoint file or folder (``codi.*`` and ``prj.*`` weights).
    base : str | os.PathLike
        The base model (folder or hub id).
    num_latents : int
        Latents per segment.
    lora_r, lora_alpha : int
        LoRA rank and alpha.
    target_modules : Sequence[str] | None
        LoRA target modules (default the base's, as CODI's script chooses).
    prj_dim : int | None
        Width of the projection's hidden layer (default read from the weights).
    layer_norm : bool
        Whether the projection ends in a LayerNorm.
    dtype, device, revision
        dtype of the model and projection (default float32), their device, the hub revision of ``base``.

    Returns
    -------
    LatentRunner

    Raises
    ------
    MissingDependencyError
        Without ``peft``.
    ModelStructureError
        If the checkpoint lacks ``codi.`` or ``prj.`` weights, or holds weights the rebuilt model has not.
    """
    if not Path(checkpoint).exists():  # before the base model loads
        raise CheckpointNotFoundError(f"load_codi: {checkpoint}: no such checkpoint file or folder.")
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as err:
        raise MissingDependencyError("load_codi needs peft: pip install 'latentprobe[codi]' (or pip install peft).") from err
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with library_errors(str(base), f"load_codi(base={str(base)!r})", "loading the base model and its tokenizer"):
        tokenizer = AutoTokenizer.from_pretrained(str(base), revision=revision)
        model = AutoModelForCausalLM.from_pretrained(str(base), revision=revision, dtype=torch.float32)
    V = int(model.config.vocab_size)
    if len(tokenizer) != V:
        raise ModelStructureError(f"base {base}: the tokenizer has {len(tokenizer)} tokens but the model's vocabulary "
                                  f"is {V}; CODI's ids V, V+1, V+2 need them equal.")
    names = ["[PAD]" if tokenizer.pad_token is None else "<|codi_pad|>", "<bot>", "<eot>"]
    if tokenizer.pad_token is None:
        tokenizer.add_special_tokens({"pad_token": "[PAD]"})
        names = names[1:]
    tokenizer.add_tokens(names, special_tokens=True)
    got = [tokenizer.convert_tokens_to_ids(t) for t in ("<bot>", "<eot>")]
    if got != [V + 1, V + 2]:
        raise ModelStructureError(f"base {base}: <bot>/<eot> got ids {got}, expected {[V + 1, V + 2]}.")
    model.resize_token_embeddings(V + 3)
    arch = model.config.model_type
    if target_modules is None:
        target_modules = (["c_attn", "c_proj", "c_fc"] if arch == "gpt2" else
                          ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj", "gate_proj"])
    peft_model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=lora_r, lora_alpha=lora_alpha,
                                                  lora_dropout=0.1, target_modules=list(target_modules),
                                                  init_lora_weights=True,
                                                  fan_in_fan_out=arch == "gpt2"))  # GPT-2's Conv1D (peft sets it anyway)
    sd = _state_dict(checkpoint)
    codi = {k[len("codi."):]: v for k, v in sd.items() if k.startswith("codi.")}
    prj = {k: v for k, v in sd.items() if k.startswith("prj.")}
    other = sorted(k for k in sd if not k.startswith(("codi.", "prj.")))
    if not codi or not prj or other:
        raise ModelStructureError(
            f"{checkpoint}: not CODI's official layout ({len(codi)} codi.* and {len(prj)} prj.* weights; "
            f"other keys {other[:5]}); expected the CODI module's state dict (codi.base_model.model.*, prj.1.*, "
            "prj.3.*, prj.ln.*)."
        )
    try:
        res = peft_model.load_state_dict(codi, strict=False)
    except RuntimeError as err:  # shape mismatches (another LoRA rank, another base)
        raise ModelStructureError(f"{checkpoint}: codi.* weights do not fit {base} with LoRA r={lora_r} on "
                                  f"{list(target_modules)}; pass the checkpoint's lora_r / target_modules and its "
                                  f"base model. ({str(err).splitlines()[-1].strip()})") from None
    tied = {k for k in res.missing_keys if "lm_head" in k}  # tied to the input embedding (CODI calls tie_weights)
    missing = [k for k in res.missing_keys if k not in tied]
    if missing or res.unexpected_keys:
        raise UnmappedWeightsError(
            f"{checkpoint}: codi.* weights do not match the rebuilt LoRA model (r={lora_r}, targets "
            f"{list(target_modules)}): missing {missing[:5]}, unexpected {list(res.unexpected_keys)[:5]}; pass the "
            "checkpoint's lora_r / target_modules."
        )
    merged = peft_model.merge_and_unload()
    merged.tie_weights()
    d = int(merged.get_input_embeddings().weight.shape[1])
    proj = CodiProjection(d, prj_dim or int(prj["prj.1.weight"].shape[0]), layer_norm=layer_norm)
    proj.load_state_dict(prj)
    dt = dtype or torch.float32
    merged = merged.to(dtype=dt).eval()
    proj = proj.to(dtype=dt).eval()
    if device is not None:
        merged, proj = merged.to(device), proj.to(device)
    return LatentRunner(merged, tokenizer, get_preset("codi", num_latents=num_latents), projection=proj)


COCONUT_TOKENS = ("<|start-latent|>", "<|end-latent|>", "<|latent|>")


def load_coconut(checkpoint: str | os.PathLike, base: str | os.PathLike = "gpt2", *, num_latents: int = 6,
                 dtype: torch.dtype | None = None, device: str | torch.device | None = None,
                 revision: str | None = None) -> LatentRunner:
    """A runner on a Coconut checkpoint as ``facebookresearch/coconut`` saves it.

    Rebuilds ``run.py``'s model: the base (``"gpt2"``) tokenizer with ``<|start-latent|>``,
    ``<|end-latent|>``, ``<|latent|>`` added in that order as ordinary tokens (50257-50259 on GPT-2),
    ``pad = eos``, the embeddings resized, then the checkpoint's state dict loaded (its
    ``base_causallm.`` prefix, from the Coconut wrapper, is stripped). Prompts: :func:`coconut_prompt`.

    Parameters
    ----------
    checkpoint : str | os.PathLike
        The checkpoint file or folder.
    base : str | os.PathLike
        The base model (folder or hub id).
    num_latents : int
        Latent slots per segment.
    dtype, device, revision
        dtype and device of the model, the hub revision of ``base``.

    Returns
    -------
    LatentRunner

    Raises
    ------
    ModelStructureError
        If the checkpoint's weights do not match the rebuilt model.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not Path(checkpoint).exists():  # before the base model loads
        raise CheckpointNotFoundError(f"load_coconut: {checkpoint}: no such checkpoint file or folder.")
    with library_errors(str(base), f"load_coconut(base={str(base)!r})", "loading the base model and its tokenizer"):
        tokenizer = AutoTokenizer.from_pretrained(str(base), revision=revision)
        model = AutoModelForCausalLM.from_pretrained(str(base), revision=revision, dtype=torch.float32)
    for t in COCONUT_TOKENS:
        tokenizer.add_tokens(t)
    tokenizer.pad_token = tokenizer.eos_token
    model.resize_token_embeddings(len(tokenizer))
    sd = _state_dict(checkpoint)
    if any(k.startswith("base_causallm.") for k in sd):
        sd = {k[len("base_causallm."):]: v for k, v in sd.items() if k.startswith("base_causallm.")}
    res = model.load_state_dict(sd, strict=False)
    missing = [k for k in res.missing_keys if "lm_head" not in k]
    if missing or res.unexpected_keys:
        raise UnmappedWeightsError(f"{checkpoint}: weights do not match {base} with the three Coconut tokens: missing "
                                  f"{missing[:5]}, unexpected {list(res.unexpected_keys)[:5]}.")
    model.tie_weights()
    model = model.to(dtype=dtype or torch.float32).eval()
    if device is not None:
        model = model.to(device)
    return LatentRunner(model, tokenizer, get_preset("coconut", num_latents=num_latents))


def coconut_prompt(tokenizer: PreTrainedTokenizerBase, question: str, num_latents: int = 6) -> list[int]:
    """Ids Coconut's evaluation feeds: ``encode(question + "\\n", add_special_tokens=True)``, then
    ``<|start-latent|>``, ``num_latents`` x ``<|latent|>``, ``<|end-latent|>`` (``dataset.py:188-216``).

    Parameters
    ----------
    tokenizer : PreTrainedTokenizerBase
        Coconut's tokenizer (GPT-2's, with the latent tokens).
    question : str
        The question text.
    num_latents : int
        Latent slots between the markers.

    Returns
    -------
    list[int]
    """
    start, end, lat = (tokenizer.convert_tokens_to_ids(t) for t in COCONUT_TOKENS)
    ids = list(tokenizer.encode(question + "\n", add_special_tokens=True))
    return ids + [start] + [lat] * num_latents + [end]
