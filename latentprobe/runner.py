"""The latent-reasoning runner: our own generation loop over a Hugging Face model, driven through nnsight.

One loop serves every family. Each sequence of a batch carries its own state (text decoding,
latent mode, forced tokens, finished), so examples may open latent mode at different steps.
Every forward pass goes through an nnsight trace that reads the final-norm output (a latent's
source) and the decoder layers' outputs (per-layer residuals) and, when asked, patches residuals
at latent positions. Latents are written in place of the token embedding (``inputs_embeds``),
exactly where every implementation writes them.

Three intervention modes (:meth:`LatentRunner.intervene`):

* ``"replay"``: one teacher-forced forward over prompt + generated ids with the recorded latents
  (patched where asked); later latents stay as recorded. The recorded answer is scored.
* ``"propagate"``: patch latent k, regenerate latents k+1..K and the answer from the state just
  before latent k.
* ``"redecode"``: keep all latents fixed (recorded or patched) and decode only the answer.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from nnsight import NNsight
from torch import Tensor
from tqdm.auto import tqdm

from latentprobe.seeding import torch_generator
from latentprobe.errors import (ImageBatchError, InputError, InterventionError, InterventionShapeError, SpecError,
                                StepOutOfRangeError)
from latentprobe.interventions import Intervention, as_intervention
from latentprobe.masks import MaskRule, segment_attention_mask
from latentprobe.models import ModelParts, locate_parts
from latentprobe.spec import LatentSpec, ResolvedSpec, get_preset
from latentprobe.trace import ExampleTrace, LatentTrace, Segment

__all__ = ["LatentRunner", "MaskRule", "GenerationConfig"]

LogitsProcessor = Callable[[list[int], Float[Tensor, "vocab"], int], Float[Tensor, "vocab"]]

_LAT = ("lat",)


@dataclass
class GenerationConfig:
    max_new_tokens: int = 32
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    seed: int = 0

    def validate(self) -> None:
        if self.max_new_tokens < 1:
            raise InputError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}.")
        if self.do_sample and self.temperature <= 0:
            raise InputError(f"temperature must be > 0 when sampling, got {self.temperature}.")


@dataclass
class _Patch:
    """Replace values at one example's latent step: residual ``layer`` (0 = the fed vector)."""

    step: int
    layers: tuple[int, ...]
    fn: Intervention


@dataclass
class _Row:
    """Per-sequence state of the loop."""

    index: int
    example_id: str
    ids: list[int]
    segs: list[int]
    z_at: dict[int, Tensor]  # position -> vector fed there (latent slots in the prefix)
    image_embeds: Tensor | None
    grid_thw: Tensor | None
    prompt_len: int
    mode: str = "text"  # text | latent
    queue: deque = field(default_factory=deque)
    lat_count: int = 0  # latents fed in the current segment
    lat_total: int = 0  # latents fed in all segments
    segments_done: int = 0
    finished: bool = False
    budget_offset: int = 0  # positions after the prompt that a redecode dropped
    gen: torch.Generator | None = None
    # records
    lat_pos: list[int] = field(default_factory=list)
    lat_z: list[Tensor] = field(default_factory=list)
    lat_h: list[Tensor] = field(default_factory=list)
    lat_hidden: list[Tensor] = field(default_factory=list)
    text_lp: dict[int, float] = field(default_factory=dict)  # position -> logprob of the free token there
    dist_at: dict[int, Tensor] = field(default_factory=dict)  # answer-start position -> full logprobs
    patches: dict[int, _Patch] = field(default_factory=dict)  # latent step -> patch
    no_more_latents: bool = False
    captured_positions: Tensor | None = None
    captured_hidden: Tensor | None = None
    source: ExampleTrace | None = None  # the recorded example a resumed row comes from
    meta: dict[str, Any] = field(default_factory=dict)


class LatentRunner:
    """Run a latent-reasoning model through its latent loop, record every latent, intervene on them.

    Parameters
    ----------
    model:
        A Hugging Face causal LM (``Qwen2_5_VLForConditionalGeneration``, ``GPT2LMHeadModel``,
        ``LlamaForCausalLM``, ...), already loaded. It is put in eval mode.
    tokenizer:
        The checkpoint's tokenizer; every marker id is read from it.
    spec:
        A :class:`~latentprobe.spec.LatentSpec` or a preset name (``"mirage"``, ``"coconut"``, ...).
    projection:
        ``f`` for specs with ``projection="module"`` (e.g. CODI's MLP + LayerNorm). Ignored otherwise.
    mask_rule:
        Optional extra attention constraint by segment (the toy variants use it to cut causal edges).
    image_processor:
        ``images -> (pixel_values, image_grid_thw)``. Defaults to a Qwen2-VL-exact preprocessing
        that needs no torchvision (images must have sides that are multiples of 28 px).
    layers, norm, embed, lm_head:
        Dotted module paths, for architectures that are not found automatically.

    Examples
    --------
    >>> runner = LatentRunner(model, tokenizer, "mirage")           # doctest: +SKIP
    >>> trace = runner.run(["<|vision_start|><|image_pad|><|vision_end|> what colour ?"],
    ...                    images=[img], max_new_tokens=8)            # doctest: +SKIP
    >>> trace[0].z.shape                                             # doctest: +SKIP
    torch.Size([4, 2048])
    """

    def __init__(self, model: torch.nn.Module, tokenizer: Any, spec: LatentSpec | str, *,
                 projection: Callable[[Tensor], Tensor] | None = None, mask_rule: MaskRule | None = None,
                 image_processor: Callable[[list[np.ndarray]], tuple[Tensor, Tensor]] | None = None,
                 layers: str | None = None, norm: str | None = None, embed: str | None = None,
                 lm_head: str = "lm_head") -> None:
        self.parts: ModelParts = locate_parts(model, layers=layers, norm=norm, embed=embed, lm_head=lm_head)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.spec: LatentSpec = get_preset(spec) if isinstance(spec, str) else spec
        self.rspec: ResolvedSpec = self.spec.resolve(tokenizer)
        if self.spec.projection == "module" and projection is None:
            raise SpecError(
                f"spec {self.spec.name!r} feeds f(h) through a projection module; pass projection=<module> "
                "(e.g. latentprobe.CodiProjection loaded with the checkpoint's weights)."
            )
        self.projection = projection if self.spec.projection == "module" else None
        self.mask_rule = mask_rule
        self.image_processor = image_processor
        self.nn = NNsight(model)
        self._layers_env = _path_getter(self.parts.layers_path)
        self._norm_env = _path_getter(self.parts.norm_path)
        p = next(model.parameters())
        self.device, self.dtype = p.device, p.dtype

    # ------------------------------------------------------------------ public attributes
    @property
    def n_layers(self) -> int:
        """Number of decoder layers (residual layers are ``0..n_layers``; 0 is the fed vector)."""
        return self.parts.n_layers

    @property
    def hidden_size(self) -> int:
        """Width of the residual stream (and of every latent)."""
        return self.parts.hidden_size

    @property
    def is_vlm(self) -> bool:
        """Whether the model takes images."""
        return self.parts.is_vlm

    @property
    def resolved(self) -> ResolvedSpec:
        """The spec with every marker id read from this runner's tokenizer."""
        return self.rspec

    # ------------------------------------------------------------------ public API
    def run(self, prompts: Sequence[str] | Sequence[Sequence[int]], images: Sequence[Any] | None = None, *,
            example_ids: Sequence[str] | None = None, max_new_tokens: int = 32, do_sample: bool = False,
            temperature: float = 1.0, top_k: int | None = None, seed: int = 0, batch_size: int = 8,
            capture_positions: str | Callable[[Tensor, Tensor], Sequence[int]] | None = None,
            logits_processor: LogitsProcessor | None = None, add_special_tokens: bool = False,
            progress: bool = True) -> LatentTrace:
        """Generate with the latent loop and record everything.

        Parameters
        ----------
        prompts:
            Strings (tokenised without special tokens unless ``add_special_tokens``) or id lists.
            For vision-language models each image is one ``<|image_pad|>`` (the model's image
            token) in the prompt; it is expanded to the image's number of tokens.
        images:
            One entry per prompt: ``None``, an ``HxWx3`` uint8 array, or a list of them.
        max_new_tokens:
            Budget of positions after the prompt, latents and markers included (as in Hugging Face
            ``generate``). A latent segment that has started is always completed.
        capture_positions:
            Also record every layer's hidden state at chosen prompt positions: ``"image"``,
            ``"prompt"`` (all prompt positions) or a callable ``(ids, segments) -> positions``.
        logits_processor:
            ``(ids_so_far, logits, example_index) -> logits`` applied before choosing a text token
            (recorded log-probabilities are the model's own, before processing).

        Returns
        -------
        LatentTrace
        """
        cfg = GenerationConfig(max_new_tokens, do_sample, temperature, top_k, seed)
        cfg.validate()
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}.")
        rows = self._build_rows(prompts, images, example_ids)
        for r in rows:
            r.gen = _row_generator(seed, r.example_id, "run")
        out: list[ExampleTrace] = []
        for batch in _batches(rows, batch_size, progress, "generate"):
            self._prefill_and_decode(batch, cfg, logits_processor, capture_positions)
            out.extend(self._finish(r) for r in batch)
        config = {"mode": "run", "max_new_tokens": max_new_tokens, "do_sample": do_sample,
                  "temperature": temperature, "top_k": top_k, "seed": seed, "model": type(self.model).__name__}
        return LatentTrace(tuple(out), self.spec, config)

    def intervene(self, trace: LatentTrace, intervention: Any = None, *, steps: Sequence[int] | None = None,
                  layers: Sequence[int] = (0,), mode: str = "replay", max_new_tokens: int | None = None,
                  batch_size: int = 8, drop_latents: bool = False,
                  logits_processor: LogitsProcessor | None = None, seed: int | None = None,
                  progress: bool = True) -> LatentTrace:
        """Apply ``intervention`` to latents of every example of ``trace`` and return the new trace.

        Parameters
        ----------
        intervention:
            An :class:`~latentprobe.interventions.Intervention` or a callable ``(z, step, example) -> z``;
            ``None`` re-runs the mode unchanged (a control: it must reproduce the trace).
        steps:
            Latent steps to change (default: all of each example's steps).
        layers:
            Residual layers to patch at those steps: 0 is the fed vector z; ``i >= 1`` is the output
            of decoder layer ``i-1`` at the latent position.
        mode:
            ``"replay"``, ``"propagate"`` or ``"redecode"`` (see the module docstring).
        drop_latents:
            ``redecode`` only: remove the latent slots entirely, keeping the open/close markers.

        Returns
        -------
        LatentTrace whose examples hold the new latents, hidden states and answer. In replay mode
        ``answer_ids`` are the teacher-forced greedy predictions at the recorded answer positions and
        ``forced_logprobs`` score the recorded answer tokens.
        """
        if mode not in ("replay", "propagate", "redecode"):
            raise InterventionError(f"mode={mode!r}; use 'replay', 'propagate' or 'redecode'.")
        fn = as_intervention(intervention) if intervention is not None else None
        n_res = self.parts.n_layers + 1
        layers = tuple(sorted({int(l) for l in layers}))
        bad = [l for l in layers if not 0 <= l < n_res]
        if bad or not layers:
            raise StepOutOfRangeError(
                f"layers {list(layers) if not bad else bad} out of range: residual layers are 0..{n_res - 1} "
                f"(0 = the fed latent, i = output of decoder layer i-1)."
            )
        if drop_latents and mode != "redecode":
            raise InterventionError("drop_latents=True is a redecode operation; pass mode='redecode'.")
        if fn is not None:
            fn.check(self.parts.hidden_size, trace)
        cfg = GenerationConfig(
            max_new_tokens if max_new_tokens is not None else int(trace.config.get("max_new_tokens", 32)),
            bool(trace.config.get("do_sample", False)), float(trace.config.get("temperature", 1.0)),
            trace.config.get("top_k"), int(seed if seed is not None else trace.config.get("seed", 0)))
        cfg.validate()
        chosen = [e.check_steps(steps) for e in trace.examples]
        out: list[ExampleTrace] = []
        for idx in _batches(list(range(len(trace))), batch_size, progress, mode):
            exs = [trace.examples[i] for i in idx]
            if mode == "replay":
                out.extend(self._replay(exs, [chosen[i] for i in idx], layers, fn))
            else:
                out.extend(self._resume(exs, [chosen[i] for i in idx], layers, fn, mode, cfg,
                                        logits_processor, drop_latents))
        config = dict(trace.config)
        config.update({"mode": mode, "intervention": None if fn is None else fn.to_config(),
                       "steps": None if steps is None else sorted({int(s) for s in steps}),
                       "layers": list(layers), "drop_latents": drop_latents, "source_mode": trace.config.get("mode")})
        return LatentTrace(tuple(out), trace.spec, config)

    # ------------------------------------------------------------------ input building
    def _tokenize(self, prompt: str | Sequence[int], add_special_tokens: bool = False) -> list[int]:
        if isinstance(prompt, str):
            return list(self.tokenizer(prompt, add_special_tokens=add_special_tokens)["input_ids"])
        return [int(t) for t in prompt]

    def _process_images(self, imgs: list[np.ndarray]) -> tuple[Tensor, Tensor]:
        if self.image_processor is None:
            from latentprobe.images import to_pixel_values

            try:
                pv, thw = to_pixel_values(imgs)
            except ValueError as err:
                raise ImageBatchError(f"{err}; or pass image_processor= (e.g. the checkpoint's processor).") from err
        else:
            res = self.image_processor(imgs)
            if isinstance(res, tuple):
                pv, thw = res
            else:  # a Hugging Face image processor's BatchFeature
                pv, thw = res["pixel_values"], res["image_grid_thw"]
        return torch.as_tensor(pv), torch.as_tensor(thw).long()

    def _build_rows(self, prompts: Sequence[Any], images: Sequence[Any] | None,
                    example_ids: Sequence[str] | None) -> list[_Row]:
        if isinstance(prompts, (str, bytes)):
            raise InputError("prompts must be a list of prompts, not a single string; wrap it: [prompt].")
        prompts = list(prompts)
        if not prompts:
            raise InputError("no prompts given.")
        if example_ids is not None and len(example_ids) != len(prompts):
            raise InputError(f"{len(example_ids)} example_ids for {len(prompts)} prompts.")
        ids_list = [self._tokenize(p) for p in prompts]
        img_tok = self.parts.image_token_id if self.parts.is_vlm else None
        if images is not None:
            if not self.parts.is_vlm:
                raise ImageBatchError(f"{type(self.model).__name__} takes no images; pass images=None.")
            if len(images) != len(prompts):
                raise ImageBatchError(
                    f"{len(images)} image entries for {len(prompts)} prompts; give one entry per prompt "
                    "(None for a prompt without image, a list for several images)."
                )
        rows = []
        for i, ids in enumerate(ids_list):
            eid = str(example_ids[i]) if example_ids is not None else str(i)
            imgs = [] if images is None or images[i] is None else (
                list(images[i]) if isinstance(images[i], (list, tuple)) else [images[i]])
            n_slots = sum(1 for t in ids if img_tok is not None and t == img_tok)
            if n_slots != len(imgs):
                raise ImageBatchError(
                    f"prompt {i} ({eid!r}) has {n_slots} image placeholder(s) but {len(imgs)} image(s); put one "
                    f"image token (id {img_tok}) in the prompt per image."
                )
            image_embeds = grid = None
            if imgs:
                pv, grid = self._process_images([np.asarray(im) for im in imgs])
                with torch.no_grad():
                    image_embeds = self.parts.image_features(pv.to(self.device, self.dtype), grid.to(self.device))
                image_embeds = image_embeds.float().cpu()
                ids = _expand_image_tokens(ids, img_tok, grid, self.parts.merge_size)
            segs = [Segment.IMAGE if (img_tok is not None and t == img_tok) else Segment.TEXT for t in ids]
            row = _Row(index=i, example_id=eid, ids=[], segs=[], z_at={}, image_embeds=image_embeds,
                       grid_thw=grid, prompt_len=len(ids))
            self._init_prompt_state(row, ids, segs)
            rows.append(row)
        return rows

    def _init_prompt_state(self, row: _Row, ids: list[int], segs: list[int]) -> None:
        rs, spec = self.rspec, self.spec
        if spec.open_mode == "appended":
            ids = ids + [rs.open_id]
            segs = segs + [Segment.OPEN]
            row.prompt_len = len(ids)
            row.mode, row.lat_count = "latent", 0
        elif spec.open_mode == "prompt":
            try:
                o = ids.index(rs.open_id)
            except ValueError:
                raise InputError(
                    f"example {row.example_id!r}: spec {spec.name!r} expects the open marker {spec.open_token!r} "
                    "and latent slots in the prompt, but the prompt has no open marker."
                ) from None
            j = o + 1
            while j < len(ids) and ids[j] == rs.slot_id:
                j += 1
            if j == o + 1:
                raise InputError(
                    f"example {row.example_id!r}: no {spec.slot_token!r} slots follow the open marker in the prompt."
                )
            segs = list(segs)
            segs[o] = Segment.OPEN
            row.queue.extend([_LAT] * (j - o - 1))
            closed = False
            for t in ids[j:]:
                is_close = t == rs.close_id and not closed
                closed = closed or is_close
                row.queue.append(("tok", t, Segment.CLOSE if is_close else Segment.TEXT))
            ids, segs = ids[: o + 1], segs[: o + 1]
            row.mode = "text"  # the queue feeds the prompt's latent slots, then its forced tail
            row.segments_done = 1
        row.ids, row.segs = list(ids), list(segs)

    # ------------------------------------------------------------------ forward passes
    def _forward(self, embeds: Tensor, attn: Tensor, pos: Tensor, cache: Any,
                 gather: tuple[Tensor, Tensor] | None, layer_patches: list[tuple[int, Tensor, Tensor, Callable]]
                 ) -> dict[str, Tensor]:
        """One nnsight-traced forward. Returns last-position norm output and logits, residuals at
        ``gather`` (rows, cols) for every residual layer, and norm outputs/logits at ``gather``."""
        with torch.no_grad():
            saved = self._traced(embeds, attn, pos, cache, gather, layer_patches)
        out = {k: v for k, v in saved.items() if k != "res"}
        if gather is not None:
            out["residuals"] = torch.stack(list(saved["res"]), dim=1)  # [n, L+1, d]
        return out

    def _traced(self, embeds: Tensor, attn: Tensor, pos: Tensor, cache: Any,
                gather: tuple[Tensor, Tensor] | None, layer_patches: list) -> dict[str, Any]:
        layers_of = self._layers_env
        norm_of = self._norm_env
        n_layers = self.parts.n_layers
        saved: dict[str, Any] = {}
        with self.nn.trace(inputs_embeds=embeds, attention_mask=attn, position_ids=pos,
                           past_key_values=cache, use_cache=True):
            layers = layers_of(self.nn)
            res = []
            if gather is not None:
                x0 = layers[0].input
                res.append(x0[gather[0], gather[1]].clone().save())
            for i in range(n_layers):
                out = layers[i].output
                hs = out[0] if isinstance(out, tuple) else out
                for (li, rws, cls, fn) in layer_patches:
                    if li == i + 1:
                        hs[rws, cls] = fn(hs[rws, cls]).to(hs.dtype)
                if gather is not None:
                    res.append(hs[gather[0], gather[1]].clone().save())
            normed = norm_of(self.nn).output
            saved["h_last"] = normed[:, -1].clone().save()
            if gather is not None:
                saved["h_gather"] = normed[gather[0], gather[1]].clone().save()
            logits = self.nn.output.logits
            saved["logits_last"] = logits[:, -1].clone().save()
            if gather is not None:
                saved["logits_gather"] = logits[gather[0], gather[1]].clone().save()
            saved["res"] = res
        return saved

    def _embed_prefix(self, rows: list[_Row]) -> tuple[Tensor, Tensor, Tensor, list[int], Tensor | None]:
        """Left-padded prefix embeddings, 2-D mask, positions, pad offsets and rope deltas."""
        B = len(rows)
        T = max(len(r.ids) for r in rows)
        pad = self.rspec.pad_id
        ids = torch.full((B, T), pad, dtype=torch.long)
        mask = torch.zeros((B, T), dtype=torch.long)
        offsets = []
        for b, r in enumerate(rows):
            off = T - len(r.ids)
            offsets.append(off)
            rid = torch.tensor(r.ids, dtype=torch.long)
            # latent slots carry a harmless placeholder id (rotary positions are derived from ids)
            for p in r.z_at:
                rid[p] = self.rspec.placeholder_id
            ids[b, off:] = rid
            mask[b, off:] = 1
        with torch.no_grad():
            embeds = self.parts.embed(ids.to(self.device)).clone()
        for b, r in enumerate(rows):
            off = offsets[b]
            if r.image_embeds is not None:
                img_pos = [p for p, s in enumerate(r.segs) if s == Segment.IMAGE]
                if len(img_pos) != r.image_embeds.shape[0]:
                    raise ImageBatchError(
                        f"example {r.example_id!r}: {len(img_pos)} image positions but {r.image_embeds.shape[0]} image features."
                    )
                embeds[b, torch.tensor(img_pos) + off] = r.image_embeds.to(self.device, embeds.dtype)
            for p, z in r.z_at.items():
                embeds[b, p + off] = z.to(self.device, embeds.dtype)
        deltas = None
        if self.parts.is_vlm:
            tt = torch.zeros((B, T), dtype=torch.long)
            for b, r in enumerate(rows):
                tt[b, offsets[b]:] = torch.tensor([1 if s == Segment.IMAGE else 0 for s in r.segs])
            grids = [r.grid_thw for r in rows if r.grid_thw is not None]
            grid = torch.cat(grids).to(self.device) if grids else None
            with torch.no_grad():
                pos, deltas = self.parts.rope_index(ids.to(self.device), tt.to(self.device), grid, mask.to(self.device))
            deltas = deltas.reshape(B).cpu()
        else:
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
        return embeds, mask, pos.to(self.device), offsets, deltas

    def _attention(self, col_segs: Tensor, col_mask: Tensor, q_len: int) -> Tensor:
        """2-D padding mask, or a 4-D additive mask when a mask rule is set. ``col_segs`` [B, T]."""
        if self.mask_rule is None:
            return col_mask.to(self.device)
        return segment_attention_mask(col_segs, col_mask, q_len, self.mask_rule, self.dtype).to(self.device)

    def _new_cache(self) -> Any:
        from transformers import DynamicCache

        return DynamicCache(config=self.model.config)

    # ------------------------------------------------------------------ the loop
    def _latent_fn(self, h: Tensor) -> Tensor:
        if self.projection is None:
            return h
        with torch.no_grad():
            return self.projection(h.to(self.device)).to(h.dtype)

    def _prefill_and_decode(self, rows: list[_Row], cfg: GenerationConfig, processor: LogitsProcessor | None,
                            capture: Any = None, gather_extra: list[list[int]] | None = None) -> dict[str, Any]:
        """Prefill the rows' prefixes, then step until every row is finished. Returns prefill gathers."""
        embeds, mask, pos, offsets, deltas = self._embed_prefix(rows)
        B, T = mask.shape
        col_segs = torch.full((B, T), Segment.PAD, dtype=torch.long)
        for b, r in enumerate(rows):
            col_segs[b, offsets[b]:] = torch.tensor(r.segs)
        # positions to gather in the prefill: latent slots (replay/propagate), captures, extras
        want: list[list[int]] = []
        for b, r in enumerate(rows):
            ps = set(r.z_at)
            if capture is not None:
                cp = _capture_positions(capture, r)
                r.captured_positions = torch.tensor(cp, dtype=torch.long)
                ps |= set(cp)
            if gather_extra is not None:
                ps |= set(gather_extra[b])
            want.append(sorted(ps))
        gather = None
        if any(want):
            gr = torch.tensor([b for b, ps in enumerate(want) for _ in ps], dtype=torch.long)
            gc = torch.tensor([p + offsets[b] for b, ps in enumerate(want) for p in ps], dtype=torch.long)
            gather = (gr.to(self.device), gc.to(self.device))
        patches = self._prefix_layer_patches(rows, offsets)
        cache = self._new_cache()
        attn = self._attention(col_segs, mask, T)
        out = self._forward(embeds, attn, pos, cache, gather, patches)
        pre: dict[str, Any] = {"offsets": offsets}
        if gather is not None:
            k = 0
            per_row: list[dict[int, tuple[Tensor, Tensor, Tensor]]] = []
            for b, ps in enumerate(want):
                d = {}
                for p in ps:
                    d[p] = (out["residuals"][k].float().cpu(), out["h_gather"][k].float().cpu(),
                            out["logits_gather"][k].float().cpu())
                    k += 1
                per_row.append(d)
            pre["gathered"] = per_row
            for b, r in enumerate(rows):
                if r.captured_positions is not None:
                    cp = r.captured_positions.tolist()
                    r.captured_hidden = (torch.stack([per_row[b][p][0] for p in cp]) if cp
                                         else torch.zeros(0, self.parts.n_layers + 1, self.parts.hidden_size))
        h_last = out["h_last"].float()
        logits = out["logits_last"].float()
        n_real = mask.sum(-1)
        self._decode_loop(rows, cfg, processor, cache, h_last, logits, col_segs, mask, n_real, deltas)
        return pre

    def _prefix_layer_patches(self, rows: list[_Row], offsets: list[int]) -> list[tuple[int, Tensor, Tensor, Callable]]:
        """Layer >= 1 patches at latent slots inside the prefix (replay and redecode)."""
        by_layer: dict[int, list[tuple[int, int, _Row, int, Intervention]]] = {}
        for b, r in enumerate(rows):
            if not r.patches:
                continue
            slots = sorted(r.z_at)
            for step, pt in r.patches.items():
                if step >= len(slots):
                    continue
                for l in pt.layers:
                    if l >= 1:
                        by_layer.setdefault(l, []).append((b, slots[step] + offsets[b], r, step, pt.fn))
        return [_make_patch(l, items, self) for l, items in by_layer.items()]

    def _decode_loop(self, rows: list[_Row], cfg: GenerationConfig, processor: LogitsProcessor | None, cache: Any,
                     h_last: Tensor, logits: Tensor, col_segs: Tensor, col_mask: Tensor, n_real: Tensor,
                     deltas: Tensor | None) -> None:
        rs, spec = self.rspec, self.spec
        d = self.parts.hidden_size
        while True:
            # decide every row's next input
            feed_ids = torch.full((len(rows),), rs.pad_id, dtype=torch.long)
            feed_z: dict[int, Tensor] = {}
            feed_seg = torch.full((len(rows),), Segment.PAD, dtype=torch.long)
            latent_rows: list[int] = []
            for b, r in enumerate(rows):
                if r.finished:
                    continue
                pos_next = len(r.ids)
                lp = torch.log_softmax(logits[b], dim=-1)
                action = self._next_action(r, lp, processor, cfg)
                if action[0] in ("lat", "lat_tok"):
                    if action[0] == "lat_tok":  # explicit text imagination: the token's embedding is fed
                        with torch.no_grad():
                            z_nat = self.parts.embed(torch.tensor([action[1]], device=self.device))[0].float().cpu()
                    else:
                        z_nat = self._latent_fn(h_last[b]).float().cpu()
                    step = r.lat_total
                    z = z_nat
                    pt = r.patches.get(step)
                    if pt is not None and 0 in pt.layers:
                        z = _apply(pt.fn, z_nat, step, r)
                    feed_z[b] = z
                    latent_rows.append(b)
                    sid = {"sampled": int(lp.argmax()), "placeholder": rs.slot_id,
                           "none": rs.pad_id}[spec.slot_policy]
                    if action[1:] and action[1] is not None:  # slot id fixed by the prompt or the open marker
                        sid = action[1]
                    r.ids.append(int(sid))
                    r.segs.append(Segment.LATENT)
                    r.lat_pos.append(pos_next)
                    r.lat_z.append(z)
                    r.lat_h.append(h_last[b].float().cpu())
                    r.lat_total += 1
                    r.lat_count += 1
                    feed_seg[b] = Segment.LATENT
                elif action[0] == "tok":
                    _, tok, seg = action
                    r.ids.append(int(tok))
                    r.segs.append(int(seg))
                    feed_ids[b] = int(tok)
                    feed_seg[b] = seg
                else:  # finished now
                    r.finished = True
            active = [b for b, r in enumerate(rows) if not r.finished]
            if not active:
                return
            with torch.no_grad():
                emb = self.parts.embed(feed_ids.to(self.device)[:, None]).clone()
            for b, z in feed_z.items():
                emb[b, 0] = z.to(self.device, emb.dtype)
            col_segs = torch.cat([col_segs, feed_seg[:, None]], dim=1)
            col_mask = torch.cat([col_mask, torch.ones(len(rows), 1, dtype=col_mask.dtype)], dim=1)
            if deltas is not None:
                pos = (n_real + deltas).view(1, -1, 1).expand(3, -1, 1)
            else:
                pos = n_real.view(-1, 1)
            n_real = n_real + 1
            T = col_segs.shape[1]
            gather = None
            patches: list = []
            if latent_rows:
                gr = torch.tensor(latent_rows, dtype=torch.long)
                gather = (gr.to(self.device), torch.zeros_like(gr).to(self.device))  # the step's only position
                items = []
                for b in latent_rows:
                    r = rows[b]
                    pt = r.patches.get(r.lat_total - 1)
                    if pt is not None:
                        for l in pt.layers:
                            if l >= 1:
                                items.append((l, b, 0, r, r.lat_total - 1, pt.fn))
                by_l: dict[int, list] = {}
                for l, b, c, r, s, fn in items:
                    by_l.setdefault(l, []).append((b, c, r, s, fn))
                patches = [_make_patch(l, it, self) for l, it in by_l.items()]
            attn = self._attention(col_segs, col_mask, 1)
            out = self._forward(emb, attn, pos.to(self.device), cache, gather, patches)
            if latent_rows:
                for k, b in enumerate(latent_rows):
                    rows[b].lat_hidden.append(out["residuals"][k].float().cpu())
            h_last = out["h_last"].float()
            logits = out["logits_last"].float()

    def _next_action(self, r: _Row, lp: Tensor, processor: LogitsProcessor | None, cfg: GenerationConfig) -> tuple:
        rs, spec = self.rspec, self.spec
        if r.queue:
            a = r.queue.popleft()
            if a == _LAT:
                return ("lat", rs.slot_id if spec.open_mode == "prompt" else None)
            return a
        if r.mode == "latent" and spec.mediator == "text":
            if r.lat_count < spec.num_latents:
                scores = lp if processor is None else processor(list(r.ids), lp.clone(), r.index)
                tok = _choose(scores, cfg, r.gen)
                if not (tok == rs.close_id and r.lat_count >= spec.min_latents):
                    return ("lat_tok", tok)
            r.mode = "text"
            r.segments_done += 1
            r.lat_count = 0
            r.queue.extend(("tok", t, Segment.CLOSE) for t in rs.after_close_ids)
            return ("tok", rs.close_id, Segment.CLOSE)
        if r.mode == "latent":
            stop_now = False
            if spec.stop == "end_token" and r.lat_count >= spec.min_latents and int(lp.argmax()) == rs.close_id:
                stop_now = True  # sampled close
            if r.lat_count >= spec.num_latents:
                stop_now = True  # forced close
            if not stop_now:
                # Monet (offset 0): latent 0 sits on the emitted open marker's own slot
                return ("lat", rs.open_id if (spec.first_offset == 0 and r.lat_count == 0) else None)
            r.mode = "text"
            r.segments_done += 1
            r.lat_count = 0
            r.queue.extend(("tok", t, Segment.CLOSE) for t in rs.after_close_ids)
            return ("tok", rs.close_id, Segment.CLOSE)
        # free text decoding
        # the budget counts every position after the prompt (HF semantics), dropped latent slots included
        if len(r.ids) - r.prompt_len + r.budget_offset >= cfg.max_new_tokens:
            return ("end",)
        scores = lp if processor is None else processor(list(r.ids), lp.clone(), r.index)
        tok = _choose(scores, cfg, r.gen)
        pos = len(r.ids)
        r.text_lp[pos] = float(lp[tok])
        prev = r.segs[-1] if r.segs else Segment.TEXT
        if prev in (Segment.CLOSE, Segment.TEXT, Segment.IMAGE) or r.meta.get("answer_reset"):
            r.dist_at[pos] = lp.cpu()
            r.meta.pop("answer_reset", None)
        if rs.eos_id is not None and tok == rs.eos_id:
            r.text_lp.pop(pos, None)
            r.meta["eos"] = True
            return ("end",)
        if (spec.open_mode == "emitted" and tok == rs.open_id and not r.no_more_latents
                and r.segments_done < spec.max_segments):
            r.text_lp.pop(pos, None)
            r.dist_at.pop(pos, None)
            r.mode = "latent"
            r.lat_count = 0
            if spec.first_offset == 0:
                return ("lat", rs.open_id)
            return ("tok", rs.open_id, Segment.OPEN)
        return ("tok", tok, Segment.GEN)

    # ------------------------------------------------------------------ results
    def _finish(self, r: _Row, extra_meta: dict[str, Any] | None = None) -> ExampleTrace:
        ids = torch.tensor(r.ids, dtype=torch.long)
        segs = torch.tensor(r.segs, dtype=torch.long)
        # the answer: generated text after the last close marker (or after the prompt)
        last_close = max([p for p, s in enumerate(r.segs) if s in (Segment.CLOSE, Segment.LATENT)] + [r.prompt_len - 1])
        start = max(last_close + 1, r.prompt_len)
        ans_pos = [p for p in range(start, len(r.ids)) if r.segs[p] == Segment.GEN]
        ans_ids = torch.tensor([r.ids[p] for p in ans_pos], dtype=torch.long)
        ans_lp = torch.tensor([r.text_lp[p] for p in ans_pos], dtype=torch.float32)
        # the first answer token's distribution, also when that token was <eos> (an empty answer)
        first = r.dist_at.get(ans_pos[0]) if ans_pos else r.dist_at.get(len(r.ids))
        d = self.parts.hidden_size
        L1 = self.parts.n_layers + 1
        k = len(r.lat_pos)
        meta = {"eos": bool(r.meta.get("eos", False))}
        meta.update(extra_meta or {})
        return ExampleTrace(
            index=r.index, example_id=r.example_id, input_ids=ids, segments=segs, prompt_len=r.prompt_len,
            latent_positions=torch.tensor(r.lat_pos, dtype=torch.long),
            z=torch.stack(r.lat_z) if k else torch.zeros(0, d),
            h_src=torch.stack(r.lat_h) if k else torch.zeros(0, d),
            hidden=torch.stack(r.lat_hidden) if k else torch.zeros(0, L1, d),
            answer_start=ans_pos[0] if ans_pos else len(r.ids),
            answer_ids=ans_ids, answer_logprobs=ans_lp,
            answer_text=self.tokenizer.decode(ans_ids.tolist(), skip_special_tokens=True).strip(),
            finished=bool(r.meta.get("eos", False)), first_token_logprobs=first,
            captured_positions=r.captured_positions, captured_hidden=r.captured_hidden,
            image_embeds=r.image_embeds, image_grid_thw=r.grid_thw, meta=meta,
        )

    # ------------------------------------------------------------------ interventions
    def _row_from_example(self, e: ExampleTrace, upto: int, z_override: dict[int, Tensor] | None = None,
                          drop: bool = False) -> _Row:
        """A row whose prefix is positions [0, upto) of a recorded example, latents fed as recorded."""
        ids = e.input_ids[:upto].tolist()
        segs = e.segments[:upto].tolist()
        pos_list = e.latent_positions.tolist()
        z_at = {}
        for k, p in enumerate(pos_list):
            if p < upto:
                z_at[p] = (z_override or {}).get(k, e.z[k])
        if drop:
            keep = [p for p in range(upto) if segs[p] != Segment.LATENT]
            remap = {p: i for i, p in enumerate(keep)}
            ids = [ids[p] for p in keep]
            segs = [segs[p] for p in keep]
            z_at = {}
            prompt_len = sum(1 for p in keep if p < e.prompt_len)
            dropped_after_prompt = sum(1 for p in range(e.prompt_len, upto) if p not in remap)
        else:
            prompt_len = e.prompt_len
            dropped_after_prompt = 0
        r = _Row(index=e.index, example_id=e.example_id, ids=ids, segs=segs, z_at=z_at,
                 image_embeds=e.image_embeds, grid_thw=e.image_grid_thw, prompt_len=prompt_len,
                 source=e, budget_offset=dropped_after_prompt)
        return r

    def _replay(self, exs: list[ExampleTrace], chosen: list[list[int]], layers: tuple[int, ...],
                fn: Intervention | None) -> list[ExampleTrace]:
        rows = []
        extra = []
        for e, steps in zip(exs, chosen):
            z_over = {}
            if fn is not None and 0 in layers:
                for s in steps:
                    z_over[s] = _apply(fn, e.z[s], s, e)
            r = self._row_from_example(e, e.seq_len, z_over)
            if fn is not None:
                r.patches = {s: _Patch(s, layers, fn) for s in steps}
            rows.append(r)
            # gather: latent slots (already), sources p-1 of latents, answer-scoring positions
            srcs = [p - 1 for p in e.latent_positions.tolist()]
            scoring = list(range(e.answer_start - 1, e.seq_len - 1)) if e.answer_ids.numel() else [e.seq_len - 1]
            caps = e.captured_positions.tolist() if e.captured_positions is not None else []
            extra.append(sorted(set(srcs) | set(scoring) | set(caps)))
        # a single forward: no decoding (every row is 'finished' before the loop starts)
        for r in rows:
            r.finished = True
        pre = self._prefill_and_decode(rows, GenerationConfig(max_new_tokens=1), None, None, extra)
        out = []
        for b, (e, r) in enumerate(zip(exs, rows)):
            g = pre["gathered"][b]
            lat_pos = e.latent_positions.tolist()
            hidden = torch.stack([g[p][0] for p in lat_pos]) if lat_pos else e.hidden.new_zeros(e.hidden.shape)
            h_src = torch.stack([g[p - 1][1] for p in lat_pos]) if lat_pos else e.h_src.clone()
            z = torch.stack([r.z_at[p].float().cpu() for p in lat_pos]) if lat_pos else e.z.clone()
            if e.answer_ids.numel():
                lps = torch.stack([torch.log_softmax(g[p][2], -1) for p in range(e.answer_start - 1, e.seq_len - 1)])
                tgt = e.input_ids[e.answer_start:]
                forced = lps.gather(1, tgt[:, None]).squeeze(1)
                pred = lps.argmax(-1)
                pred_lp = lps.max(-1).values
                # only score up to the recorded answer's own length (drop trailing non-answer tokens)
                n = e.answer_ids.numel()
                forced, pred, pred_lp = forced[:n], pred[:n], pred_lp[:n]
                first = lps[0]
            else:
                forced = pred_lp = torch.zeros(0)
                pred = torch.zeros(0, dtype=torch.long)
                first = torch.log_softmax(g[e.seq_len - 1][2], -1) if e.first_token_logprobs is not None else None
            cap = None
            if e.captured_positions is not None:
                cp = e.captured_positions.tolist()
                cap = torch.stack([g[p][0] for p in cp]) if cp else e.captured_hidden
            out.append(e.replace(
                z=z, h_src=h_src, hidden=hidden, answer_ids=pred, answer_logprobs=pred_lp, captured_hidden=cap,
                forced_logprobs=forced, first_token_logprobs=first,
                answer_text=self.tokenizer.decode(pred.tolist(), skip_special_tokens=True).strip(),
                meta={**e.meta, "mode": "replay"},
            ))
        return out

    def _resume(self, exs: list[ExampleTrace], chosen: list[list[int]], layers: tuple[int, ...],
                fn: Intervention | None, mode: str, cfg: GenerationConfig, processor: LogitsProcessor | None,
                drop: bool) -> list[ExampleTrace]:
        rows = []
        for e, steps in zip(exs, chosen):
            pos_list = e.latent_positions.tolist()
            if mode == "propagate" and steps and fn is not None:
                k0 = steps[0]
                upto = pos_list[k0]
                r = self._row_from_example(e, upto)
                r.patches = {s: _Patch(s, layers, fn) for s in steps}
                self._resume_state(r, e, k0, upto)
            elif mode == "propagate":
                # nothing to change: resume right after the prompt's latents would be the same run;
                # resume before the first latent (or at the answer when there is none)
                if pos_list:
                    upto = pos_list[0]
                    r = self._row_from_example(e, upto)
                    self._resume_state(r, e, 0, upto)
                else:
                    upto = e.answer_start
                    r = self._row_from_example(e, upto)
                    r.meta["answer_reset"] = True
            else:  # redecode: everything up to the answer is fixed
                upto = e.answer_start
                z_over = {}
                if fn is not None and 0 in layers:
                    for s in steps:
                        z_over[s] = _apply(fn, e.z[s], s, e)
                r = self._row_from_example(e, upto, z_over, drop=drop)
                if fn is not None and not drop:
                    r.patches = {s: _Patch(s, layers, fn) for s in steps}
                r.no_more_latents = True
                r.meta["answer_reset"] = True
            r.gen = _row_generator(cfg.seed, e.example_id, mode)
            r.lat_total = sum(1 for p in pos_list if p < upto) if not drop else 0
            r.lat_pos = [p for p in pos_list if p < upto] if not drop else []
            keep = len(r.lat_pos)
            r.lat_z = [r.z_at[p].float().cpu() for p in r.lat_pos]
            r.lat_h = [e.h_src[k] for k in range(keep)]
            r.lat_hidden = [e.hidden[k] for k in range(keep)]
            rows.append(r)
        gather_extra = [sorted(r.z_at) for r in rows]
        self._prefill_and_decode_with_prefix_records(rows, cfg, processor, gather_extra)
        return [self._finish(r, {"mode": mode}) for r in rows]

    def _prefill_and_decode_with_prefix_records(self, rows, cfg, processor, gather_extra):
        # prefix latents are recomputed in the prefill: refresh their hidden states (layer patches included)
        result = self._prefill_and_decode(rows, cfg, processor, None, gather_extra)
        for b, r in enumerate(rows):
            g = result.get("gathered", [{}] * len(rows))[b]
            for k, p in enumerate(r.lat_pos):
                if p in g:
                    r.lat_hidden[k] = g[p][0]
        return result

    def _resume_state(self, r: _Row, e: ExampleTrace, k0: int, upto: int) -> None:
        """Set a row's loop state to 'about to feed latent k0' at position ``upto``."""
        spec = self.spec
        segs = e.segments.tolist()
        ids = e.input_ids.tolist()
        r.mode = "latent"
        # latents of the current segment already fed
        k = 0
        p = upto - 1
        while p >= 0 and segs[p] == Segment.LATENT:
            k += 1
            p -= 1
        r.lat_count = k
        r.segments_done = sum(1 for q in range(upto) if segs[q] == Segment.CLOSE and (q == 0 or segs[q - 1] == Segment.LATENT))
        if spec.open_mode == "prompt":
            # the rest of the prompt region is still forced; the queue feeds its latent slots
            r.mode = "text"
            r.segments_done = 1
            for q in range(upto, e.prompt_len):
                if segs[q] == Segment.LATENT:
                    r.queue.append(_LAT)
                else:
                    r.queue.append(("tok", ids[q], segs[q]))


def _apply(fn: Intervention, z: Tensor, step: int, example: Any, layer: int = 0) -> Tensor:
    if isinstance(example, _Row):
        example = example.source
    out = fn.apply(z, step, example, layer)
    if not isinstance(out, Tensor) or out.shape != z.shape:
        raise InterventionShapeError(
            f"intervention {fn!r} returned {getattr(out, 'shape', type(out))} for a latent of shape {tuple(z.shape)}; "
            "it must return a tensor of the same shape."
        )
    return out.to(z.dtype)


def _make_patch(layer: int, items: list, runner: LatentRunner) -> tuple[int, Tensor, Tensor, Callable]:
    """Bundle per-row patches of one layer into a vectorised (rows, cols, fn)."""
    rows_, cols_, specs = [], [], []
    for b, c, r, s, fn in items:
        rows_.append(b)
        cols_.append(c)
        specs.append((s, r, fn))
    dev = runner.device

    def patch(vals: Tensor) -> Tensor:
        new = [_apply(fn, vals[i].float().cpu(), s, r, layer) for i, (s, r, fn) in enumerate(specs)]
        return torch.stack(new).to(vals.device)

    return (layer, torch.tensor(rows_, device=dev), torch.tensor(cols_, device=dev), patch)


def _choose(scores: Tensor, cfg: GenerationConfig, gen: torch.Generator | None) -> int:
    if not cfg.do_sample:
        return int(scores.argmax())
    s = scores.float() / cfg.temperature
    if cfg.top_k is not None:
        kth = torch.topk(s, cfg.top_k).values[-1]
        s = s.masked_fill(s < kth, float("-inf"))
    probs = torch.softmax(s, -1).cpu()
    return int(torch.multinomial(probs, 1, generator=gen))


def _row_generator(seed: int, example_id: str, salt: str) -> torch.Generator:
    return torch_generator(seed, example_id, salt)


def _expand_image_tokens(ids: list[int], img_tok: int, grid: Tensor, merge: int) -> list[int]:
    out, k = [], 0
    for t in ids:
        if t == img_tok:
            n = int(grid[k].prod()) // (merge * merge)
            out.extend([img_tok] * n)
            k += 1
        else:
            out.append(t)
    return out


def _capture_positions(capture: Any, r: _Row) -> list[int]:
    n = len(r.ids)
    if capture == "image":
        return [p for p, s in enumerate(r.segs) if s == Segment.IMAGE]
    if capture == "prompt":
        return list(range(n))
    if callable(capture):
        ps = sorted({int(p) for p in capture(torch.tensor(r.ids), torch.tensor(r.segs))})
        bad = [p for p in ps if not 0 <= p < n]
        if bad:
            raise InputError(f"capture_positions returned {bad}, outside the prompt of length {n}.")
        return ps
    raise InputError(f"capture_positions={capture!r}; use 'image', 'prompt' or a callable (ids, segments) -> positions.")


def _path_getter(path: str) -> Callable[[Any], Any]:
    parts = path.split(".")

    def get(root: Any) -> Any:
        obj = root
        for p in parts:
            obj = getattr(obj, p)
        return obj

    return get


def _batches(items: list, size: int, progress: bool, desc: str):
    chunks = [items[i:i + size] for i in range(0, len(items), size)]
    it = tqdm(chunks, desc=desc, unit="batch", disable=not progress or len(chunks) <= 1, leave=False)
    yield from it
