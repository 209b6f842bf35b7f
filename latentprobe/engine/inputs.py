"""Building the loop's rows from prompts and images: chat messages, tokenising, images through the
checkpoint's processor, image-token expansion, the protocol's start state, and the prompt positions
to capture."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from numbers import Integral
from typing import TYPE_CHECKING, Any, Callable, Sequence, Union

import torch
from torch import Tensor

from latentprobe.engine.parts import ModelParts
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


class VideoNotSupportedError(InputError):
    """A prompt holds video input (a ``<|video_pad|>`` token or a video message part)."""


@dataclass(frozen=True)
class PromptConvention:
    """How a family's authors turn chat messages into the prompt string (and size its images).

    Parameters
    ----------
    add_generation_prompt:
        Passed to the chat template (Monet, LVR: ``True``; Mirage: ``False``, then ``suffix``).
    suffix:
        Text appended after the rendered template (Mirage: ``"<|im_start|>assistant"``, no newline).
    image_prefix:
        Text put before the rendered template when the prompt has images (Monet's ``"<image>\\n"``).
    min_pixels, max_pixels:
        The image processor's pixel bounds (Monet: ``256*28*28`` .. ``8192*28*28``); ``None``: the
        checkpoint's own.
    system_prompt:
        A system message put first when the chat has none (Monet's ``\\boxed{}`` instruction).
    content_order:
        Where :func:`chat_prompt` puts the images of a user turn: ``"image_first"`` or ``"text_first"``.
    image_placeholder:
        A literal in the question where the image goes instead (Mirage's ``"<image>"``): :func:`chat_prompt`
        puts it there, and :func:`render_messages` moves the template's image spans there, as Mirage's
        ``place_input_image`` does.
    pre_resize:
        ``(min_pixels, max_pixels)`` of the resize the family's script applies before the processor
        (``qwen_vl_utils``' ``fetch_image``, :class:`~latentprobe.images.PreResize`); ``None``: none.
    """

    add_generation_prompt: bool = True
    suffix: str = ""
    image_prefix: str = ""
    min_pixels: int | None = None
    max_pixels: int | None = None
    system_prompt: str | None = None
    content_order: str = "image_first"
    image_placeholder: str | None = None
    pre_resize: tuple[int, int] | None = None

    @property
    def pre_resizer(self) -> PreResize | None:
        """The :class:`~latentprobe.images.PreResize` of :attr:`pre_resize` (``None`` when unset)."""
        return None if self.pre_resize is None else PreResize(*self.pre_resize)


def tokenize(tokenizer: PreTrainedTokenizerBase, prompt: str | Sequence[int], add_special_tokens: bool = False) -> list[int]:
    """Token ids of a string prompt (no special tokens unless asked), or an id list as ints."""
    if isinstance(prompt, str):
        return list(tokenizer(prompt, add_special_tokens=add_special_tokens)["input_ids"])
    return [int(t) for t in prompt]


def is_messages(prompt: Any) -> bool:
    """Whether ``prompt`` is a chat: a list of ``{"role": ..., "content": ...}`` dicts."""
    return (isinstance(prompt, (list, tuple)) and len(prompt) > 0
            and all(isinstance(m, dict) and "role" in m for m in prompt))


_IMAGE_KEYS = ("image", "path", "url")

#: The span Qwen2.5-VL's chat template renders for an image part; Mirage's ``place_input_image`` moves it to the
#: question's ``<image>`` (``src/utils.py:53-66`` at ``UMass-Embodied-AGI/Mirage@53f26de2``, its default ``image_pad``).
QWEN_IMAGE_SPAN = "<|vision_start|><|image_pad|><|vision_end|>"


def _open_image(part: dict[str, Any], where: str) -> Any:
    im = next(part[k] for k in _IMAGE_KEYS if part.get(k) is not None)
    if isinstance(im, str):
        if im.startswith(("http://", "https://")):
            raise InputError(f"{where}: image URLs are not fetched; pass the image (PIL or array) as 'image'.")
        from PIL import Image

        try:
            return Image.open(im)
        except OSError as err:
            raise InputError(f"{where}: cannot open image file {im!r} ({err}).") from None
    return im


def _place_images(text: str, placeholder: str, where: str) -> str:
    """Mirage's ``place_input_image(text, sep_token=None)``: every image span removed, every placeholder replaced by one."""
    n_ph, n_span = text.count(placeholder), text.count(QWEN_IMAGE_SPAN)
    if n_ph != n_span:
        raise ImageBatchError(f"{where}: the messages hold {n_ph} {placeholder!r} placeholder(s) for {n_span} image(s); "
                              f"the family's convention moves each image to a {placeholder!r} in the text: give one per "
                              "image part (or none, to keep the images where the chat template puts them).")
    return text.replace(QWEN_IMAGE_SPAN, "").replace(placeholder, QWEN_IMAGE_SPAN)


def render_messages(tokenizer: PreTrainedTokenizerBase, messages: Sequence[dict[str, Any]], convention: PromptConvention | None = None,
                    where: str = "prompt", images: Sequence[Any] | None = None) -> tuple[str, list[Any]]:
    """The prompt string of a chat (the checkpoint's chat template, the family's convention) and its images.

    Image parts are ``{"type": "image", "image": <PIL image or uint8 array>}`` (or ``"path"``), or, as
    Hugging Face processors take them, bare ``{"type": "image"}`` placeholders whose images come from
    ``images`` in order; images left over in ``images`` follow (for image tokens written in the text).
    With ``convention.image_placeholder`` (Mirage's ``"<image>"``) in the rendered text, the template's image
    spans move there, as Mirage's ``test.py`` renders its own conversations. Video parts raise
    :class:`VideoNotSupportedError`.

    Raises
    ------
    ImageBatchError
        More ``{"type": "image"}`` placeholders than ``images``, or placeholders in the text that do not
        match the image parts one to one.
    """
    conv = convention or PromptConvention()
    if getattr(tokenizer, "chat_template", None) is None:
        raise InputError(f"{where}: chat messages need a chat template, and the tokenizer has none; load the "
                         "checkpoint's tokenizer (latentprobe.load) or set tokenizer.chat_template.")
    supplied = list(images or [])
    used = 0
    found: list[Any] = []
    for m, msg in enumerate(messages):
        content = msg.get("content")
        if isinstance(content, (list, tuple)):
            for j, part in enumerate(content):
                kind = part.get("type") if isinstance(part, dict) else None
                loc = f"{where}, message {m}, part {j}"
                if kind == "video":
                    raise VideoNotSupportedError(f"{loc}: video input is not supported yet; pass frames as images, "
                                                 "or leave the video out.")
                if kind != "image":
                    continue
                if any(part.get(k) is not None for k in _IMAGE_KEYS):
                    found.append(_open_image(part, loc))
                elif used < len(supplied):
                    found.append(supplied[used])
                    used += 1
                else:
                    raise ImageBatchError(
                        f"{loc}: an image placeholder {{'type': 'image'}} without its image, and images= gives "
                        f"{len(supplied)} image(s) for this prompt; put the image in the part ({{'type': 'image', "
                        "'image': img}) or pass one image per placeholder: run([messages], images=[[img, ...]]).")
    messages = list(messages)
    if conv.system_prompt is not None and not any(isinstance(m, dict) and m.get("role") == "system" for m in messages):
        messages = [{"role": "system", "content": conv.system_prompt}, *messages]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=conv.add_generation_prompt)
    if conv.image_placeholder and conv.image_placeholder in text:
        text = _place_images(text, conv.image_placeholder, where)
    all_images = found + supplied[used:]
    return (conv.image_prefix if found else "") + text + conv.suffix, all_images


def chat_prompt(tokenizer: PreTrainedTokenizerBase, text: str, n_images: int, convention: PromptConvention | None = None,
                where: str = "prompt") -> str:
    """The prompt string a family's authors build for one question with ``n_images`` images.

    A user turn of ``text`` and one image part per image (at ``convention.image_placeholder`` when the
    text holds it, else before or after the text by ``content_order``), after the system prompt, through
    the checkpoint's chat template (each image becomes the template's image-token span); the images
    themselves are passed to :meth:`LatentRunner.run` alongside, so perturbations can replace them.

    Raises
    ------
    InputError
        The tokenizer has no chat template, or the text holds a different number of image
        placeholders than there are images.
    """
    conv = convention or PromptConvention()
    if getattr(tokenizer, "chat_template", None) is None:
        raise InputError(f"{where}: building a chat prompt needs the checkpoint's chat template, and the tokenizer "
                         "has none; load the checkpoint with latentprobe.load, or pass prompt strings that hold "
                         "the image tokens.")
    image = {"type": "image"}
    ph = conv.image_placeholder
    if ph and ph in text:
        pieces = text.split(ph)
        if len(pieces) - 1 != n_images:
            raise InputError(f"{where}: the question holds {len(pieces) - 1} {ph!r} placeholder(s) for {n_images} "
                             "image(s); give one per image.")
        content: list[dict[str, Any]] = []
        for k, piece in enumerate(pieces):
            if piece:
                content.append({"type": "text", "text": piece})
            if k < n_images:
                content.append(dict(image))
    else:
        parts = [dict(image) for _ in range(n_images)]
        body = [{"type": "text", "text": text}]
        content = body + parts if conv.content_order == "text_first" else parts + body
    messages: list[dict[str, Any]] = [{"role": "system", "content": conv.system_prompt}] if conv.system_prompt else []
    messages.append({"role": "user", "content": content})
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=conv.add_generation_prompt)
    return (conv.image_prefix if n_images else "") + rendered + conv.suffix


def process_images(imgs: list[Any], image_processor: ImageProcessor | None,
                   convention: PromptConvention | None = None) -> tuple[Tensor, Tensor]:
    """``(pixel_values, image_grid_thw)`` through ``image_processor`` (default: transformers'
    ``Qwen2VLImageProcessorPil``), after the convention's :attr:`~PromptConvention.pre_resize`; images of any
    size and mode (see :func:`latentprobe.images.pixel_values`)."""
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
    merged patches; a run already of that length (a prompt expanded by the Hugging Face processor) is kept."""
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


def capture_positions(capture: Any, row: Row) -> list[int]:
    """Prefix positions to record every layer at: ``"image"``, ``"prompt"`` or ``(ids, segments) -> positions``."""
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
    """Positions a model with learned absolute positions can hold (GPT-2's ``n_positions``), else ``None``."""
    n = getattr(parts.model.config, "n_positions", None)
    return int(n) if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


def segment_budget(rspec: ResolvedSpec) -> int:
    """Positions after the prompt that one latent segment plus one answer token need (0: not counted).

    Only protocols that spend generated positions on the segment count: the open marker is emitted
    (``open_mode="emitted"``) or appended to the prompt (``"appended"``); a fixed stop needs
    ``num_latents`` latents, other stops at least ``min_latents``.
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
