"""The batched decode loop: prefill every row's prefix, then step, asking the protocol what each row feeds.

Rows are left-padded; every step feeds one position per unfinished row (a token embedding, or a
vector in place of it at a latent slot) through :class:`~latentprobe.engine.forward.TracedForward`
with a shared KV cache. Residuals are gathered at latent positions; interventions go through
:func:`~latentprobe.engine.patching.apply_intervention`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from latentprobe.engine.forward import ForwardOut, TracedForward, new_cache
from latentprobe.engine.inputs import CapturePositions, capture_positions
from latentprobe.engine.masks import MaskRule, segment_attention_mask
from latentprobe.engine.parts import ModelParts
from latentprobe.engine.patching import LayerPatch, apply_intervention, layer_patch, prefix_patches
from latentprobe.engine.protocol import (Action, Decision, End, EndReason, FeedLatent, FeedTextLatent, FeedToken,
                                         ProtocolMode, needs_sample, step)
from latentprobe.engine.rows import Gathered, Row, _Prefill
from latentprobe.engine.sampling import (GenerationConfig, LogitsProcessor, _penalise, choose, end_distance,
                                         sampling_probs)
from latentprobe.errors import ImageBatchError, SpecError
from latentprobe.spec import ResolvedSpec
from latentprobe.trace import Segment

if TYPE_CHECKING:  # pragma: no cover
    from transformers import DynamicCache

__all__ = ["GenerationConfig", "LogitsProcessor", "Gathered", "Decoder", "choose", "sampling_probs", "end_distance"]


class Decoder:
    """Prefill and decode batches of rows on one model.

    Parameters
    ----------
    model, parts, rspec
        The Hugging Face model, its located parts, and the spec with its token ids.
    projection, mask_rule, head, end_embedding
        The latent projection ``f`` (``None``: identity), the attention rule (``None``: causal), the LVR head
        and the learned end embedding of a ``stop="similarity"`` spec.
    """

    def __init__(self, model: torch.nn.Module, parts: ModelParts, rspec: ResolvedSpec, *,
                 projection: Callable[[Tensor], Tensor] | None, mask_rule: MaskRule | None,
                 head: torch.nn.Module | None = None, end_embedding: Tensor | None = None) -> None:
        self.model = model
        self.parts = parts
        self.rspec = rspec
        self._eos_spec = rspec  # rspec with the current run's eos list (GenerationConfig.eos_token_ids)
        self.projection = projection
        self.mask_rule = mask_rule
        self.forward = TracedForward(model, parts)
        # inputs go where the token embedding lives (not next(model.parameters()): under a device_map
        # the first parameter may sit on another device)
        self.device, self.dtype = parts.input_device, parts.dtype
        self.trace_dtype: torch.dtype | None = None  # None: recorded tensors keep the model's dtype
        self.capture_layers: tuple[int, ...] | None = None  # None: every residual layer is recorded
        spec = rspec.spec
        if spec.head != "none" and head is None:
            raise SpecError(f"spec {spec.name!r} has head={spec.head!r}; pass head=<module> (e.g. "
                            "latentprobe.engine.lvr.LvrHead loaded with the checkpoint's lvr_head weights).")
        if head is not None and spec.head == "none":
            raise SpecError(f"a head module was given but spec {spec.name!r} has head='none'; set head='latent' "
                            "(LVR inference) or 'open_and_latent' in the spec, or drop the module.")
        if spec.stop == "similarity":
            if end_embedding is None:
                raise SpecError(f"spec {spec.name!r} has stop='similarity'; pass end_embedding=<tensor of the hidden "
                                "size> (LVR: the checkpoint's lvr_latent_end_emb).")
            if tuple(end_embedding.shape) != (parts.hidden_size,):
                raise SpecError(f"end_embedding has shape {tuple(end_embedding.shape)}; the model's hidden size is "
                                f"{parts.hidden_size}: give one vector of that size.")
        self.head = head
        self.end_embedding = None if end_embedding is None else end_embedding.detach().float().cpu()

    def keep(self, t: Tensor) -> Tensor:
        """A recorded tensor: on the CPU, in ``trace_dtype`` (default: its own dtype)."""
        return t.detach().to("cpu", self.trace_dtype or t.dtype)

    @property
    def n_recorded_layers(self) -> int:
        return self.parts.n_layers + 1 if self.capture_layers is None else len(self.capture_layers)

    # ------------------------------------------------------------------ inputs of a forward
    def embed_prefix(self, rows: list[Row], positions: bool = True) -> tuple[Tensor, Tensor, Tensor | None, list[int],
                                                                           Tensor | None]:
        """Left-padded prefix embeddings, 2-D mask, positions, pad offsets and rope deltas (positions and deltas
        ``None`` without ``positions``: the caller has them already)."""
        B = len(rows)
        T = max(len(r.ids) for r in rows)
        ids = torch.full((B, T), self.rspec.pad_id, dtype=torch.long)
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
                    raise ImageBatchError(f"example {r.example_id!r}: {len(img_pos)} image positions but "
                                          f"{r.image_embeds.shape[0]} image features.")
                embeds[b, torch.tensor(img_pos, device=embeds.device) + off] = r.image_embeds.to(embeds.device, embeds.dtype)
            for p, z in r.z_at.items():
                embeds[b, p + off] = z.to(self.device, embeds.dtype)
        deltas = None
        if not positions:
            return embeds, mask, None, offsets, None
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

    def attention(self, col_segs: Int[Tensor, "b t"], col_mask: Int[Tensor, "b t"], q_len: int,
                  cache: Any = None) -> Tensor:
        """2-D padding mask, or a 4-D additive mask when a mask rule is set; a shared-prefix cache makes its own
        (over its suffix columns: :meth:`~latentprobe.engine.prefix_cache.SharedPrefixCache.step_mask`)."""
        if hasattr(cache, "step_mask"):
            return cache.step_mask(col_segs, col_mask, q_len)
        if self.mask_rule is None:
            return col_mask.to(self.device)
        return segment_attention_mask(col_segs, col_mask, q_len, self.mask_rule, self.dtype).to(self.device)

    def latent_fn(self, h: Float[Tensor, "d"]) -> Float[Tensor, "d"]:
        """``f(h)``: identity, or the spec's projection module."""
        if self.projection is None:
            return h
        with torch.no_grad():  # a projection module gets h on its own device (CodiProjection also casts its dtype)
            p = next(self.projection.parameters(), None) if isinstance(self.projection, torch.nn.Module) else None
            return self.projection(h if p is None else h.to(p.device)).to(h.device, h.dtype)

    def _prefix_patches(self, rows: list[Row], offsets: list[int]) -> list[LayerPatch]:
        """Layer >= 1 patches inside the prefix: at latent slots, and rows' position patches."""
        return prefix_patches(rows, offsets, self.device)

    # ------------------------------------------------------------------ prefill and decode
    def run(self, rows: list[Row], cfg: GenerationConfig, processor: LogitsProcessor | None, *,
            capture: CapturePositions | None = None, gather_extra: Sequence[Sequence[int]] | None = None,
            decode: bool = True, read_logits: bool = True) -> list[dict[int, Gathered]]:
        """Prefill the rows' prefixes, then (``decode``) step until every row has ended.

        Parameters
        ----------
        rows, cfg, processor
            The rows (changed in place), how tokens are chosen, and the logits processor.
        capture, gather_extra, decode, read_logits
            Prompt positions to capture, further positions to gather per row, whether to decode after the
            prefill, and whether to read the gathered positions' logits.

        Returns
        -------
        list[dict[int, Gathered]]
            The prefill's gathered positions per row: the prefix's latent slots, the ``capture`` positions
            and ``gather_extra`` (with their logits unless ``read_logits=False``).
        """
        pre = self._prefill(rows, capture, gather_extra, read_logits)
        if decode:
            self._decode(rows, cfg, processor, pre)
        return pre.gathered

    def _wanted(self, rows: list[Row], capture: Any,
                gather_extra: Sequence[Sequence[int]] | None,
                read_logits: bool = True) -> tuple[list[list[int]], list[list[int]]]:
        """Per row, the prefix positions to gather (latent slots, captured, extra, the similarity stop's
        previous output) and those whose logits are read (the extra ones); records captured positions."""
        want: list[list[int]] = []
        for b, r in enumerate(rows):
            ps = set(r.z_at)
            if capture is not None:
                cp = capture_positions(capture, r)
                r.rec.captured_positions = torch.tensor(cp, dtype=torch.long)
                ps |= set(cp)
            if gather_extra is not None:
                ps |= set(gather_extra[b])
            if self.rspec.spec.stop == "similarity" and len(r.ids) >= 2:
                ps.add(len(r.ids) - 2)  # the previous step's output, compared with the end embedding
            want.append(sorted(ps))
        read = ([sorted(set(ps)) for ps in gather_extra] if gather_extra is not None and read_logits
                else [[] for _ in rows])
        return want, read

    def gathered_from(self, out: ForwardOut, want: list[list[int]], read: list[list[int]]) -> list[dict[int, Gathered]]:
        """Unpack a forward's gathered positions (``want``, in order) and their logits (``read``) per row.

        Parameters
        ----------
        out, want, read
            A forward's output, the gathered positions per row, and those whose logits were read.

        Returns
        -------
        list[dict[int, Gathered]]
        """
        gathered: list[dict[int, Gathered]] = [{} for _ in want]
        if not any(want):
            return gathered
        lg: dict[tuple[int, int], Tensor] = {}
        if any(read):
            lg = {(b, p): out.logits_gather[k].float().cpu()
                  for k, (b, p) in enumerate((b, p) for b, ps in enumerate(read) for p in ps)}
        res = out.residuals.detach().to("cpu")  # one move per forward
        k = 0
        for b, ps in enumerate(want):
            for p in ps:
                gathered[b][p] = Gathered(self.keep(res[k]), self.keep(out.h_gather[k]), lg.get((b, p)))
                k += 1
        return gathered

    def _prefill(self, rows: list[Row], capture: Any, gather_extra: Sequence[Sequence[int]] | None,
                 read_logits: bool = True) -> _Prefill:
        embeds, mask, pos, offsets, deltas = self.embed_prefix(rows)
        B, T = mask.shape
        col_segs = torch.full((B, T), Segment.PAD, dtype=torch.long)
        for b, r in enumerate(rows):
            col_segs[b, offsets[b]:] = torch.tensor(r.segs)
        want, read = self._wanted(rows, capture, gather_extra, read_logits)
        gather = logits_at = None
        if any(want):
            gr = torch.tensor([b for b, ps in enumerate(want) for _ in ps], dtype=torch.long)
            gc = torch.tensor([p + offsets[b] for b, ps in enumerate(want) for p in ps], dtype=torch.long)
            gather = (gr, gc)  # moved to each indexed tensor's device by the forward
        # logits only where they are read: the last position, and the extra positions asked for
        if any(read):
            logits_at = (torch.tensor([b for b, ps in enumerate(read) for _ in ps], dtype=torch.long),
                         torch.tensor([p + offsets[b] for b, ps in enumerate(read) for p in ps], dtype=torch.long))
        cache = new_cache(self.model)
        out = self.forward(embeds, self.attention(col_segs, mask, T), pos, cache, gather,
                           self._prefix_patches(rows, offsets), layers=self.capture_layers, logits_at=logits_at)
        gathered = self.gathered_from(out, want, read)
        return self.finish_prefill(rows, gathered, out.h_last, out.logits_last, cache, col_segs, mask, mask.sum(-1),
                                   deltas)

    def finish_prefill(self, rows: list[Row], gathered: list[dict[int, Gathered]], h_last: Tensor, logits_last: Tensor,
                       cache: DynamicCache, col_segs: Tensor, mask: Tensor, n_real: Tensor, deltas: Tensor | None) -> _Prefill:
        """Captured states, the head where it runs, the similarity stop's previous outputs: the loop's start.

        Parameters
        ----------
        rows, gathered, h_last, logits_last, cache, col_segs, mask, n_real, deltas
            The prefilled rows, what each gathered, the last final-norm outputs and logits, the KV cache, column
            segments, mask, real lengths and rope deltas.

        Returns
        -------
        _Prefill
        """
        for b, r in enumerate(rows):
            if r.rec.captured_positions is not None and any(gathered):
                cp = r.rec.captured_positions.tolist()
                r.rec.captured_hidden = (torch.stack([gathered[b][p].residual for p in cp]) if cp else
                                         torch.zeros(0, self.n_recorded_layers, self.parts.hidden_size,
                                                     dtype=self.trace_dtype or self.dtype))
        # h keeps the model's dtype (latents are fed and recorded in it); logits are read in float32
        logits_last = logits_last.float()
        if self.head is not None:  # the head's output replaces h where it runs; lm_head reads it
            for b, r in enumerate(rows):
                for p, g in gathered[b].items():
                    if self._headed(r.segs[p]):
                        h, lg = self._apply_head(g.h[None])
                        gathered[b][p] = g._replace(h=h[0].cpu(), logits=lg[0].cpu())
            last = [b for b, r in enumerate(rows) if self._headed(r.segs[-1])]
            if last:
                h_last, logits_last = h_last.clone(), logits_last.clone()
                h_last[last], logits_last[last] = self._apply_head(h_last[last])
        h_prev = None
        if self.rspec.spec.stop == "similarity":
            h_prev = torch.stack([gathered[b][len(r.ids) - 2].h.to(h_last.dtype) if len(r.ids) >= 2 else
                                  torch.full_like(h_last[b].cpu(), float("inf")) for b, r in enumerate(rows)]
                                 ).to(h_last.device)
        return _Prefill(cache, h_last, logits_last, col_segs, mask, n_real, deltas, gathered, h_prev)

    def _headed(self, seg: int) -> bool:
        """Whether the spec's head runs on the output of a position of segment ``seg``."""
        rule = self.rspec.spec.head
        return self.head is not None and (seg == Segment.LATENT or (rule == "open_and_latent" and seg == Segment.OPEN))

    def _apply_head(self, h: Float[Tensor, "n d"]) -> tuple[Float[Tensor, "n d"], Float[Tensor, "n vocab"]]:
        """``head(h)`` and the logits ``lm_head`` computes from it (float32, on h's device)."""
        w = next(self.head.parameters())  # type: ignore[union-attr]
        with torch.no_grad():
            x = self.head(h.to(w.device, w.dtype))  # type: ignore[misc]
            lg = self.parts.lm_head(x.to(self.device, self.dtype))
        return x.float().to(h.device), lg.float().to(h.device)

    def _near_end(self, r: Row, h_prev: Tensor | None, b: int) -> bool:
        """``stop="similarity"``: the previous step's output within the threshold of the end embedding."""
        spec = self.rspec.spec
        if h_prev is None or r.state.mode is not ProtocolMode.LATENT or r.state.pending:
            return False
        return bool(end_distance(h_prev[b], self.end_embedding, spec.end_distance) < spec.end_threshold)

    def _choose(self, r: Row, logits: Tensor, cfg: GenerationConfig, processor: LogitsProcessor | None) -> int:
        """One chosen token: penalty, suppressed tokens, the user's processor, then greedy or a keyed draw."""
        scores = logits
        if cfg.repetition_penalty != 1.0:
            scores = _penalise(scores, r.ids, cfg.repetition_penalty)
        if self.rspec.suppress_ids:
            scores = scores.clone()
            scores[list(self.rspec.suppress_ids)] = float("-inf")
        scores = torch.log_softmax(scores, dim=-1)
        if processor is not None:
            scores = processor(list(r.ids), scores.clone(), r.index)
        return choose(scores, cfg, example_id=r.example_id, position=len(r.ids))

    def _reads(self, rows: list[Row], cfg: GenerationConfig, h_prev: Tensor | None) -> tuple[list[bool], list[bool]]:
        """Per row: whether the similarity stop sees the end, and whether a token is chosen at its next step."""
        near = [r.end is None and self._near_end(r, h_prev, b) for b, r in enumerate(rows)]
        need = [r.end is None and needs_sample(self.rspec, r.state, cfg.max_new_tokens - r.budget_used(), near[b])
                for b, r in enumerate(rows)]
        return near, need

    def _all_end(self, rows: list[Row], cfg: GenerationConfig, near: list[bool]) -> bool:
        """Whether every unfinished row ends at its next step without choosing a token; if so they are ended."""
        ends = []
        for b, r in enumerate(rows):
            if r.end is None:
                action, state = step(self.rspec, r.state, Decision(None, cfg.max_new_tokens - r.budget_used(), near[b]))
                if not isinstance(action, End):
                    return False
                ends.append((r, action, state))
        for r, action, state in ends:
            r.end, r.state = action, state
        return True

    def _next(self, r: Row, logits: Tensor | None, lp: Tensor | None, token: int | None, near_end: bool,
              cfg: GenerationConfig, processor: LogitsProcessor | None, texts: list[tuple[int, int]]) -> Action:
        """Ask the protocol for the row's next input. ``lp``: the row's log-probabilities where a token is
        chosen; ``token``: the choice when it was made for the whole batch at once. A generated token's
        position is put in ``texts`` (its log-probability is read for all rows at once)."""
        budget_left = cfg.max_new_tokens - r.budget_used()
        if lp is not None and token is None:
            token = self._choose(r, logits, cfg, processor)  # type: ignore[arg-type]
        # every id of the run's eos list ends a sequence (the checkpoint's generation_config list)
        if self._eos_spec.eos_ids != cfg.eos_token_ids:
            self._eos_spec = self.rspec.with_eos(cfg.eos_token_ids)
        action, r.state = step(self._eos_spec, r.state, Decision(token, budget_left, near_end))
        if isinstance(action, FeedTextLatent) and self.rspec.spec.open_mode == "none":
            pos = len(r.ids)  # no protocol: the recorded span is generated text, the answer's start
            texts.append((pos, int(action.token_id)))
            if pos == r.prompt_len or r.answer_reset:
                r.answer_reset = False
                r.rec.dist_at[pos] = lp.cpu()  # type: ignore[union-attr]
        inside = isinstance(action, (FeedLatent, FeedTextLatent)) or (
            isinstance(action, FeedToken) and action.segment == Segment.CLOSE)
        if token is not None and not inside:  # free text, or the token fed when latent mode is left
            pos = len(r.ids)
            prev = r.segs[-1] if r.segs else Segment.TEXT
            first = prev in (Segment.CLOSE, Segment.TEXT, Segment.IMAGE, Segment.LATENT) or r.answer_reset
            if first:
                r.answer_reset = False
            if isinstance(action, FeedToken) and action.segment == Segment.GEN:
                texts.append((pos, token))
                if first:
                    r.rec.dist_at[pos] = lp.cpu()  # type: ignore[union-attr]
            elif isinstance(action, End) and action.reason is EndReason.EOS and first:
                r.rec.dist_at[pos] = lp.cpu()  # type: ignore[union-attr]  # an empty answer keeps its first distribution
        return action

    def _decode(self, rows: list[Row], cfg: GenerationConfig, processor: LogitsProcessor | None,
                pre: _Prefill) -> None:
        """Step until every row has ended. Per step: one ``log_softmax`` over the rows that choose a token (and
        one batched greedy ``argmax`` when nothing else shapes the choice), one read of the chosen tokens'
        log-probabilities, and logits computed only when the next step chooses a token somewhere."""
        cache, h_last, logits, h_prev = pre.cache, pre.h_last, pre.logits, pre.h_prev
        col_segs, col_mask, n_real, deltas = pre.col_segs, pre.col_mask, pre.n_real, pre.deltas
        n = len(rows)
        plain = (not cfg.do_sample and cfg.repetition_penalty == 1.0 and not self.rspec.suppress_ids
                 and processor is None)
        near, need = self._reads(rows, cfg, h_prev)
        while True:
            feed_ids = torch.full((n,), self.rspec.pad_id, dtype=torch.long)
            feed_seg = torch.full((n,), Segment.PAD, dtype=torch.long)
            feed_z: dict[int, Tensor] = {}
            chosen = [b for b in range(n) if need[b]]
            lps: dict[int, Tensor] = {}
            greedy: dict[int, int] = {}
            if chosen:
                lp_all = torch.log_softmax(logits if len(chosen) == n else logits[chosen], dim=-1)
                lps = {b: lp_all[k] for k, b in enumerate(chosen)}
                if plain:
                    greedy = dict(zip(chosen, lp_all.argmax(-1).tolist()))
            texts: list[tuple[int, int, int]] = []
            for b, r in enumerate(rows):
                if r.end is not None:
                    continue
                latent_step = r.state.total
                mine: list[tuple[int, int]] = []
                action = self._next(r, None if logits is None else logits[b], lps.get(b), greedy.get(b), near[b],
                                    cfg, processor, mine)
                texts += [(b, pos, tok) for pos, tok in mine]
                if isinstance(action, End):
                    r.end = action
                elif isinstance(action, FeedToken):
                    r.ids.append(int(action.token_id))
                    r.segs.append(int(action.segment))
                    feed_ids[b] = int(action.token_id)
                    feed_seg[b] = action.segment
                else:
                    feed_z[b] = self._feed_latent(r, action, h_last[b], latent_step)
                    feed_seg[b] = Segment.LATENT
            if texts:  # the generated tokens' log-probabilities, read at once
                vals = torch.stack([lps[b][t] for b, _, t in texts]).tolist()
                for (b, pos, _), v in zip(texts, vals):
                    rows[b].rec.text_lp[pos] = float(v)
            if all(r.end is not None for r in rows):
                return
            with torch.no_grad():
                emb = self.parts.embed(feed_ids.to(self.device)[:, None]).clone()
            for b, z in feed_z.items():
                emb[b, 0] = z.to(self.device, emb.dtype)
            col_segs = torch.cat([col_segs, feed_seg[:, None]], dim=1)
            col_mask = torch.cat([col_mask, torch.ones(n, 1, dtype=col_mask.dtype)], dim=1)
            if deltas is not None:
                pos = (n_real + deltas).view(1, -1, 1).expand(3, -1, 1)
            else:
                pos = n_real.view(-1, 1)
            n_real = n_real + 1
            latent_rows = list(feed_z)
            gather = None
            patches: list[LayerPatch] = []
            if latent_rows:
                gr = torch.tensor(latent_rows, dtype=torch.long)
                gather = (gr, torch.zeros_like(gr))  # the step's only position
                patches = self._step_patches(rows, latent_rows)
            # what the next step reads: h_prev becomes this step's input state, and logits only where a token is chosen
            near, need = self._reads(rows, cfg, h_last if h_prev is not None else None)
            if not latent_rows and not any(need) and self._all_end(rows, cfg, near):
                return  # the forward's outputs would never be read: every row ends at the next step
            # traced only where a latent is captured or patched; a plain step's last output is read by a hook
            out = self.forward(emb, self.attention(col_segs, col_mask, 1, cache), pos.to(self.device), cache, gather,
                               patches, layers=self.capture_layers, logits=any(need) or self.head is not None,
                               untraced=True)
            if latent_rows:
                res = self.keep(out.residuals)  # one move per step
                for k, b in enumerate(latent_rows):
                    rows[b].rec.lat_hidden.append(res[k])
            if h_prev is not None:
                h_prev = h_last
            h_last = out.h_last
            logits = None if out.logits_last is None else out.logits_last.float()
            headed = [b for b in range(n) if self._headed(int(feed_seg[b]))]
            if headed:
                h_last[headed], logits[headed] = self._apply_head(h_last[headed])

    def _feed_latent(self, r: Row, action: FeedLatent | FeedTextLatent, h: Tensor, latent_step: int) -> Tensor:
        """The vector fed at a latent slot (patched at layer 0 when asked); records the slot."""
        if isinstance(action, FeedTextLatent):  # explicit text imagination: the token's embedding is fed
            with torch.no_grad():
                z = self.keep(self.parts.embed(torch.tensor([action.token_id], device=self.device))[0])
            slot_id = action.token_id
        else:
            z = self.keep(self.latent_fn(h))
            slot_id = action.slot_id
        pt = r.patches.get(latent_step)
        if pt is not None and 0 in pt.layers:
            z = apply_intervention(pt.fn, z, step=latent_step, example=r.source, layer=0, mode=pt.mode)
        r.rec.lat_pos.append(len(r.ids))
        r.ids.append(int(slot_id))
        r.segs.append(Segment.LATENT)
        r.rec.lat_z.append(z)
        r.rec.lat_h.append(self.keep(h))
        return z

    def _step_patches(self, rows: list[Row], latent_rows: list[int]) -> list[LayerPatch]:
        """Layer >= 1 patches at this step's latent positions (column 0 of a one-position step)."""
        by_layer: dict[int, list] = {}
        for b in latent_rows:
            r = rows[b]
            s = r.state.total - 1
            pt = r.patches.get(s)
            if pt is not None:
                for layer in pt.layers:
                    if layer >= 1:
                        by_layer.setdefault(layer, []).append((b, 0, s, r.source, pt))
        return [layer_patch(layer, items, self.device) for layer, items in by_layer.items()]
