"""Prompts as the families' authors build them: chat messages rendered with the checkpoint's chat template and
the family's convention, and tokenising (re-exported by :mod:`latentprobe.engine.inputs`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from latentprobe.errors import ImageBatchError, InputError
from latentprobe.images import PreResize

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

__all__ = ["PromptConvention", "VideoNotSupportedError", "tokenize", "is_messages", "render_messages", "chat_prompt",
           "QWEN_IMAGE_SPAN"]


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
    """Token ids of a string prompt (no special tokens unless asked), or an id list as ints.

    Parameters
    ----------
    tokenizer : PreTrainedTokenizerBase
        The checkpoint's tokenizer.
    prompt : str | Sequence[int]
        A string, or token ids.
    add_special_tokens : bool
        Tokenise a string with special tokens.

    Returns
    -------
    list of int
    """
    if isinstance(prompt, str):
        return list(tokenizer(prompt, add_special_tokens=add_special_tokens)["input_ids"])
    return [int(t) for t in prompt]


def is_messages(prompt: object) -> bool:
    """Whether ``prompt`` is a chat: a list of ``{"role": ..., "content": ...}`` dicts.

    Parameters
    ----------
    prompt : object
        A prompt.

    Returns
    -------
    bool
    """
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

    Parameters
    ----------
    tokenizer : PreTrainedTokenizerBase
        The checkpoint's tokenizer. (its chat template).
    messages : Sequence[dict[str, Any]]
        The chat messages.
    convention : PromptConvention | None
        The family's prompt convention (``None``: the chat template's defaults).
    where : str
        Where the prompt was given (named in errors).
    images : Sequence[Any] | None
        Images filling the messages' image placeholders, in order.

    Returns
    -------
    tuple[str, list[Any]]
        The prompt string and its images in order.

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

    Parameters
    ----------
    tokenizer : PreTrainedTokenizerBase
        The checkpoint's tokenizer. (its chat template).
    text : str
        The question.
    n_images : int
        Images shown with it.
    convention : PromptConvention | None
        The family's prompt convention (``None``: the chat template's defaults).
    where : str
        Where the prompt was given (named in errors).

    Returns
    -------
    str

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
