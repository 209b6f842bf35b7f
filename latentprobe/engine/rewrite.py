"""Run a :class:`~latentprobe.interventions.rewrite.RewriteSpan`: a recorded sequence up to a text span's open
marker, the new text in the span, the close marker, then the answer decoded afresh (:func:`rewrite_spans`)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import torch

from latentprobe.engine import modes
from latentprobe.engine.modes import InterventionMode
from latentprobe.engine.protocol import resume_at_answer
from latentprobe.engine.rows import Row
from latentprobe.errors import InterventionError
from latentprobe.interventions.rewrite import RewriteSpan
from latentprobe.trace import ExampleTrace, LatentTrace, Segment

if TYPE_CHECKING:  # pragma: no cover
    from latentprobe.engine import LatentRunner
    from latentprobe.engine.loop import LogitsProcessor

__all__ = ["text_spans", "rewrite_spans"]


def text_spans(e: ExampleTrace) -> list[tuple[int, int]]:
    """The text spans of a recorded example: ``(open marker position, end)`` per span, where the span's
    tokens are the positions ``open + 1 .. end - 1`` (``end`` is the close marker, or the sequence's end).

    Parameters
    ----------
    e : ExampleTrace
        A recorded example.

    Returns
    -------
    list of (int, int)
    """
    segs = e.segments.tolist()
    out = []
    for o, s in enumerate(segs):
        if s != Segment.OPEN:
            continue
        end = o + 1
        while end < len(segs) and segs[end] == Segment.LATENT:
            end += 1
        out.append((o, end))
    return out


def _row(runner: LatentRunner, e: ExampleTrace, iv: RewriteSpan, new_ids: list[int]) -> tuple[Row, list[int]]:
    """The row of one example: recorded prefix through the open marker, the new span, the close marker."""
    spans = text_spans(e)
    if not spans:
        raise InterventionError(f"RewriteSpan: example {e.example_id!r} has no text span (no open marker); "
                                "rewrite only examples that entered the span, or pass missing='keep'.")
    try:
        o, end = spans[iv.span]
    except IndexError:
        raise InterventionError(f"RewriteSpan.span={iv.span}: example {e.example_id!r} has {len(spans)} span(s).") from None
    if iv.same_length and len(new_ids) != end - o - 1:
        raise InterventionError(
            f"RewriteSpan(field={iv.field!r}, same_length=True): the text for example {e.example_id!r} in {iv.path} "
            f"has {len(new_ids)} token(s) but the span has {end - o - 1}; write a paraphrase of the same length.")
    rs = runner.rspec
    ids = e.input_ids[: o + 1].tolist() + list(new_ids) + [int(rs.close_id)] + list(rs.after_close_ids)
    segs = e.segments[: o + 1].tolist() + [Segment.LATENT] * len(new_ids) + [Segment.CLOSE] * (1 + len(rs.after_close_ids))
    pos = e.latent_positions.tolist()
    z_at = {p: e.z[k] for k, p in enumerate(pos) if p < o}
    new_pos = list(range(o + 1, o + 1 + len(new_ids)))
    if new_ids:
        with torch.no_grad():
            emb = runner.parts.embed(torch.tensor(new_ids, device=runner.parts.input_device)).cpu()
        emb = emb.to(e.z.dtype) if len(e.z) else emb.float()
        z_at.update({p: emb[j] for j, p in enumerate(new_pos)})
    state = dataclasses.replace(resume_at_answer(len(z_at), can_open=True),
                                segments_done=segs.count(Segment.OPEN))
    r = Row(index=e.index, example_id=e.example_id, ids=ids, segs=segs, prompt_len=e.prompt_len, state=state,
            z_at=z_at, image_embeds=e.image_embeds, grid_thw=e.image_grid_thw, source=e)
    r.answer_reset = True
    keep = sorted(z_at)
    r.rec.lat_pos = keep
    r.rec.lat_z = [z_at[p].float().cpu() for p in keep]
    d, n_res = runner.parts.hidden_size, runner.parts.n_layers + 1
    r.rec.lat_h = [e.h_src[k] if p < o else torch.zeros(d) for k, p in enumerate(keep)]  # new slots: set after the prefill
    r.rec.lat_hidden = [e.hidden[k] if p < o else torch.zeros(n_res, d) for k, p in enumerate(keep)]
    return r, new_pos


def rewrite_spans(runner: LatentRunner, trace: LatentTrace, rewrite: RewriteSpan, *, max_new_tokens: int | None = None,
                  seed: int | None = None, logits_processor: LogitsProcessor | None = None, batch_size: int = 8,
                  progress: bool = True) -> LatentTrace:
    """Replace one text span of every example with the text ``rewrite`` gives, then decode the answer.

    Positions before the span are the recorded ones (their ids and fed vectors unchanged); the span holds
    the new text's tokens (their embeddings fed, as the model feeds its own text), then the close marker;
    decoding continues from there with the trace's settings (draws keyed by seed, example id and position).

    Parameters
    ----------
    runner : LatentRunner
        The runner that recorded ``trace`` (a ``mediator="text"`` spec).
    trace : LatentTrace
        The recorded run.
    rewrite : RewriteSpan
        The rewrite file, its field and the span to replace.
    max_new_tokens, seed, logits_processor, batch_size, progress
        As in :meth:`~latentprobe.engine.LatentRunner.intervene`.

    Returns
    -------
    LatentTrace
        One example per recorded one (``meta["rewritten"]``: whether its span was replaced).

    Raises
    ------
    InterventionError
        The spec has no text mediator, an example has no line in the file (``missing="error"``) or no such
        span, or a ``same_length`` text has another token count.
    """
    if not isinstance(rewrite, RewriteSpan):
        raise InterventionError(f"rewrite_spans takes a RewriteSpan, got {type(rewrite).__name__}.")
    if runner.spec.mediator != "text":
        raise InterventionError(f"RewriteSpan rewrites text spans, but spec {runner.spec.name!r} has "
                                f"mediator={runner.spec.mediator!r}; use it on a mediator='text' model (capimagine).")
    _, _, _, cfg, _ = runner._setup(trace, [None], None, (0,), "redecode", max_new_tokens, batch_size, False, seed)
    texts = rewrite.texts()
    lacking = [e.example_id for e in trace if e.example_id not in texts]
    if lacking and rewrite.missing == "error":
        raise InterventionError(f"RewriteSpan: {len(lacking)} example(s) have no {rewrite.field!r} line in "
                                f"{rewrite.path} (first: {lacking[0]!r}); add them, or pass missing='keep'.")
    dec, tok = runner._decoder, runner.tokenizer
    out: list[ExampleTrace] = []
    for idx in modes.batches(list(range(len(trace))), batch_size, progress, "rewrite"):
        rows, extra, done, fresh = [], [], [], []
        for i in idx:
            e = trace.examples[i]
            text = texts.get(e.example_id)
            new = None if text is None else tok(text, add_special_tokens=False).input_ids
            if new is None:
                done.append(i)
                continue
            r, new_pos = _row(runner, e, rewrite, [int(t) for t in new])
            rows.append(r)
            fresh.append(new_pos)
            extra.append(sorted(set(r.z_at) | {p - 1 for p in new_pos}))
        gathered = dec.run(rows, cfg, logits_processor, gather_extra=extra, read_logits=False) if rows else []
        for r, g, new_pos in zip(rows, gathered, fresh):  # h_src of a new slot: the output one position before
            for k, p in enumerate(r.rec.lat_pos):
                if p in new_pos:
                    r.rec.lat_h[k] = g[p - 1].h.float().cpu()
        made = modes.resume_finish(dec, tok, rows, gathered, InterventionMode.REDECODE) if rows else []
        by_index = {r.index: ex for r, ex in zip(rows, made)}
        for i in idx:
            e = trace.examples[i]
            if i in done:
                out.append(dataclasses.replace(e, meta={**e.meta, "rewritten": False}))
            else:
                ex = by_index[e.index]
                out.append(dataclasses.replace(ex, meta={**ex.meta, "rewritten": True}))
    config = modes.result_config(trace, InterventionMode.REDECODE, rewrite, None, (0,), False)
    return LatentTrace(tuple(out), trace.spec, config)
