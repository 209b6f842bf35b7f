"""Cross-checking recorded latents with TransformerLens (``TransformerBridge``).

latentprobe records residuals through nnsight on the Hugging Face model itself. This module replays
a recorded example through a TransformerLens bridge, so the same activations can be read under
TransformerLens hook names (``blocks.{i}.hook_resid_post``, ``blocks.{i}.attn.hook_pattern``, ...)
and compared with the trace.

* :func:`to_bridge` wraps an in-memory Hugging Face model in a ``TransformerBridge`` without
  touching the model or tokenizer it is given (the bridge rewrites both, so it gets copies) and
  without any network access or package installation.
* :func:`replay_with_cache` runs one recorded example teacher-forced through the bridge: latent
  slot ids are set to the spec's placeholder id, and the recorded vectors ``z`` are written in
  place of the token embeddings at the latent positions by a hook on ``hook_embed`` (the token
  embedding's output, before GPT-2's position embedding is added).
* :func:`latent_residuals` reads ``[k, n_layers + 1, d]`` residuals from the cache in latentprobe's
  layer convention, which maps to TransformerLens names as::

      layer 0      -> blocks.0.hook_resid_pre        (input of decoder layer 0)
      layer i >= 1 -> blocks.{i-1}.hook_resid_post   (output of decoder layer i-1)

Only text models are supported (GPT-2, Llama and the other architectures TransformerLens bridges).
Vision-language models raise :class:`~latentprobe.errors.InputError`: TransformerLens's
Qwen2.5-VL adapter needs torchvision, which latentprobe neither needs nor installs; replay those
traces with ``LatentRunner.intervene(trace, mode="replay")``.

A worked example on a tiny GPT-2 is in :func:`replay_with_cache`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from latentprobe._lens_boot import (_copy_tokenizer, _disable_package_installs, _is_vision_language,
                                    _never_install_torchvision, _offline_boot)
from latentprobe.errors import InputError, InterventionShapeError, ModelStructureError, StepOutOfRangeError
from latentprobe.trace import ExampleTrace, LatentTrace

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens.ActivationCache import ActivationCache
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "BridgeReplay",
    "to_bridge",
    "replay_with_cache",
    "latent_residuals",
    "residual_hook_name",
    "EMBED_HOOK",
]

#: The hook whose output (the token embeddings) the recorded latents are written into.
EMBED_HOOK = "hook_embed"
_EMBED_HOOK_CANONICAL = "embed.hook_out"

_VL_MESSAGE = (
    "replaying vision-language traces through a TransformerLens bridge is not supported: "
    "TransformerLens's vision-language adapters need torchvision, which latentprobe does not install, "
    "and image features would have to be injected as well. Use LatentRunner.intervene(trace, mode='replay') "
    "for a teacher-forced replay of this model's traces."
)


# ---------------------------------------------------------------------------------------------- to_bridge
def to_bridge(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, *, model_name: str | None = None) -> "TransformerBridge":
    """Wrap an in-memory Hugging Face causal LM in a TransformerLens ``TransformerBridge``.

    The bridge gets a deep copy of ``model`` and a tokenizer reloaded from a saved copy of
    ``tokenizer``, so neither object is changed (the bridge switches attention to eager and
    reconfigures its tokenizer). Nothing is downloaded or installed: the Hub is put offline for the
    boot, no modality processor is loaded, and TransformerLens's ``pip install torchvision``
    fallback is disabled for the rest of the process. The bridge is in eval mode on the model's
    device and dtype; its logits equal the model's (up to eager-versus-SDPA attention rounding).

    Parameters
    ----------
    model:
        A Hugging Face causal LM (``GPT2LMHeadModel``, ``LlamaForCausalLM``, ...). Models built from
        a config without ``config.architectures`` are fine: the copy gets its class name.
    tokenizer:
        Its tokenizer (any tokenizer with ``save_pretrained``).
    model_name:
        Name recorded in ``bridge.cfg.model_name`` (default: ``config._name_or_path`` or the class name).
        It is not loaded from anywhere.

    Raises
    ------
    InputError
        For vision-language models (see the module docstring), or a tokenizer that cannot be copied.
    ModelStructureError
        If TransformerLens has no adapter for the architecture, or its adapter needs a library that
        is not installed.

    Returns
    -------
    TransformerBridge
        In eval mode, on the model's device and dtype.

    Examples
    --------
    A tiny GPT-2 over the toy's word-level vocabulary, with Coconut's latent tokens added:

    >>> import torch
    >>> from transformers import GPT2Config, GPT2LMHeadModel
    >>> from latentprobe import LatentRunner, toy
    >>> tok = toy.build_tokenizer()
    >>> _ = tok.add_tokens(["<|start-latent|>", "<|latent|>", "<|end-latent|>"], special_tokens=True)
    >>> _ = torch.manual_seed(0)
    >>> model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=64,
    ...                                    bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id)).eval()
    >>> bridge = to_bridge(model, tok)
    >>> bridge.cfg.n_layers, bridge.cfg.d_model
    (2, 32)
    """
    if not isinstance(model, torch.nn.Module) or getattr(model, "config", None) is None:
        raise ModelStructureError(
            f"to_bridge expects a Hugging Face model (a torch.nn.Module with .config), got {type(model).__name__}."
        )
    if tokenizer is None:
        raise InputError("to_bridge needs the model's tokenizer (the bridge must not fetch one from the Hub).")
    if _is_vision_language(model):
        raise InputError(f"{type(model).__name__}: {_VL_MESSAGE}")
    _disable_package_installs()
    from transformer_lens.model_bridge import TransformerBridge

    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    hf = copy.deepcopy(model).eval()
    if not getattr(hf.config, "architectures", None):
        hf.config.architectures = [type(model).__name__]
    tok = _copy_tokenizer(tokenizer)
    name = model_name or getattr(model.config, "_name_or_path", "") or type(model).__name__
    try:
        with _offline_boot():
            bridge = TransformerBridge.boot_transformers(name, hf_model=hf, tokenizer=tok, device=str(device),
                                                         dtype=dtype)
    except ImportError as err:
        raise ModelStructureError(
            f"TransformerLens cannot bridge {type(model).__name__} in this environment: {err} "
            "latentprobe does not install packages; install it yourself if you need this bridge."
        ) from err
    except ValueError as err:
        if "architecture" not in str(err).lower():
            raise
        reason = str(err).split(". Available architectures")[0].split(" Available architectures")[0]
        raise ModelStructureError(
            f"TransformerLens has no bridge for {type(model).__name__} "
            f"(architectures={list(hf.config.architectures)}, model_type={getattr(hf.config, 'model_type', '')!r}): "
            f"{reason}. transformer_lens.model_bridge.supported_architectures lists the supported ones."
        ) from err
    if getattr(bridge.cfg, "is_multimodal", False):
        bridge.close()
        raise InputError(f"{type(model).__name__}: {_VL_MESSAGE}")
    bridge.eval()
    return bridge


# ---------------------------------------------------------------------------------------------- replay
@dataclass(frozen=True, eq=False)
class BridgeReplay:
    """What :func:`replay_with_cache` returns; unpacks as ``logits, cache = replay``.

    Attributes
    ----------
    logits:
        ``[1, seq, vocab]`` (TransformerLens keeps the batch dimension); ``logits[0, p]`` predicts
        the token at ``p + 1``.
    cache:
        The bridge's ``ActivationCache`` (batch dimension kept: ``cache[name][0, p]``).
    input_ids:
        The ``[seq]`` ids that were fed (latent slots set to the placeholder id).
    latent_positions:
        ``[k]`` positions where the recorded ``z`` replaced the token embedding.
    embed_hook:
        The hook name the latents were written through.
    """

    logits: Float[Tensor, "1 seq vocab"]
    cache: "ActivationCache"
    input_ids: Int[Tensor, "seq"]
    latent_positions: Int[Tensor, "k"]
    embed_hook: str

    def __iter__(self) -> Iterator[Any]:
        return iter((self.logits, self.cache))


def _pick_example(trace_or_example: LatentTrace | ExampleTrace, index: int | None) -> ExampleTrace:
    if isinstance(trace_or_example, ExampleTrace):
        if index not in (None, 0, trace_or_example.index):
            raise InputError(f"index={index} given with a single ExampleTrace; pass the LatentTrace to choose by index.")
        return trace_or_example
    if isinstance(trace_or_example, LatentTrace):
        n = len(trace_or_example)
        if index is None:
            if n != 1:
                raise InputError(
                    f"the trace holds {n} examples; pass index=<example index> (or one ExampleTrace) to choose one."
                )
            index = 0
        if not -n <= index < n:
            raise StepOutOfRangeError(f"index {index} out of range: the trace holds {n} example(s).")
        return trace_or_example[index]
    raise InputError(
        f"replay_with_cache expects a LatentTrace or an ExampleTrace, got {type(trace_or_example).__name__}."
    )


def _embed_hook_name(bridge: Any) -> str:
    hooks = bridge.hook_dict
    for name in (EMBED_HOOK, _EMBED_HOOK_CANONICAL):
        if name in hooks:
            return name
    raise ModelStructureError(
        f"the bridge for {getattr(bridge.cfg, 'architecture', '?')} has no {EMBED_HOOK!r} / "
        f"{_EMBED_HOOK_CANONICAL!r} hook to write latents through."
    )


def replay_with_cache(bridge: "TransformerBridge", trace_or_example: LatentTrace | ExampleTrace, *,
                      placeholder_id: int | None = None, index: int | None = None,
                      names_filter: str | Sequence[str] | Callable[[str], bool] | None = None) -> BridgeReplay:
    """Run one recorded example teacher-forced through ``bridge`` and cache its activations.

    The example's full sequence (prompt, latents, close marker, answer) is fed in one forward.
    Latent slot ids are first set to ``placeholder_id`` (as the runner does before any replay);
    then a hook on ``hook_embed`` writes the recorded ``z[k]`` in place of the token embedding at
    ``latent_positions[k]``. With the recorded latents fixed, the residuals at the latent
    positions and the logits at the answer positions reproduce the trace.

    Parameters
    ----------
    bridge:
        From :func:`to_bridge` (same weights as the model that recorded the trace).
    trace_or_example:
        An :class:`~latentprobe.trace.ExampleTrace`, or a :class:`~latentprobe.trace.LatentTrace`
        with ``index=`` (optional when it holds one example).
    placeholder_id:
        The id fed at latent slots: ``runner.rspec.placeholder_id``. If omitted and a LatentTrace is
        given, it is read from ``trace.spec`` and the bridge's tokenizer.
    names_filter:
        Passed to ``bridge.run_with_cache`` (default: cache every hook). :func:`latent_residuals`
        needs ``blocks.0.hook_resid_pre`` and every ``blocks.{i}.hook_resid_post``.

    index:
        Which example of a LatentTrace to replay.

    Returns
    -------
    BridgeReplay
        Unpacks as ``logits, cache``.

    Raises
    ------
    InputError
        For examples with image features or bridges of vision-language models (use
        ``LatentRunner.intervene(trace, mode="replay")``), or when ``placeholder_id`` is missing.
    InterventionShapeError
        If the recorded latents do not match the bridge's hidden size.

    Notes
    -----
    Plain causal attention is used: a trace recorded with a ``mask_rule`` is not reproduced.

    Examples
    --------
    A Coconut run of a tiny GPT-2 (as in :func:`to_bridge`), replayed through the bridge: the residuals at
    the latent positions reproduce the recorded ones:

    >>> import torch
    >>> from transformers import GPT2Config, GPT2LMHeadModel
    >>> from latentprobe import LatentRunner, toy
    >>> tok = toy.build_tokenizer()
    >>> _ = tok.add_tokens(["<|start-latent|>", "<|latent|>", "<|end-latent|>"], special_tokens=True)
    >>> _ = torch.manual_seed(0)
    >>> model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=64,
    ...                                    bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id)).eval()
    >>> runner = LatentRunner(model, tok, "coconut")
    >>> latents = " ".join(["<|latent|>"] * runner.spec.num_latents)
    >>> trace = runner.run([f"what is the red circle ? <|start-latent|> {latents} <|end-latent|>"],
    ...                    max_new_tokens=4, progress=False)
    >>> logits, cache = replay_with_cache(to_bridge(model, tok), trace[0], placeholder_id=runner.rspec.placeholder_id)
    >>> res = latent_residuals(cache, trace[0].latent_positions)
    >>> tuple(res.shape), bool((res - trace[0].hidden).abs().max() < 1e-4)
    ((6, 3, 32), True)
    """
    e = _pick_example(trace_or_example, index)
    if e.image_embeds is not None or getattr(bridge.cfg, "is_multimodal", False):
        raise InputError(f"example {e.example_id!r}: {_VL_MESSAGE}")
    if placeholder_id is None:
        if isinstance(trace_or_example, LatentTrace) and getattr(bridge, "tokenizer", None) is not None:
            placeholder_id = trace_or_example.spec.resolve(
                bridge.tokenizer, vocab_size=getattr(bridge.cfg, "d_vocab", None)).placeholder_id
        else:
            raise InputError(
                "replay_with_cache needs placeholder_id= (runner.rspec.placeholder_id), the id the runner feeds at "
                "latent slots; it can only be read automatically from a LatentTrace's spec."
            )
    d_model = int(bridge.cfg.d_model)
    vocab = getattr(bridge.cfg, "d_vocab", None)
    if int(placeholder_id) < 0 or (vocab and int(placeholder_id) >= int(vocab)):
        raise InputError(f"placeholder_id={placeholder_id} is outside the bridge's vocabulary (size {vocab}).")
    pos = e.latent_positions.long().cpu()
    k = int(pos.numel())
    if e.z.shape[0] != k or (k and e.z.shape[-1] != d_model):
        raise InterventionShapeError(
            f"example {e.example_id!r}: z has shape {tuple(e.z.shape)} for {k} latent position(s); the bridge's "
            f"hidden size is {d_model}. Was the trace recorded with this model?"
        )
    n = e.seq_len
    if k and (int(pos.min()) < 0 or int(pos.max()) >= n):
        raise StepOutOfRangeError(f"example {e.example_id!r}: latent positions {pos.tolist()} outside a sequence of {n}.")
    ids = e.input_ids.long().cpu().clone()
    if k:
        ids[pos] = int(placeholder_id)
    hook_name = _embed_hook_name(bridge)
    device = torch.device(str(bridge.cfg.device)) if getattr(bridge.cfg, "device", None) else torch.device("cpu")
    z = e.z.detach()

    def write_latents(embeds: Tensor, hook: Any = None) -> Tensor:
        if not k:
            return embeds
        out = embeds.clone()
        out[0, pos.to(out.device)] = z.to(out.device, out.dtype)
        return out

    with torch.no_grad(), bridge.hooks(fwd_hooks=[(hook_name, write_latents)]):
        logits, cache = bridge.run_with_cache(
            ids[None].to(device), names_filter=names_filter,
            attention_mask=torch.ones(1, n, dtype=torch.long, device=device),
        )
    return BridgeReplay(logits=logits.detach(), cache=cache, input_ids=ids, latent_positions=pos.clone(),
                        embed_hook=hook_name)


# ---------------------------------------------------------------------------------------------- residuals
def residual_hook_name(layer: int, n_layers: int | None = None) -> str:
    """The TransformerLens hook holding latentprobe residual ``layer``.

    0 is ``blocks.0.hook_resid_pre`` (input of decoder layer 0); ``i >= 1`` is
    ``blocks.{i-1}.hook_resid_post`` (output of decoder layer ``i-1``). Negative layers count
    from the end when ``n_layers`` is given.

    Parameters
    ----------
    layer : int
        A residual layer in latentprobe's convention (``0..n_layers``).
    n_layers : int, optional
        The model's number of decoder layers, needed for negative ``layer``.

    Returns
    -------
    str
        The hook name.

    Examples
    --------
    >>> residual_hook_name(0), residual_hook_name(3), residual_hook_name(-1, n_layers=12)
    ('blocks.0.hook_resid_pre', 'blocks.2.hook_resid_post', 'blocks.11.hook_resid_post')
    """
    layer = int(layer)
    if layer < 0:
        if n_layers is None:
            raise StepOutOfRangeError(f"layer {layer}: negative layers need n_layers.")
        layer += n_layers + 1
    if layer < 0 or (n_layers is not None and layer > n_layers):
        top = "n_layers" if n_layers is None else str(n_layers)
        raise StepOutOfRangeError(f"residual layer {layer} out of range 0..{top}.")
    return "blocks.0.hook_resid_pre" if layer == 0 else f"blocks.{layer - 1}.hook_resid_post"


_CANONICAL = {"hook_resid_pre": "hook_in", "hook_resid_post": "hook_out"}


def _lookup(cache: Any, name: str) -> Tensor | None:
    names = [name]
    block, _, hook = name.rpartition(".")
    if hook in _CANONICAL:
        names.append(f"{block}.{_CANONICAL[hook]}")
    store = getattr(cache, "cache_dict", cache)
    for nm in names:
        if isinstance(store, Mapping) and nm in store:
            return store[nm]
    return None


def latent_residuals(cache: ActivationCache | Mapping[str, Tensor], positions: Int[Tensor, "k"] | Sequence[int], *, batch: int = 0
                     ) -> Float[Tensor, "k layer d"]:
    """Residuals ``[k, n_layers + 1, d]`` at ``positions`` in latentprobe's layer convention.

    Index 0 is ``blocks.0.hook_resid_pre`` (for GPT-2 it includes the position embedding), index
    ``i`` is ``blocks.{i-1}.hook_resid_post``; this is the layout of
    :attr:`ExampleTrace.hidden <latentprobe.trace.ExampleTrace>`, so
    ``latent_residuals(cache, e.latent_positions)`` compares directly with ``e.hidden``.

    Parameters
    ----------
    cache:
        An ``ActivationCache`` (or a dict of name -> tensor), with or without the batch dimension.
    positions:
        Sequence positions to read.
    batch:
        Which batch row, for caches that keep the batch dimension.

    Returns
    -------
    Tensor
        ``[k, n_layers + 1, d]`` float32 residuals, on the CPU.

    Examples
    --------
    A dict cache of two blocks (:func:`replay_with_cache` gives the bridge's own):

    >>> import torch
    >>> cache = {name: torch.full((5, 4), float(i)) for i, name in enumerate(
    ...     ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_post", "blocks.1.hook_resid_post"])}
    >>> res = latent_residuals(cache, [1, 3])
    >>> tuple(res.shape), res[0, :, 0].tolist()
    ((2, 3, 4), [0.0, 1.0, 2.0])

    Raises
    ------
    InputError
        If the cache lacks the residual hooks (e.g. a ``names_filter`` left them out).
    """
    pos = torch.as_tensor(positions, dtype=torch.long).flatten().cpu()
    first = _lookup(cache, "blocks.0.hook_resid_pre")
    if first is None:
        raise InputError(
            "the cache has no 'blocks.0.hook_resid_pre'; run replay_with_cache without names_filter, or include "
            "'blocks.0.hook_resid_pre' and every 'blocks.{i}.hook_resid_post'."
        )
    layers = [first]
    i = 0
    while (t := _lookup(cache, f"blocks.{i}.hook_resid_post")) is not None:
        layers.append(t)
        i += 1
    n_blocks = _n_layers(cache)
    if n_blocks is not None and i != n_blocks:
        raise InputError(
            f"the cache holds hook_resid_post for {i} of {n_blocks} blocks; include every "
            "'blocks.{i}.hook_resid_post' in names_filter."
        )
    out = []
    for t in layers:
        t = t.detach()
        if t.dim() == 3:
            t = t[batch]
        if pos.numel() and (int(pos.min()) < -t.shape[0] or int(pos.max()) >= t.shape[0]):
            raise StepOutOfRangeError(f"positions {pos.tolist()} outside a cached sequence of {t.shape[0]}.")
        out.append(t[pos.to(t.device)].float().cpu())
    return torch.stack(out, dim=1)


def _n_layers(cache: Any) -> int | None:
    model = getattr(cache, "model", None)
    cfg = getattr(model, "cfg", None)
    n = getattr(cfg, "n_layers", None)
    return int(n) if n is not None else None
