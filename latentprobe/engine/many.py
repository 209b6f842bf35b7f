"""Sweeps of many interventions on one trace, run together on shared prefixes
(:meth:`LatentRunner.intervene_many <latentprobe.engine.runner.LatentRunner.intervene_many>`).

Every condition's rows are built exactly as :meth:`~latentprobe.engine.runner.LatentRunner.intervene`
builds them; the rows of one example (one per condition) share the prefill of their common prefix
(:mod:`latentprobe.engine.fork`) and, by default, one copy of its KV cache
(:mod:`latentprobe.engine.prefix_cache`), and all conditions x examples of a chunk run as one batch of
the decode loop. Draws are keyed by ``(seed, example id, position)``, so batching changes no draw.

The no-op control of a mode equals the clean trace when nothing differs from the run that recorded
it (:func:`control_is_clean`); the sweep then returns the clean trace for it instead of running it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import torch

from latentprobe.engine import modes
from latentprobe.engine.fork import prefill_shared
from latentprobe.engine.loop import Decoder, GenerationConfig, LogitsProcessor
from latentprobe.engine.patching import InterventionMode
from latentprobe.engine.prefix_cache import attached, supports_shared
from latentprobe.engine.rows import Row
from latentprobe.errors import InputError
from latentprobe.trace import ExampleTrace, LatentTrace
from latentprobe.validate import positive_int

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

__all__ = ["control_is_clean", "check_max_batch", "check_prefix_cache", "run_many", "prefill_and_decode",
           "clean_as_control", "PREFIX_CACHES"]

#: How a sweep holds each example's prefix cache (``run_many(prefix_cache=...)``).
PREFIX_CACHES = ("shared", "copied")


def control_is_clean(trace: LatentTrace, mode: InterventionMode, cfg: GenerationConfig,
                     logits_processor: LogitsProcessor | None, drop_latents: bool,
                     model_dtype: torch.dtype = torch.float32) -> bool:
    """Whether the no-op control of ``mode`` provably reproduces ``trace`` itself.

    True only when the trace is a plain run (``config["mode"] == "run"``) recorded without a logits
    processor, decoded greedily, and the control resumes it with the same budget, no processor, in
    ``propagate`` or ``redecode`` (replay scores the recorded answer, which the trace does not hold) and
    without ``drop_latents``, on a float32 or float64 model. Greedy decoding of the recorded prefix then
    chooses the recorded tokens (``tests/engine/test_many.py`` checks it for every preset family). In
    bfloat16 or float16 a resumed run is not bit-equal to the run (other batch shapes round differently,
    by up to about 0.1 nats in first-token log-probabilities), so there the control is run and its
    difference from the clean run is the noise floor the interventions are compared against.

    Parameters
    ----------
    trace : LatentTrace
        The clean trace.
    mode : InterventionMode
        The intervention mode.
    cfg : GenerationConfig
        The run's settings.
    logits_processor : LogitsProcessor | None
        The run's processor (any makes the answer false).
    drop_latents : bool
        Whether latent slots are removed.
    model_dtype : torch.dtype
        The model's dtype (only float32 / float64 reproduce exactly).

    Returns
    -------
    bool
    """
    tc = trace.config
    return (model_dtype in (torch.float32, torch.float64) and mode is not InterventionMode.REPLAY and not drop_latents and logits_processor is None
            and tc.get("mode") == "run" and tc.get("logits_processor") is False and not tc.get("do_sample", False)
            and not cfg.do_sample and cfg.max_new_tokens == int(tc.get("max_new_tokens", -1)))


def _chunks(n_examples: int, n_conditions: int, max_batch: int) -> Iterator[tuple[list[int], list[int]]]:
    """``(example indices, condition indices)`` of each batch: whole examples (every condition of an example
    in one batch, so they share one prefill) of at most ``max_batch`` rows; an example whose conditions alone
    exceed it is split by condition."""
    per = max(1, max_batch // max(n_conditions, 1))
    for start in range(0, n_examples, per):
        exs = list(range(start, min(start + per, n_examples)))
        if n_conditions <= max_batch:
            yield exs, list(range(n_conditions))
        else:
            for c0 in range(0, n_conditions, max_batch):
                yield exs, list(range(c0, min(c0 + max_batch, n_conditions)))


def check_prefix_cache(prefix_cache: object) -> None:
    """Refuse a ``prefix_cache`` other than ``"shared"`` or ``"copied"`` (:class:`~latentprobe.errors.InputError`).

    Parameters
    ----------
    prefix_cache : Any
        What was given.
    """
    if prefix_cache not in PREFIX_CACHES:
        raise InputError(f"prefix_cache={prefix_cache!r}: give one of {PREFIX_CACHES} ('shared': one copy of each "
                         "example's prefix cache for all conditions; 'copied': one copy per condition).")


def check_max_batch(max_batch: object) -> None:
    """Refuse a ``max_batch`` that is not a positive integer (:class:`~latentprobe.errors.InputError`).

    Parameters
    ----------
    max_batch : Any
        What was given.
    """
    positive_int(max_batch, "max_batch", hint="rows per batch, conditions x examples")


def run_many(dec: Decoder, tokenizer: PreTrainedTokenizerBase, examples: Sequence[ExampleTrace], chosen: list[list[int]],
             fns: list[Any], layers: tuple[int, ...], mode: InterventionMode, cfg: GenerationConfig,
             processor: LogitsProcessor | None, drop: bool, max_batch: int,
             progress: bool = False, prefix_cache: str = "shared",
             chosen_by: Sequence[Sequence[Sequence[int]]] | None = None) -> list[list[ExampleTrace]]:
    """Run every intervention of ``fns`` (``None``: a control) on every example; ``out[c][i]`` is condition
    ``c`` on example ``i`` (a progress bar over the batches with ``progress``).

    Parameters
    ----------
    dec : Decoder
        The runner's decoder.
    tokenizer : PreTrainedTokenizerBase
        The model's tokenizer.
    examples : Sequence[ExampleTrace]
        The recorded examples.
    chosen : list[list[int]]
        For each example, the latent steps to change.
    fns : list[Any]
        One intervention per condition (``None``: a control).
    layers : tuple[int, ...]
        Residual layers patched.
    mode : InterventionMode
        The intervention mode.
    cfg : GenerationConfig
        The run's settings.
    processor : LogitsProcessor | None
        Logits processor, or ``None``.
    drop : bool
        ``redecode`` only: remove the latent slots.
    max_batch : int
        Rows (conditions x examples) per forward pass.
    progress : bool
        Show a progress bar.
    prefix_cache : str
        ``"shared"``: each example's prefix cache stored once, every condition attending to it
        (:mod:`latentprobe.engine.prefix_cache`; models whose attention cannot run on it fall back to
        ``"copied"``); ``"copied"``: one copy per condition (transformers' ``DynamicCache``, the reference).
    chosen_by : sequence or None
        ``chosen_by[c][i]``: the steps condition ``c`` changes in example ``i``, where conditions change different
        steps (e.g. one condition per step); ``None``: ``chosen`` for every condition.

    Returns
    -------
    list[list[ExampleTrace]]
        ``out[c][i]``: condition ``c`` on example ``i``.
    """
    from tqdm.auto import tqdm

    check_max_batch(max_batch)
    check_prefix_cache(prefix_cache)
    shared = prefix_cache == "shared" and supports_shared(dec.parts.layers)
    out: list[list[ExampleTrace | None]] = [[None] * len(examples) for _ in fns]
    chunks = list(_chunks(len(examples), len(fns), max_batch))
    for ex_idx, cond_idx in tqdm(chunks, desc=f"{mode.value} x{len(fns)}", unit="batch", leave=False,
                                 disable=not progress or len(chunks) <= 1):
        exs = [examples[i] for i in ex_idx]
        rows: list[Row] = []
        extra: list[list[int]] = []
        group: list[int] = []
        spans = []
        for c in cond_idx:
            sel = [list((chosen if chosen_by is None else chosen_by[c])[i]) for i in ex_idx]
            if mode is InterventionMode.REPLAY:
                rs, ex = modes.replay_rows(dec, exs, sel, layers, fns[c])
            else:
                rs = modes.resume_rows(dec, exs, sel, layers, fns[c], mode, drop)
                ex = [sorted(r.z_at) for r in rs]
            spans.append((c, len(rows), len(rs)))
            rows += rs
            extra += ex
            group += ex_idx
        pre = prefill_and_decode(dec, rows, group, extra, mode, cfg, processor, shared)
        for c, start, n in spans:
            rs, gs = rows[start:start + n], pre.gathered[start:start + n]
            done = (modes.replay_finish(dec, tokenizer, exs, rs, gs) if mode is InterventionMode.REPLAY
                    else modes.resume_finish(dec, tokenizer, rs, gs, mode))
            for i, e in zip(ex_idx, done):
                out[c][i] = e
    return out  # type: ignore[return-value]


def prefill_and_decode(dec: Decoder, rows: list[Row], group: Sequence[Any], extra: list[list[int]],
                       mode: InterventionMode, cfg: GenerationConfig, processor: LogitsProcessor | None,
                       shared: bool) -> Any:
    """Prefill ``rows`` with one prefix per ``group`` (:func:`~latentprobe.engine.fork.prefill_shared`; ``shared``:
    one copy of its KV cache, suffix blocks preallocated for the decode budget) and, except in replay, decode them;
    the prefill's state, with what each row gathered.

    Parameters
    ----------
    dec, rows, group, extra
        The decoder, the rows, each row's prefix group, and each row's further positions to gather.
    mode, cfg, processor
        The intervention mode, the run's settings and logits processor.
    shared : bool
        One copy of each group's prefix cache (the caller has checked the model supports it).

    Returns
    -------
    _Prefill
    """
    replay = mode is InterventionMode.REPLAY
    budget = 0 if replay else 2 + max(cfg.max_new_tokens - r.budget_used() for r in rows)
    pre = prefill_shared(dec, rows, group, gather_extra=extra, read_logits=replay, shared=shared, budget=budget)
    if not replay:
        with attached(pre.cache, dec.parts.layers):
            dec._decode(rows, cfg, processor, pre)
    return pre


def clean_as_control(trace: LatentTrace, config: Mapping[str, Any]) -> LatentTrace:
    """The clean trace standing in for the no-op control, its config saying so (``"control": "clean_trace"``).

    Parameters
    ----------
    trace : LatentTrace
        The clean trace.
    config : Mapping[str, Any]
        The control's config, as :meth:`LatentRunner.intervene` writes it.

    Returns
    -------
    LatentTrace
    """
    return LatentTrace(trace.examples, trace.spec, {**config, "control": "clean_trace"})
