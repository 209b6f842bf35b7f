"""Generation and the three intervention modes, built on the decode loop.

* ``replay``: one teacher-forced forward over prompt + generated ids with the recorded latents
  (patched where asked); later latents stay as recorded. The recorded answer is scored.
* ``propagate``: patch latent k, regenerate latents k+1..K and the answer from the state just
  before latent k.
* ``redecode``: keep all latents fixed (recorded or patched) and decode only the answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from latentprobe.errors import InputError
from latentprobe.engine.loop import Decoder, GenerationConfig, LogitsProcessor
from latentprobe.engine.patching import InterventionMode, Patch, apply_intervention
from latentprobe.engine.protocol import EndReason, ProtocolState, resume_at_answer, resume_at_latent
from latentprobe.engine.rows import Row
from latentprobe.interventions import Intervention
from latentprobe.trace import ExampleTrace, LatentTrace, Segment

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

__all__ = ["finish", "replay", "replay_rows", "replay_finish", "resume", "resume_rows", "resume_finish"]


def finish(dec: Decoder, tokenizer: PreTrainedTokenizerBase, r: Row, extra_meta: dict[str, Any] | None = None) -> ExampleTrace:
    """The example a finished row recorded.

    Parameters
    ----------
    dec : Decoder
        The runner's decoder (the model's parts, spec and recording state).
    tokenizer : PreTrainedTokenizerBase
        The model's tokenizer (decodes the answer text).
    r : Row
        A finished row (ids, segments and its record).
    extra_meta : dict[str, Any] | None
        Entries added to the example's ``meta``.

    Returns
    -------
    ExampleTrace
    """
    ids = torch.tensor(r.ids, dtype=torch.long)
    segs = torch.tensor(r.segs, dtype=torch.long)
    rec = r.rec
    # the answer: generated text after the last latent segment (its close marker, its last latent, or its
    # open marker when no latent follows it), or after the prompt
    last_close = max([p for p, s in enumerate(r.segs) if s in (Segment.CLOSE, Segment.LATENT, Segment.OPEN)]
                     + [r.prompt_len - 1])
    start = max(last_close + 1, r.prompt_len)
    ans_pos = [p for p in range(start, len(r.ids)) if r.segs[p] == Segment.GEN]
    if dec.rspec.spec.open_mode == "none":  # no protocol: the answer is all the generated text, span included
        ans_pos = [p for p in range(r.prompt_len, len(r.ids)) if r.segs[p] in (Segment.GEN, Segment.LATENT)]
    ans_ids = torch.tensor([r.ids[p] for p in ans_pos], dtype=torch.long)
    ans_lp = torch.tensor([rec.text_lp.get(p, float("nan")) for p in ans_pos], dtype=torch.float32)
    # the first answer token's distribution, also when that token was <eos> (an empty answer)
    first = rec.dist_at.get(ans_pos[0]) if ans_pos else rec.dist_at.get(len(r.ids))
    d = dec.parts.hidden_size
    L1 = dec.parts.n_layers + 1
    k = len(rec.lat_pos)
    eos = r.end is not None and r.end.reason is EndReason.EOS
    meta = {"eos": eos}
    meta.update(extra_meta or {})
    return ExampleTrace(
        index=r.index, example_id=r.example_id, input_ids=ids, segments=segs, prompt_len=r.prompt_len,
        latent_positions=torch.tensor(rec.lat_pos, dtype=torch.long),
        z=torch.stack(rec.lat_z) if k else torch.zeros(0, d),
        h_src=torch.stack(rec.lat_h) if k else torch.zeros(0, d),
        hidden=torch.stack(rec.lat_hidden) if k else torch.zeros(0, L1, d),
        answer_start=ans_pos[0] if ans_pos else len(r.ids),
        answer_ids=ans_ids, answer_logprobs=ans_lp,
        answer_text=tokenizer.decode(ans_ids.tolist(), skip_special_tokens=True).strip(),
        finished=eos, first_token_logprobs=first,
        captured_positions=rec.captured_positions, captured_hidden=rec.captured_hidden,
        image_embeds=r.image_embeds, image_grid_thw=r.grid_thw, meta=meta,
    )


def _fed(e: ExampleTrace, steps: list[int], fn: Intervention | None, layers: tuple[int, ...],
         mode: InterventionMode) -> dict[int, Tensor]:
    """The vectors fed at the recorded latent slots: step -> changed vector, where layer 0 is patched."""
    if fn is None or 0 not in layers:
        return {}
    return {s: apply_intervention(fn, e.z[s], step=s, example=e, layer=0, mode=mode) for s in steps}


def _row_from_example(e: ExampleTrace, upto: int, state: ProtocolState, z_override: dict[int, Tensor] | None = None,
                      drop: bool = False) -> Row:
    """A row whose prefix is positions [0, upto) of a recorded example, latents fed as recorded."""
    ids = e.input_ids[:upto].tolist()
    segs = e.segments[:upto].tolist()
    z_at = {p: (z_override or {}).get(k, e.z[k]) for k, p in enumerate(e.latent_positions.tolist()) if p < upto}
    prompt_len, dropped = e.prompt_len, 0
    if drop:  # the slots go; those after the prompt still count against the token budget
        keep = [p for p in range(upto) if segs[p] != Segment.LATENT]
        dropped = sum(1 for p in range(e.prompt_len, upto) if segs[p] == Segment.LATENT)
        prompt_len = sum(1 for p in keep if p < e.prompt_len)
        ids = [ids[p] for p in keep]
        segs = [segs[p] for p in keep]
        z_at = {}
    return Row(index=e.index, example_id=e.example_id, ids=ids, segs=segs, prompt_len=prompt_len, state=state,
               z_at=z_at, image_embeds=e.image_embeds, grid_thw=e.image_grid_thw, source=e, budget_offset=dropped)


def replay_rows(dec: Decoder, exs: list[ExampleTrace], chosen: list[list[int]], layers: tuple[int, ...],
                fn: Intervention | None) -> tuple[list[Row], list[list[int]]]:
    """The rows of a replay (whole recorded sequences) and the extra positions each one gathers.

    Parameters
    ----------
    dec : Decoder
        The runner's decoder (the model's parts, spec and recording state).
    exs : list[ExampleTrace]
        The recorded examples to intervene on.
    chosen : list[list[int]]
        For each example, the latent steps to change.
    layers : tuple[int, ...]
        Residual layers patched at those steps (0 is the fed vector).
    fn : Intervention | None
        The intervention, or ``None`` for the no-op control.

    Returns
    -------
    tuple[list[Row], list[list[int]]]
        The rows, and per row the positions gathered besides the latents.
    """
    mode = InterventionMode.REPLAY
    rows, extra = [], []
    for e, steps in zip(exs, chosen):
        r = _row_from_example(e, e.seq_len, ProtocolState(), _fed(e, steps, fn, layers, mode))
        if fn is not None:
            r.patches = {s: Patch(fn, layers, mode) for s in steps}
        rows.append(r)
        # gather: latent slots (already), sources p-1 of latents, answer-scoring positions
        srcs = [p - 1 for p in e.latent_positions.tolist()]
        scoring = list(range(e.answer_start - 1, e.seq_len - 1)) if e.answer_ids.numel() else [e.seq_len - 1]
        caps = e.captured_positions.tolist() if e.captured_positions is not None else []
        extra.append(sorted(set(srcs) | set(scoring) | set(caps)))
    return rows, extra


def replay(dec: Decoder, tokenizer: PreTrainedTokenizerBase, exs: list[ExampleTrace], chosen: list[list[int]],
           layers: tuple[int, ...], fn: Intervention | None) -> list[ExampleTrace]:
    """One teacher-forced forward per batch; the recorded answer is scored.

    Parameters
    ----------
    dec : Decoder
        The runner's decoder (the model's parts, spec and recording state).
    tokenizer : PreTrainedTokenizerBase
        The model's tokenizer (decodes the answer text).
    exs : list[ExampleTrace]
        The recorded examples to intervene on.
    chosen : list[list[int]]
        For each example, the latent steps to change.
    layers : tuple[int, ...]
        Residual layers patched at those steps (0 is the fed vector).
    fn : Intervention | None
        The intervention, or ``None`` for the no-op control.

    Returns
    -------
    list[ExampleTrace]
        One replayed example per recorded one.
    """
    rows, extra = replay_rows(dec, exs, chosen, layers, fn)
    gathered = dec.run(rows, GenerationConfig(max_new_tokens=1), None, gather_extra=extra, decode=False)
    return replay_finish(dec, tokenizer, exs, rows, gathered)


def replay_finish(dec: Decoder, tokenizer: PreTrainedTokenizerBase, exs: list[ExampleTrace], rows: list[Row],
                  gathered: list[dict[int, Any]]) -> list[ExampleTrace]:
    """The replayed examples, from what their rows' prefill gathered.

    Parameters
    ----------
    dec : Decoder
        The runner's decoder (the model's parts, spec and recording state).
    tokenizer : PreTrainedTokenizerBase
        The model's tokenizer (decodes the answer text).
    exs : list[ExampleTrace]
        The recorded examples to intervene on.
    rows : list[Row]
        The replay rows (from :func:`replay_rows`).
    gathered : list[dict[int, Any]]
        Per row, ``{position: captured state}`` the prefill gathered.

    Returns
    -------
    list[ExampleTrace]
    """
    mode = InterventionMode.REPLAY
    out = []
    for e, r, g in zip(exs, rows, gathered):
        lat_pos = e.latent_positions.tolist()
        hidden = torch.stack([g[p].residual for p in lat_pos]) if lat_pos else e.hidden.new_zeros(e.hidden.shape)
        h_src = torch.stack([g[p - 1].h for p in lat_pos]) if lat_pos else e.h_src.clone()
        z = torch.stack([r.z_at[p].float().cpu() for p in lat_pos]) if lat_pos else e.z.clone()
        if e.answer_ids.numel():
            lps = torch.stack([torch.log_softmax(g[p].logits, -1) for p in range(e.answer_start - 1, e.seq_len - 1)])
            tgt = e.input_ids[e.answer_start:]
            forced = lps.gather(1, tgt[:, None]).squeeze(1)
            masked = lps.clone()
            masked[:, list(dec.rspec.suppress_ids)] = float("-inf")  # tokens the spec never chooses (CODI's eot)
            pred = masked.argmax(-1)
            pred_lp = lps.gather(1, pred[:, None]).squeeze(1)
            # only score up to the recorded answer's own length (drop trailing non-answer tokens)
            n = e.answer_ids.numel()
            forced, pred, pred_lp = forced[:n], pred[:n], pred_lp[:n]
            first = lps[0]
        else:
            forced = pred_lp = torch.zeros(0)
            pred = torch.zeros(0, dtype=torch.long)
            first = torch.log_softmax(g[e.seq_len - 1].logits, -1) if e.first_token_logprobs is not None else None
        cap = None
        if e.captured_positions is not None:
            cp = e.captured_positions.tolist()
            cap = torch.stack([g[p].residual for p in cp]) if cp else e.captured_hidden
        out.append(e.replace(
            z=z, h_src=h_src, hidden=hidden, answer_ids=pred, answer_logprobs=pred_lp, captured_hidden=cap,
            forced_logprobs=forced, first_token_logprobs=first,
            answer_text=tokenizer.decode(pred.tolist(), skip_special_tokens=True).strip(),
            meta={**e.meta, "mode": mode.value},
        ))
    return out


def _resume_row(dec: Decoder, e: ExampleTrace, steps: list[int], layers: tuple[int, ...], fn: Intervention | None,
                mode: InterventionMode, drop: bool) -> Row:
    pos_list = e.latent_positions.tolist()
    patches = {s: Patch(fn, layers, mode) for s in steps} if fn is not None else {}
    if mode is InterventionMode.PROPAGATE and pos_list:
        # from the state just before the first changed latent (the first latent when nothing changes)
        upto = pos_list[steps[0]] if steps and fn is not None else pos_list[0]
        state = resume_at_latent(dec.rspec, e.input_ids.tolist(), e.segments.tolist(), e.prompt_len, upto)
        r = _row_from_example(e, upto, state)
        r.patches = patches
    elif mode is InterventionMode.PROPAGATE:  # no latents: decode the answer again
        r = _row_from_example(e, e.answer_start, resume_at_answer(0, can_open=True))
        r.answer_reset = True
    else:  # redecode: everything up to the answer is fixed
        upto = e.answer_start
        total = 0 if drop else sum(1 for p in pos_list if p < upto)
        r = _row_from_example(e, upto, resume_at_answer(total, can_open=False), _fed(e, steps, fn, layers, mode),
                              drop=drop)
        if not drop:
            r.patches = patches
        r.answer_reset = True
    # the prefix's latents are kept as records (their hidden states are refreshed by the prefill)
    keep = [] if drop else [p for p in pos_list if p < len(r.ids)]
    r.rec.lat_pos = keep
    r.rec.lat_z = [r.z_at[p].float().cpu() for p in keep]
    r.rec.lat_h = [e.h_src[k] for k in range(len(keep))]
    r.rec.lat_hidden = [e.hidden[k] for k in range(len(keep))]
    return r


def resume_rows(dec: Decoder, exs: list[ExampleTrace], chosen: list[list[int]], layers: tuple[int, ...],
                fn: Intervention | None, mode: InterventionMode, drop: bool) -> list[Row]:
    """The rows a propagate or redecode starts from (recorded prefixes, patches attached).

    Parameters
    ----------
    dec : Decoder
        The runner's decoder (the model's parts, spec and recording state).
    exs : list[ExampleTrace]
        The recorded examples to intervene on.
    chosen : list[list[int]]
        For each example, the latent steps to change.
    layers : tuple[int, ...]
        Residual layers patched at those steps (0 is the fed vector).
    fn : Intervention | None
        The intervention, or ``None`` for the no-op control.
    mode : InterventionMode
        ``propagate`` or ``redecode``.
    drop : bool
        ``redecode`` only: remove the latent slots, keeping the markers.

    Returns
    -------
    list[Row]
        One row per example, its prefix prefilled up to the first changed step.
    """
    return [_resume_row(dec, e, steps, layers, fn, mode, drop) for e, steps in zip(exs, chosen)]


def resume(dec: Decoder, tokenizer: PreTrainedTokenizerBase, exs: list[ExampleTrace], chosen: list[list[int]], layers: tuple[int, ...],
           fn: Intervention | None, mode: InterventionMode, cfg: GenerationConfig,
           processor: LogitsProcessor | None, drop: bool) -> list[ExampleTrace]:
    """Propagate or redecode: prefill a recorded prefix, then decode with the loop.

    Draws are keyed by (seed, example id, position), so with the trace's own settings and no
    intervention both modes choose exactly the tokens the trace holds, sampled or greedy.

    Parameters
    ----------
    dec : Decoder
        The runner's decoder (the model's parts, spec and recording state).
    tokenizer : PreTrainedTokenizerBase
        The model's tokenizer (decodes the answer text).
    exs : list[ExampleTrace]
        The recorded examples to intervene on.
    chosen : list[list[int]]
        For each example, the latent steps to change.
    layers : tuple[int, ...]
        Residual layers patched at those steps (0 is the fed vector).
    fn : Intervention | None
        The intervention, or ``None`` for the no-op control.
    mode : InterventionMode
        ``propagate`` or ``redecode``.
    cfg : GenerationConfig
        How tokens are chosen and the budget.
    processor : LogitsProcessor | None
        Logits processor applied before every generated token, or ``None``.
    drop : bool
        ``redecode`` only: remove the latent slots, keeping the markers.

    Returns
    -------
    list[ExampleTrace]
        One new example per recorded one.
    """
    rows = resume_rows(dec, exs, chosen, layers, fn, mode, drop)
    # the prefix's latents: their residuals are refreshed, their logits never read
    gathered = dec.run(rows, cfg, processor, gather_extra=[sorted(r.z_at) for r in rows], read_logits=False)
    return resume_finish(dec, tokenizer, rows, gathered, mode)


def resume_finish(dec: Decoder, tokenizer: PreTrainedTokenizerBase, rows: list[Row], gathered: list[dict[int, Any]],
                  mode: InterventionMode) -> list[ExampleTrace]:
    """The examples decoded rows hold; the prefix's latents get the hidden states the prefill refreshed.

    Parameters
    ----------
    dec : Decoder
        The runner's decoder (the model's parts, spec and recording state).
    tokenizer : PreTrainedTokenizerBase
        The model's tokenizer (decodes the answer text).
    rows : list[Row]
        The decoded rows, one per example.
    gathered : list[dict[int, Any]]
        Per row, ``{position: captured state}`` the prefill gathered.
    mode : InterventionMode
        ``propagate`` or ``redecode``.

    Returns
    -------
    list[ExampleTrace]
    """
    for r, g in zip(rows, gathered):
        for k, p in enumerate(r.rec.lat_pos):
            if p in g:
                r.rec.lat_hidden[k] = g[p].residual
    return [finish(dec, tokenizer, r, {"mode": mode.value}) for r in rows]


def result_config(trace: LatentTrace, imode: InterventionMode, fn: Intervention | None, steps: Sequence[int] | None,
                  layers: Sequence[int], drop_latents: bool) -> dict[str, Any]:
    """The config of an intervened trace: the source trace's, with what was done to it.

    Parameters
    ----------
    trace : LatentTrace
        The source trace.
    imode : InterventionMode
        The mode that ran.
    fn : Intervention | None
        The intervention, or ``None`` for the no-op control.
    steps : Sequence[int] | None
        The steps asked for (``None``: all).
    layers : Sequence[int]
        The patched layers.
    drop_latents : bool
        Whether the latent slots were removed.

    Returns
    -------
    dict[str, Any]
    """
    return {**trace.config, "mode": imode.value, "intervention": None if fn is None else fn.to_config(),
            "steps": None if steps is None else sorted({int(s) for s in steps}), "layers": list(layers),
            "drop_latents": drop_latents, "source_mode": trace.config.get("mode")}


def check_trace(trace: Any, hidden_size: int) -> None:
    """Refuse a non-trace or a trace recorded by a model of another hidden size, before anything runs.

    Parameters
    ----------
    trace : Any
        What was given as the trace.
    hidden_size : int
        The runner's hidden size.
    """
    if not isinstance(trace, LatentTrace):
        raise InputError(f"trace={type(trace).__name__}: intervene takes the LatentTrace returned by run().")
    if len(trace) == 0:
        raise InputError("trace has no examples; run() some prompts first.")
    for e in trace.examples:
        if e.z.ndim != 2 or (e.z.shape[0] > 0 and e.z.shape[-1] != hidden_size):
            raise InputError(f"example {e.example_id!r}: the trace's latents have shape {tuple(e.z.shape)} but this "
                             f"runner's hidden size is {hidden_size}; intervene with the runner (model) that "
                             "recorded the trace.")


def batches(items: list, size: int, progress: bool, desc: str) -> Iterator[list]:
    """``items`` in chunks of ``size``, under a progress bar when asked and there is more than one.

    Parameters
    ----------
    items : list
        The items to chunk.
    size : int
        Items per chunk.
    progress : bool
        Show a progress bar.
    desc : str
        The progress bar's label.

    Returns
    -------
    Iterator[list]
    """
    chunks = [items[i:i + size] for i in range(0, len(items), size)]
    yield from tqdm(chunks, desc=desc, unit="batch", disable=not progress or len(chunks) <= 1, leave=False)
