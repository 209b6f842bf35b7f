"""The latent-reasoning runner: our own generation loop over a Hugging Face model, driven through nnsight.

One loop serves every family (:mod:`latentprobe.engine.loop`); what each sequence feeds next is
decided by the protocol state machine (:mod:`latentprobe.engine.protocol`), so examples may open
latent mode at different steps. Every forward pass goes through one nnsight trace
(:mod:`latentprobe.engine.forward`). Latents are written in place of the token embedding
(``inputs_embeds``), exactly where every implementation writes them.

Three intervention modes (:meth:`LatentRunner.intervene`, :mod:`latentprobe.engine.modes`):
``"replay"``, ``"propagate"`` and ``"redecode"``. :meth:`LatentRunner.intervene_many` runs a sweep of
interventions at once on shared prefixes (:mod:`latentprobe.engine.many`), with the same results.
"""

from __future__ import annotations

from numbers import Integral
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import torch
from torch import Tensor

from latentprobe.display import Summarized
from latentprobe.engine import costs, many, modes
from latentprobe.engine.decoding import CheckpointGeneration, config_from_record, effective_generation
from latentprobe.engine.inputs import CapturePositions, ImageProcessor, PromptConvention, build_rows, check_budget, tokenize
from latentprobe.engine.loop import Decoder, GenerationConfig, LogitsProcessor
from latentprobe.engine.masks import MaskRule
from latentprobe.engine.parts import ModelParts, locate_parts
from latentprobe.engine.patching import InterventionMode
from latentprobe.errors import InputError, InterventionError, SpecError, StepOutOfRangeError
from latentprobe.interventions import Intervention, as_intervention
from latentprobe.spec import LatentSpec, ResolvedSpec
from latentprobe.presets import get_preset, list_presets
from latentprobe.trace import ExampleTrace, LatentTrace
from latentprobe.validate import positive_int

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

__all__ = ["LatentRunner"]


class LatentRunner(Summarized):
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
        The checkpoint's Hugging Face image processor (``latentprobe.load`` brings it), or a callable
        ``images -> (pixel_values, image_grid_thw)``. Default: transformers' ``Qwen2VLImageProcessorPil``
        (no torchvision needed); images of any size and mode are accepted.
    prompt_convention:
        How chat-message prompts become the prompt string (generation prompt, suffix, image
        prefix); ``latentprobe.load`` sets the family's published one.
    layers, norm, embed, lm_head:
        Dotted module paths, for architectures that are not found automatically.
    head:
        For specs with ``head != "none"`` (LVR with ``lvr_head``): the module applied to the final-norm
        output at latent positions, read by ``lm_head`` and by the next latent
        (:class:`latentprobe.engine.lvr.LvrHead`).
    end_embedding:
        For ``stop="similarity"`` (LVR "latent" decoding): the learned end embedding
        (``lvr_latent_end_emb``), one vector of the hidden size.
    generation_defaults:
        The checkpoint's ``generation_config.json`` settings (``latentprobe.load`` reads them,
        :func:`latentprobe.engine.decoding.read_generation_config`): its eos list stops every run, and
        ``generation="published"``/``"checkpoint"`` take the settings the authors leave to it.

    Examples
    --------
    >>> runner = LatentRunner(model, tokenizer, "mirage")           # doctest: +SKIP
    >>> trace = runner.run(["<|vision_start|><|image_pad|><|vision_end|> what colour ?"],
    ...                    images=[img], max_new_tokens=8)            # doctest: +SKIP
    >>> trace[0].z.shape                                             # doctest: +SKIP
    torch.Size([4, 2048])
    """

    def __init__(self, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, spec: LatentSpec | str, *,
                 projection: Callable[[Tensor], Tensor] | None = None, mask_rule: MaskRule | None = None,
                 image_processor: ImageProcessor | None = None,
                 layers: str | None = None, norm: str | None = None, embed: str | None = None,
                 lm_head: str = "lm_head", head: torch.nn.Module | None = None,
                 end_embedding: Tensor | None = None, prompt_convention: PromptConvention | None = None,
                 generation_defaults: CheckpointGeneration | None = None) -> None:
        if not isinstance(spec, (str, LatentSpec)):
            raise SpecError(f"spec={spec!r}: give a LatentSpec or a preset name ({', '.join(list_presets())}).")
        if not callable(getattr(tokenizer, "get_vocab", None)):
            raise InputError(f"tokenizer={tokenizer!r}: give the model's tokenizer (AutoTokenizer.from_pretrained).")
        self.parts: ModelParts = locate_parts(model, layers=layers, norm=norm, embed=embed, lm_head=lm_head)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.spec: LatentSpec = get_preset(spec) if isinstance(spec, str) else spec
        self.rspec: ResolvedSpec = self.spec.resolve(tokenizer, vocab_size=self.parts.vocab_size)
        if self.spec.projection == "module" and projection is None:
            raise SpecError(
                f"spec {self.spec.name!r} feeds f(h) through a projection module; pass projection=<module> "
                "(e.g. latentprobe.CodiProjection loaded with the checkpoint's weights)."
            )
        self.projection = projection if self.spec.projection == "module" else None
        self.mask_rule = mask_rule
        self.image_processor = image_processor
        self.prompt_convention = prompt_convention
        self.generation_defaults = generation_defaults
        self._decoder = Decoder(model, self.parts, self.rspec, projection=self.projection, mask_rule=mask_rule,
                                head=head, end_embedding=end_embedding)
        self.device, self.dtype = self._decoder.device, self._decoder.dtype

    # ------------------------------------------------------------------ display
    def _summary(self) -> tuple[str, list[tuple[str, str]]]:
        n_params = sum(p.numel() for p in self.model.parameters())
        spec = self.spec
        rows = [
            ("model", f"{type(self.model).__name__}: {n_params / 1e6:,.1f}M parameters, {self.n_layers} layers, "
                      f"hidden {self.hidden_size}" + (", takes images" if self.is_vlm else "")),
            ("device, dtype", f"{self.device}, {str(self.dtype).replace('torch.', '')}"),
            ("spec", f"{spec.name} (open {spec.open_mode}, K={spec.num_latents}, stop {spec.stop}, "
                     f"first offset {spec.first_offset}, slots {spec.slot_policy})"),
            ("markers", f"open {self.rspec.open_id}, close {self.rspec.close_id}, slot {self.rspec.slot_id}"),
        ]
        gd = self.generation_defaults
        if gd is not None and gd.source is not None:
            rows.append(("generation config", f"{gd.source}: {dict(gd.values)}, eos {list(gd.eos_token_ids or [])}"))
        extras = [name for name, v in (("projection", self.projection), ("mask rule", self.mask_rule)) if v is not None]
        if extras:
            rows.append(("with", ", ".join(extras)))
        return "LatentRunner", rows

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
    def run(self, prompts: Sequence[Any], images: Sequence[Any] | None = None, *,
            example_ids: Sequence[str] | None = None, max_new_tokens: int | None = None,
            do_sample: bool | None = None, temperature: float | None = None, top_k: int | None = None,
            top_p: float | None = None, repetition_penalty: float | None = None, seed: int = 0,
            generation: str | None = None, batch_size: int = 8,
            capture_positions: CapturePositions | None = None,
            logits_processor: LogitsProcessor | None = None, add_special_tokens: bool | None = None,
            progress: bool = True, trace_dtype: torch.dtype | None = None,
            capture_layers: str | Sequence[int] = "all") -> LatentTrace:
        """Generate with the latent loop and record everything.

        Parameters
        ----------
        prompts:
            Strings (tokenised with special tokens as ``add_special_tokens`` says: by default the
            preset's rule, :attr:`PromptConventions.add_special_tokens`, on for CODI), id lists, or
            chat messages: a list of ``{"role": ..., "content": ...}`` dicts per example, content
            parts such as ``{"type": "image", "image": img}`` and ``{"type": "text", "text": ...}``,
            rendered with the checkpoint's chat template and the family's convention
            (``prompt_convention``). For vision-language models each image is one ``<|image_pad|>``
            (the model's image token), expanded to the image's number of tokens, or the run the
            Hugging Face processor already expanded it to. Video is refused
            (:class:`~latentprobe.engine.inputs.VideoNotSupportedError`).
        images:
            One entry per prompt: ``None``, an image (PIL image of any mode, or a uint8 ``H x W``,
            ``H x W x 3`` or ``H x W x 4`` array, any size), or a list of them; with chat messages,
            they fill the messages' ``{"type": "image"}`` placeholders in order (as Hugging Face processors
            take them), and any left over follow the images embedded in the parts.
        example_ids:
            One id per prompt, recorded in the trace (default ``"0"``, ``"1"``, ...); seeded draws
            (sampling, noise interventions) are keyed by them.
        max_new_tokens:
            Budget of positions after the prompt, latents and markers included (as in Hugging Face
            ``generate``); default 32 (or the published value with ``generation="published"``). A latent
            segment that has started is always completed.
        do_sample, temperature, top_k, top_p, repetition_penalty:
            How every token is chosen (greedy by default). They apply to every decision the protocol
            reads, those inside latent mode included (a sampled close, a sampled slot id, the token fed
            after LVR's quota). Draws are keyed by ``(seed, example id, position)``: batching never changes
            them, and ``intervene(trace, None)`` reproduces a sampled trace in every mode.
        generation:
            ``None``: the settings above (greedy unless ``do_sample=True``). ``"published"``: what the
            authors' script ran (:attr:`LatentSpec.published_generation`, e.g. Monet's T=0.1, top-k 50,
            top-p 0.8, repetition penalty 1.01; the settings Mirage's and LVR's scripts leave to the
            checkpoint's ``generation_config.json`` read from it). ``"checkpoint"``: the checkpoint's own
            settings. Any setting passed explicitly wins; every id of the checkpoint's eos list stops. The
            effective settings and their sources are in ``trace.config["generation"]``
            (:func:`latentprobe.engine.decoding.effective_generation`).
        seed:
            Seed of the sampled draws (unused when decoding greedily).
        batch_size:
            Examples generated together in one forward pass.
        capture_positions:
            Also record every layer's hidden state at chosen prompt positions: ``"image"``,
            ``"prompt"`` (all prompt positions) or a callable ``(ids, segments) -> positions``.
        logits_processor:
            ``(ids_so_far, logprobs, example_index) -> logprobs`` applied before every token is chosen,
            inside latent mode too, as Hugging Face ``generate`` does (so a study can force or forbid a
            close); recorded log-probabilities are the model's own, before processing.
        add_special_tokens:
            Whether string prompts are tokenised with the tokenizer's special tokens; ``None``: the
            preset's rule (:attr:`PromptConventions.add_special_tokens`).
        progress:
            A progress bar over the batches.
        trace_dtype:
            dtype of the recorded tensors (latents, hidden states, image features); default the
            model's own (bf16 for a bf16 model), ``torch.float32`` on request.
        capture_layers:
            Residual layers recorded at each latent and captured position: ``"all"`` (``0..L``) or a
            list (e.g. ``[0, 14, 28]``); ``hidden`` then holds those layers in that sorted order and
            ``trace.config["capture_layers"]`` names them. Interventions patch any layer regardless.

        Returns
        -------
        LatentTrace
            One :class:`~latentprobe.trace.ExampleTrace` per prompt, in order, and the run's settings in
            ``config``.

        Examples
        --------
        On the shipped ``mediated`` toy (K = 4 latents of width 128):

        >>> from latentprobe import toy
        >>> tm = toy.load("mediated")
        >>> ex = tm.examples("test", 4)
        >>> runner = tm.runner()
        >>> trace = runner.run(tm.prompts(ex), tm.images(ex), max_new_tokens=16, progress=False)
        >>> len(trace), tuple(trace[0].z.shape)
        (4, (4, 128))
        >>> trace.answers
        ['two', 'blue', 'green', 'red']
        """
        cfg, record = self._generation(generation, max_new_tokens=max_new_tokens, do_sample=do_sample,
                                       temperature=temperature, top_k=top_k, top_p=top_p,
                                       repetition_penalty=repetition_penalty, seed=seed, record=True)
        if add_special_tokens is None:  # the preset's rule (CODI's test.py tokenises with special tokens)
            add_special_tokens = self.spec.prompt is not None and self.spec.prompt.add_special_tokens
        positive_int(batch_size, "batch_size")
        check_budget(self.rspec, cfg.max_new_tokens)
        layers = self._capture_layers(capture_layers)
        rows = build_rows(prompts, images, example_ids, tokenizer=self.tokenizer, rspec=self.rspec, parts=self.parts,
                          image_processor=self.image_processor, add_special_tokens=add_special_tokens,
                          convention=self.prompt_convention, keep_dtype=trace_dtype, max_new_tokens=cfg.max_new_tokens)
        self._record(trace_dtype, layers)
        out: list[ExampleTrace] = []
        for batch in modes.batches(rows, batch_size, progress, "generate"):
            clock = costs.start(self.model)  # per-example decode time in meta (latentprobe.engine.costs)
            self._decoder.run(batch, cfg, logits_processor, capture=capture_positions)
            out.extend(modes.finish(self._decoder, self.tokenizer, r, costs.meta(r, clock, batch)) for r in batch)
        check_budget(self.rspec, cfg.max_new_tokens, [e.answer_text for e in out])
        config = {"mode": "run", "max_new_tokens": cfg.max_new_tokens, "do_sample": cfg.do_sample,
                  "temperature": cfg.temperature, "top_k": cfg.top_k, "top_p": cfg.top_p,
                  "repetition_penalty": cfg.repetition_penalty, "seed": cfg.seed, "generation": record,
                  "add_special_tokens": bool(add_special_tokens),
                  "model": type(self.model).__name__, "logits_processor": logits_processor is not None,
                  "trace_dtype": None if trace_dtype is None else str(trace_dtype).replace("torch.", ""),
                  "capture_layers": "all" if layers is None else list(layers), "threads": torch.get_num_threads()}
        return LatentTrace(tuple(out), self.spec, config)

    def intervene(self, trace: LatentTrace, intervention: Intervention | Callable[..., Tensor] | None = None, *, steps: Sequence[int] | None = None,
                  layers: Sequence[int] = (0,), mode: str | InterventionMode = "replay",
                  max_new_tokens: int | None = None, batch_size: int = 8, drop_latents: bool = False,
                  logits_processor: LogitsProcessor | None = None, seed: int | None = None,
                  progress: bool = True) -> LatentTrace:
        """Apply ``intervention`` to latents of every example of ``trace`` and return the new trace.

        Parameters
        ----------
        trace:
            A trace this runner (or one on the same model and spec) recorded.
        intervention:
            An :class:`~latentprobe.interventions.Intervention` or a callable ``(z, step, example) -> z``;
            ``None`` re-runs the mode unchanged (a control: it must reproduce the trace).
        steps:
            Latent steps to change (default: all of each example's steps).
        layers:
            Residual layers to patch at those steps: 0 is the fed vector z; ``i >= 1`` is the output
            of decoder layer ``i-1`` at the latent position.
        mode:
            ``"replay"``, ``"propagate"`` or ``"redecode"`` (see :mod:`latentprobe.engine.modes`).
        max_new_tokens:
            Budget of the continued generation (``propagate`` / ``redecode``; default the trace's).
        batch_size:
            Examples run together in one forward pass.
        drop_latents:
            ``redecode`` only: remove the latent slots entirely, keeping the open/close markers.
        logits_processor:
            As in :meth:`run`, applied to every token generated after the intervention.
        seed:
            Seed of sampled draws (default the trace's own, so ``intervene(trace, None)`` reproduces it).
        progress:
            A progress bar over the batches.

        Returns
        -------
        LatentTrace
            Its examples hold the new latents, hidden states and answer. In replay mode
            ``answer_ids`` are the teacher-forced greedy predictions at the recorded answer positions and
            ``forced_logprobs`` score the recorded answer tokens.

        Examples
        --------
        On the shipped ``mediated`` toy, the no-op control reproduces the trace, and zeroing the latents
        while generation continues from them changes the answers:

        >>> from latentprobe import Zero, toy
        >>> tm = toy.load("mediated")
        >>> ex = tm.examples("test", 4)
        >>> runner = tm.runner()
        >>> trace = runner.run(tm.prompts(ex), tm.images(ex), max_new_tokens=16, progress=False)
        >>> runner.intervene(trace, None, progress=False).answers == trace.answers
        True
        >>> zeroed = runner.intervene(trace, Zero(), mode="propagate", progress=False)
        >>> float(zeroed[0].z.abs().max()), zeroed.answers == trace.answers
        (0.0, False)
        """
        imode, fns, layers, cfg, chosen = self._setup(trace, [intervention], steps, layers, mode, max_new_tokens,
                                                      batch_size, drop_latents, seed)
        fn = fns[0]
        out: list[ExampleTrace] = []
        for idx in modes.batches(list(range(len(trace))), batch_size, progress, imode.value):
            exs = [trace.examples[i] for i in idx]
            sel = [chosen[i] for i in idx]
            if imode is InterventionMode.REPLAY:
                out.extend(modes.replay(self._decoder, self.tokenizer, exs, sel, layers, fn))
            else:
                out.extend(modes.resume(self._decoder, self.tokenizer, exs, sel, layers, fn, imode, cfg,
                                        logits_processor, drop_latents))
        return LatentTrace(tuple(out), trace.spec, modes.result_config(trace, imode, fn, steps, layers, drop_latents))

    def intervene_many(self, trace: LatentTrace, interventions: Mapping[str, Any], *,
                       steps: Sequence[int] | None = None, layers: Sequence[int] = (0,),
                       mode: str | InterventionMode = "replay", max_new_tokens: int | None = None,
                       max_batch: int = 64, drop_latents: bool = False,
                       logits_processor: LogitsProcessor | None = None, seed: int | None = None,
                       control: str | None = None, progress: bool = True,
                       prefix_cache: str = "shared") -> dict[str, LatentTrace]:
        """Run several interventions on ``trace`` at once: one result per name, each equal to ``intervene``'s.

        Each example's prefix up to its first changed position is prefilled once, its KV cache shared by
        every condition; all conditions x examples then decode as one batch (``max_batch`` rows, whole
        examples per chunk). Results match each condition run alone with :meth:`intervene` (same latents
        and answers; log-probabilities to float precision).

        Parameters
        ----------
        interventions:
            ``{name: Intervention | callable | None}``; ``None`` is a no-op control.
        steps, layers, mode, max_new_tokens, drop_latents, logits_processor, seed:
            As in :meth:`intervene`, shared by every condition.
        max_batch:
            Rows (conditions x examples) per forward pass: the memory bound.
        control:
            Also return the no-op control under this name. When it provably equals the clean trace
            (:func:`latentprobe.engine.many.control_is_clean`: greedy propagate or redecode of a plain run on a
            float32/float64 model, same budget, no logits processor) the clean trace is returned for it, its
            config saying ``"control": "clean_trace"``, and nothing is run; otherwise it is run (``"run"``).
        progress:
            A progress bar over the batches (when there is more than one).
        prefix_cache:
            ``"shared"`` (default): one copy of each example's prefix KV cache, attended by every condition
            (:mod:`latentprobe.engine.prefix_cache`); ``"copied"``: a copy per condition (the reference).
        trace : LatentTrace
            As in :meth:`intervene`.

        Returns
        -------
        dict[str, LatentTrace]
            In the order of ``interventions``, then ``control``; each config as :meth:`intervene` writes it.

        Raises
        ------
        InputError
            ``interventions`` is not a dict, ``control`` names one, ``max_batch`` or ``prefix_cache`` is invalid.

        Examples
        --------
        >>> from latentprobe import AddNoise, Zero, toy
        >>> tm = toy.load("mediated")
        >>> ex = tm.examples("test", 4)
        >>> runner = tm.runner()
        >>> trace = runner.run(tm.prompts(ex), tm.images(ex), max_new_tokens=16, progress=False)
        >>> out = runner.intervene_many(trace, {"zero": Zero(), "noise": AddNoise(1.0)}, mode="propagate",
        ...                             control="none", progress=False)
        >>> list(out), out["none"].config["control"]
        (['zero', 'noise', 'none'], 'clean_trace')
        >>> out["zero"].answers == runner.intervene(trace, Zero(), mode="propagate", progress=False).answers
        True
        """
        if not isinstance(interventions, Mapping):
            raise InputError(f"interventions={type(interventions).__name__}: give a dict {{name: intervention}} "
                             "(None as a value is a no-op control).")
        many.check_max_batch(max_batch), many.check_prefix_cache(prefix_cache)
        names = list(interventions)
        if control is not None and control in interventions:
            raise InputError(f"control={control!r} is also the name of an intervention; name the control otherwise.")
        imode, fns, layers_t, cfg, chosen = self._setup(trace, [interventions[n] for n in names] + [None], steps,
                                                        layers, mode, max_new_tokens, 1, drop_latents, seed)
        fns = fns[:-1]
        clean = control is not None and many.control_is_clean(trace, imode, cfg, logits_processor, drop_latents,
                                                                     getattr(self.model, "dtype", torch.float32))
        if control is not None and not clean:
            names, fns = names + [control], fns + [None]

        def config(fn: Any) -> dict[str, Any]:
            return modes.result_config(trace, imode, fn, steps, layers_t, drop_latents)

        if not fns:
            return {control: many.clean_as_control(trace, config(None))} if control is not None else {}
        results = many.run_many(self._decoder, self.tokenizer, trace.examples, chosen, fns, layers_t, imode, cfg,
                                logits_processor, drop_latents, max_batch, progress, prefix_cache)
        out = {n: LatentTrace(tuple(res), trace.spec, config(fn)) for n, fn, res in zip(names, fns, results)}
        if control is not None:
            out[control] = (many.clean_as_control(trace, config(None)) if clean else
                            LatentTrace(out[control].examples, trace.spec, {**config(None), "control": "run"}))
        return out

    def _setup(self, trace: LatentTrace, interventions: list[Any], steps: Sequence[int] | None, layers: Sequence[int],
               mode: str | InterventionMode, max_new_tokens: int | None, batch_size: int, drop_latents: bool,
               seed: int | None) -> tuple[InterventionMode, list[Any], tuple[int, ...], GenerationConfig,
                                  list[list[int]]]:
        """Check the arguments of interventions before anything runs: their mode, interventions (``None``: a
        control), layers, settings and each example's chosen steps; sets the recording settings to the trace's."""
        imode = InterventionMode.parse(mode)
        positive_int(batch_size, "batch_size")
        for arg, vals in (("steps", steps), ("layers", layers)):
            if vals is not None and (isinstance(vals, (str, bytes)) or not hasattr(vals, "__iter__") or any(
                    isinstance(v, bool) or not isinstance(v, Integral) for v in vals)):
                raise InputError(f"{arg}={vals!r}: give a list of integers (bools and other types are refused).")
        modes.check_trace(trace, self.parts.hidden_size)
        fns = [as_intervention(x) if x is not None else None for x in interventions]
        n_res = self.parts.n_layers + 1
        layers = tuple(sorted({int(l) for l in layers}))
        bad = [l for l in layers if not 0 <= l < n_res]
        if bad or not layers:
            raise StepOutOfRangeError(
                f"layers {list(layers) if not bad else bad} out of range: residual layers are 0..{n_res - 1} "
                f"(0 = the fed latent, i = output of decoder layer i-1)."
            )
        if drop_latents and imode is not InterventionMode.REDECODE:
            raise InterventionError("drop_latents=True is a redecode operation; pass mode='redecode'.")
        for fn in fns:
            if fn is not None:
                fn.check(self.parts.hidden_size, trace)
        cfg = config_from_record(trace.config, max_new_tokens=max_new_tokens, seed=seed)
        if imode is not InterventionMode.REPLAY and max_new_tokens is not None:
            check_budget(self.rspec, cfg.max_new_tokens)
        chosen = [e.check_steps(steps) for e in trace.examples]
        cl = trace.config.get("capture_layers", "all")
        td = trace.config.get("trace_dtype")
        self._record(None if td is None else getattr(torch, td), None if cl == "all" else tuple(cl))
        return imode, fns, layers, cfg, chosen

    def _generation(self, generation: str | None, *, record: bool = False, **given: Any) -> Any:
        """A run's settings (and with ``record`` their record): the checkpoint's, the preset's published ones,
        then ``given`` (:func:`~latentprobe.engine.decoding.effective_generation`)."""
        cfg, rec = effective_generation(generation, self.spec, self.generation_defaults, self.rspec.eos_id, **given)
        return (cfg, rec) if record else cfg

    def _capture_layers(self, capture_layers: str | Sequence[int]) -> tuple[int, ...] | None:
        """``None`` for all residual layers, else the sorted layer numbers (checked)."""
        if isinstance(capture_layers, str):
            if capture_layers != "all":
                raise InputError(f"capture_layers={capture_layers!r}; use 'all' or a list of residual layers.")
            return None
        n_res = self.parts.n_layers + 1
        layers = tuple(sorted({int(l) for l in capture_layers}))
        bad = [l for l in layers if not 0 <= l < n_res]
        if bad or not layers:
            raise InputError(f"capture_layers={list(capture_layers)}: residual layers are 0..{n_res - 1} "
                             f"(0 = the fed latent, i = output of decoder layer i-1); {bad or 'none'} given.")
        return layers

    def _record(self, trace_dtype: torch.dtype | None, layers: tuple[int, ...] | None) -> None:
        self._decoder.trace_dtype = trace_dtype
        self._decoder.capture_layers = layers

    def _tokenize(self, prompt: str | Sequence[int], add_special_tokens: bool = False) -> list[int]:
        """The ids :meth:`run` feeds for ``prompt`` (before image-token expansion)."""
        return tokenize(self.tokenizer, prompt, add_special_tokens)
