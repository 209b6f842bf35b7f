"""Building the loop's rows from prompts and images: chat messages, tokenising, images through the
checkpoint's processor, image-token expansion, the protocol's start state, and the prompt positions
to capture."""

from __future__ import annotations

from collections import Counter
from numbers import Integral
from typing import TYPE_CHECKING, Any, Callable, Sequence, Union

import torch
from torch import Tensor

from latentprobe.engine.parts import ModelParts
from latentprobe.engine.prompts import (PromptConvention, VideoNotSupportedError, chat_prompt, is_messages,
                                        render_messages, tokenize)
from latentprobe.engine.protocol import initial_state
from latentprobe.engine.rows import Row
from latentprobe.errors import ImageBatchError, InputError
from latentprobe.images import PreResize, pixel_values
from latentprobe.spec import ResolvedSpec
from latentprobe.trace import Segment

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

__all__ = ["ImageProcessor", "CapturePositions", "PromptConvention", "VideoNotSupportedError", "tokenize",
           "is_messages", "render_messages", "chat_prompt", "process_images", "expand_image_tokens", "capture_positions",
           "build_rows", "check_budget", "context_length", "segment_budget"]

ImageProcessor = Callable[[list[Any]], Any]
CapturePositions = Union[str, Callable[[Tensor, Tensor], Sequence[int]]]


def process_images(imgs: list[Any], image_processor: ImageProcessor | None,
                   convention: PromptConvention | None = None) -> tuple[Tensor, Tensor]:
    """``(pixel_values, image_grid_thw)`` through ``image_processor`` (default: transformers'
    ``Qwen2VLImageProcessorPil``), after the convention's :attr:`~PromptConvention.pre_resize`; images of any
    size and mode (see :func:`latentprobe.images.pixel_values`).

    Parameters
    ----------
    imgs : list[Any]
        The images.
    image_processor : ImageProcessor | None
        The checkpoint's image processor (default transformers').
    convention : PromptConvention | None
        The family's convention (its pre-resize).

    Returns
    -------
    tuple[Tensor, Tensor]
        ``pixel_values`` and ``image_grid_thw``.
    """
    return pixel_values(imgs, image_processor, None if convention is None else convention.pre_resizer)


def _runs(ids: list[int], tok: int) -> list[tuple[int, int]]:
    """``(start, length)`` of every run of ``tok`` in ``ids``."""
    out: list[tuple[int, int]] = []
    for p, t in enumerate(ids):
        if t != tok:
            continue
        if out and out[-1][0] + out[-1][1] == p:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((p, 1))
    return out


def expand_image_tokens(ids: list[int], img_tok: int, grid: Tensor, merge: int, where: str = "prompt") -> list[int]:
    """Give every image its run of image tokens: a single token is repeated to the image's number of
    merged patches; a run already of that length (a prompt expanded by the Hugging Face processor) is kept.

    Parameters
    ----------
    ids : list[int]
        The prompt's ids.
    img_tok : int
        The image token's id.
    grid : Tensor
        ``[n, 3]`` image grids.
    merge : int
        The vision tower's spatial merge size.
    where : str
        Where the prompt was given (named in errors).

    Returns
    -------
    list of int
    """
    runs = _runs(ids, img_tok)
    out: list[int] = []
    prev = 0
    for k, (start, length) in enumerate(runs):
        n = int(grid[k].prod()) // (merge * merge)
        if length not in (1, n):
            raise ImageBatchError(
                f"{where}: image {k} has a run of {length} image tokens, but its grid {grid[k].tolist()} needs {n} "
                "(or a single token, which is expanded); the prompt was expanded for a different image size or "
                "processor: put one image token per image, or use the same processor."
            )
        out.extend(ids[prev:start])
        out.extend([img_tok] * n)
        prev = start + length
    out.extend(ids[prev:])
    return out


def capture_positions(capture: CapturePositions, row: Row) -> list[int]:
    """Prefix positions to record every layer at: ``"image"``, ``"prompt"`` or ``(ids, segments) -> positions``.

    Parameters
    ----------
    capture : CapturePositions
        ``"image"``, ``"prompt"`` or ``(ids, segments) -> positions``.
    row : Row
        The row.

    Returns
    -------
    list of int
    """
    n = len(row.ids)
    if capture == "image":
        return [p for p, s in enumerate(row.segs) if s == Segment.IMAGE]
    if capture == "prompt":
        return list(range(n))
    if callable(capture):
        ps = sorted({int(p) for p in capture(torch.tensor(row.ids), torch.tensor(row.segs))})
        bad = [p for p in ps if not 0 <= p < n]
        if bad:
            raise InputError(f"example {row.example_id!r}: capture_positions returned {bad}, outside the prompt "
                             f"of length {n}.")
        return ps
    raise InputError(f"capture_positions={capture!r}; use 'image', 'prompt' or a callable (ids, segments) -> positions.")


def _images_of(images: Sequence[Any] | None, i: int) -> list[Any]:
    if images is None or images[i] is None:
        return []
    return list(images[i]) if isinstance(images[i], (list, tuple)) else [images[i]]


def _video_ids(tokenizer: PreTrainedTokenizerBase, parts: ModelParts) -> set[int]:
    vocab = tokenizer.get_vocab()
    out = {vocab[t] for t in ("<|video_pad|>",) if t in vocab}
    vid = getattr(parts.model.config, "video_token_id", None)
    if parts.is_vlm and vid is not None and vid != getattr(tokenizer, "unk_token_id", None):
        out.add(int(vid))
    return out


def context_length(parts: ModelParts) -> int | None:
    """Positions a model with learned absolute positions can hold (GPT-2's ``n_positions``), else ``None``.

    Parameters
    ----------
    parts : ModelParts
        The model's parts.

    Returns
    -------
    int or None
    """
    n = getattr(parts.model.config, "n_positions", None)
    return int(n) if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


def segment_budget(rspec: ResolvedSpec) -> int:
    """Positions after the prompt that one latent segment plus one answer token need (0: not counted).

    Only protocols that spend generated positions on the segment count: the open marker is emitted
    (``open_mode="emitted"``) or appended to the prompt (``"appended"``); a fixed stop needs
    ``num_latents`` latents, other stops at least ``min_latents``.

    Parameters
    ----------
    rspec : ResolvedSpec
        The spec with its token ids.

    Returns
    -------
    int
    """
    spec = rspec.spec
    if spec.open_mode == "prompt":
        return 0
    k = spec.num_latents if spec.stop == "fixed" else spec.min_latents
    opener = 1 if spec.open_mode == "emitted" and spec.first_offset == 1 else 0
    closer = 1 if spec.close_token is not None and spec.stop not in ("quota", "similarity") else 0
    return opener + k + closer + len(spec.after_close) + 1


def check_budget(rspec: ResolvedSpec, max_new_tokens: int, answers: Sequence[str] | None = None) -> None:
    """Refuse a ``max_new_tokens`` that cannot hold the latent segment (markers and latents) plus one answer token.

    With ``open_mode="appended"`` the segment starts at once, so a short budget is refused before the
    run. With ``"emitted"`` the model decides whether to open, so the check is made after the run, on
    its ``answers``: refused when every one is empty.

    Parameters
    ----------
    rspec : ResolvedSpec
        The spec with its token ids.
    max_new_tokens : int
        The run's budget.
    answers : Sequence[str] | None
        The run's answers, to check after the run.
    """
    spec = rspec.spec
    need = segment_budget(rspec)
    if spec.open_mode == "emitted" and (answers is None or any(answers)):
        return
    if max_new_tokens < need:
        k = spec.num_latents if spec.stop == "fixed" else spec.min_latents
        opener = 1 if spec.open_mode == "emitted" and spec.first_offset == 1 else 0
        closer = need - 1 - k - opener
        raise InputError(
            f"max_new_tokens={max_new_tokens} cannot hold spec {spec.name!r}'s latent segment ({opener} open marker, "
            f"{k} latents, {closer} closing marker(s)) and an answer token: every answer "
            f"would be empty. Use max_new_tokens >= {need}."
        )


def _check_ids(ids: list[int], parts: ModelParts, where: str, max_new_tokens: int | None) -> None:
    vocab = int(parts.embed.weight.shape[0])
    bad = sorted({t for t in ids if not 0 <= t < vocab})
    if bad:
        raise InputError(f"{where}: token id(s) {bad[:10]} outside the model's embedding range 0..{vocab - 1}; "
                         "give ids from this model's tokenizer.")
    ctx = context_length(parts)
    if ctx is not None and len(ids) + (max_new_tokens or 0) > ctx:
        raise InputError(f"{where}: the prompt has {len(ids)} tokens and max_new_tokens={max_new_tokens or 0}, "
                         f"{len(ids) + (max_new_tokens or 0)} positions in all, but {type(parts.model).__name__} "
                         f"holds {ctx} (n_positions); shorten the prompt or lower max_new_tokens.")


def _check_ids_arg(example_ids: Sequence[Any] | None, n: int) -> None:
    if example_ids is None:
        return
    if isinstance(example_ids, (str, bytes)):
        raise InputError(f"example_ids={example_ids!r}: give a list of ids, one per prompt.")
    if len(example_ids) != n:
        raise InputError(f"{len(example_ids)} example_ids for {n} prompts.")
    counts = Counter(str(e) for e in example_ids)
    dup = sorted(e for e, c in counts.items() if c > 1)
    if dup:
        raise InputError(f"example_ids holds duplicates {dup[:10]}; every example needs its own id (results, "
                         "traces and sweeps are keyed by it).")


def build_rows(prompts: Sequence[Any], images: Sequence[Any] | None, example_ids: Sequence[str] | None, *,
               tokenizer: PreTrainedTokenizerBase, rspec: ResolvedSpec, parts: ModelParts, image_processor: ImageProcessor | None,
               add_special_tokens: bool = False, convention: PromptConvention | None = None,
               keep_dtype: torch.dtype | None = None, max_new_tokens: int | None = None) -> list[Row]:
    """One row per prompt, each at the protocol's start state (see :func:`~latentprobe.engine.protocol.initial_state`).

    A prompt is a string, an id list, or chat messages (rendered with :func:`render_messages`: their
    ``{"type": "image"}`` placeholders take the prompt's ``images`` entry in order, and images embedded in
    the parts come where they stand). Image features are kept on the CPU in
    ``keep_dtype`` (default: the vision tower's dtype). Duplicate ``example_ids``, token ids outside
    the embedding and prompts (plus ``max_new_tokens``) longer than the model's context are refused.

    Parameters
    ----------
    prompts : Sequence[Any]
        Strings, id lists or chat messages.
    images : Sequence[Any] | None
        One entry per prompt (see :meth:`LatentRunner.run`).
    example_ids : Sequence[str] | None
        One id per prompt (default their positions).
    tokenizer : PreTrainedTokenizerBase
        The checkpoint's tokenizer.
    rspec : ResolvedSpec
        The spec with its token ids.
    parts : ModelParts
        The model's parts.
    image_processor : ImageProcessor | None
        The checkpoint's image processor.
    add_special_tokens : bool
        Tokenise strings with special tokens.
    convention : PromptConvention | None
        The family's prompt convention (``None``: the chat template's defaults).
    keep_dtype : torch.dtype | None
        dtype of the recorded image features (default the model's).
    max_new_tokens : int | None
        The run's budget (checked against the model's context).

    Returns
    -------
    list of Row
    """
    if isinstance(prompts, (str, bytes)) or is_messages(prompts):
        raise InputError("prompts must be a list of prompts, not a single prompt; wrap it: [prompt].")
    prompts = list(prompts)
    if not prompts:
        raise InputError("no prompts given.")
    _check_ids_arg(example_ids, len(prompts))
    if images is not None and len(images) != len(prompts):
        raise ImageBatchError(
            f"{len(images)} image entries for {len(prompts)} prompts; give one entry per prompt "
            "(None for a prompt without image, a list for several images)."
        )
    img_tok = parts.image_token_id if parts.is_vlm else None
    video = _video_ids(tokenizer, parts)
    rows = []
    for i, prompt in enumerate(prompts):
        eid = str(example_ids[i]) if example_ids is not None else str(i)
        where = f"prompt {i} ({eid!r})"
        imgs = _images_of(images, i)
        if is_messages(prompt):
            text, imgs = render_messages(tokenizer, prompt, convention, where, imgs)
            ids = tokenize(tokenizer, text, False)
        else:
            if not isinstance(prompt, str) and not (isinstance(prompt, (list, tuple)) and all(
                    isinstance(t, Integral) and not isinstance(t, bool) for t in prompt)):
                raise InputError(f"{where}: a prompt is a string, a list of token ids (ints) or chat messages; got "
                                 f"{type(prompt).__name__}.")
            ids = tokenize(tokenizer, prompt, add_special_tokens)
        if not ids:
            raise InputError(f"{where}: the prompt is empty (no tokens); give at least one token.")
        if video and any(t in video for t in ids):
            raise VideoNotSupportedError(f"{where}: holds a video token (<|video_pad|>); video input is not supported "
                                         "yet. Pass frames as images, or remove the video token.")
        if imgs and not parts.is_vlm:
            raise ImageBatchError(f"{type(parts.model).__name__} takes no images; pass images=None ({where}).")
        n_runs = len(_runs(ids, img_tok)) if img_tok is not None else 0
        if n_runs != len(imgs):
            raise ImageBatchError(
                f"{where} has {n_runs} image placeholder(s) but {len(imgs)} image(s); put one image token "
                f"(id {img_tok}), or the processor's run of them, in the prompt per image."
            )
        image_embeds = grid = None
        if imgs:
            pv, grid = process_images(imgs, image_processor, convention)
            dev, dt = parts.vision_device_dtype
            with torch.no_grad():
                image_embeds = parts.image_features(pv.to(dev, dt), grid.to(dev))
            image_embeds = image_embeds.to("cpu", keep_dtype or image_embeds.dtype)
            ids = expand_image_tokens(ids, img_tok, grid, parts.merge_size, where)  # type: ignore[arg-type]
        _check_ids(ids, parts, where, max_new_tokens)
        segs = [Segment.IMAGE if (img_tok is not None and t == img_tok) else Segment.TEXT for t in ids]
        start = initial_state(rspec, ids, segs, example_id=eid)
        rows.append(Row(index=i, example_id=eid, ids=start.ids, segs=start.segments, prompt_len=start.prompt_len,
                        state=start.state, image_embeds=image_embeds, grid_thw=grid))
    return rows
