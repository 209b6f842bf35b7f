"""Benchmark examples as the input of an experiment: :func:`to_input_set`."""

from __future__ import annotations

import copy
import string
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from latentprobe.data.images import check_max_pixels
from latentprobe.data.records import Example
from latentprobe.data.sampling import Sample
from latentprobe.errors import DataError
from latentprobe.perturbations import InputSet

if TYPE_CHECKING:  # pragma: no cover
    from latentprobe.engine.runner import LatentRunner

__all__ = ["CHAT_PROMPT", "DEFAULT_PROMPT", "IMAGE_TOKENS", "render_options", "to_input_set"]

#: One image in a Qwen2.5-VL string prompt (what ``{images}`` repeats once per image).
IMAGE_TOKENS = "<|vision_start|><|image_pad|><|vision_end|>"
#: The prompt when neither ``prompt`` nor ``messages`` is given (``"{images}{question}"`` for a question without options).
DEFAULT_PROMPT = "{images}{question}\n{options}"
#: The question's text in a chat runner's prompt (``"{question}"`` without options): the chat template adds the images.
CHAT_PROMPT = "{question}\n{options}"
_RESERVED = ("question", "options", "letters", "images", "category", "source", "example_id")


def render_options(example: Example) -> str:
    """The options as ``"A. text"`` lines (``""`` without options).

    Parameters
    ----------
    example : Example
        An example with options.

    Returns
    -------
    str

    Examples
    --------
    >>> print(render_options(Example("d/1", "q", "B", options=("red", "blue"))))
    A. red
    B. blue
    """
    return "\n".join(f"{letter}. {text}" for letter, text in zip(example.letters, example.options or ()))


def _fields(ex: Example) -> dict[str, Any]:
    values = {k: v for k, v in ex.attributes.items() if isinstance(v, (str, int, float)) and k not in _RESERVED}
    values.update(question=ex.question, options=render_options(ex), letters=", ".join(ex.letters),
                  images=IMAGE_TOKENS * len(ex.images), category=ex.category or "", source=ex.source,
                  example_id=ex.example_id)
    return values


def _format(template: str, ex: Example, where: str) -> str:
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as err:
        raise DataError(f"{where}: the template is not a valid str.format template ({err}); double literal braces "
                        "({{ }}).") from None
    values = _fields(ex)
    missing = [f for f in names if f.split(".")[0].split("[")[0] not in values and f != ""]
    if "" in names or missing:
        raise DataError(f"{where}: the template names {missing or ['{}']} which example {ex.example_id!r} lacks; "
                        f"use {{question}}, {{options}}, {{letters}}, {{images}}, {{category}}, {{source}}, "
                        "{example_id} or one of its attributes.")
    return template.format(**values)


def _messages(template: list[dict[str, Any]], ex: Example, arrays: list[Any], where: str) -> tuple[list[dict], bool]:
    """The chat for one example: text parts formatted, the bare image part filled with the example's images."""
    out = copy.deepcopy(template)
    used = False
    for m, msg in enumerate(out):
        content = msg.get("content")
        if isinstance(content, str):
            msg["content"] = _format(content, ex, f"{where}, message {m}")
            continue
        if not isinstance(content, list):
            raise DataError(f"{where}, message {m}: content must be a string or a list of parts.")
        parts: list[Any] = []
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                text = _format(str(part.get("text", "")), ex, f"{where}, message {m}, part {j}")
                parts.append({**part, "text": text})
            elif kind == "image" and not any(part.get(k) is not None for k in ("image", "path", "url")):
                if used:
                    raise DataError(f"{where}, message {m}, part {j}: only one bare image part may stand for the "
                                    "example's images (it expands to all of them).")
                used = True
                parts.extend({"type": "image", "image": arr} for arr in arrays)
            else:
                parts.append(part)
        msg["content"] = parts
    return out, used


def to_input_set(examples: Sequence[Example] | Sample, *, prompt: str | None = None,
                 messages: list[dict] | None = None, max_pixels: int | None = None, runner: LatentRunner | None = None) -> InputSet:
    """Turn examples into an :class:`~latentprobe.perturbations.InputSet` that the analyses take.

    Parameters
    ----------
    examples : sequence of Example, or Sample
        The examples (a :class:`Sample` gives its drawn examples).
    prompt : str, optional
        A ``str.format`` template over ``{question}``, ``{options}`` (``"A. text"`` lines),
        ``{letters}`` (``"A, B, C, D"``), ``{images}`` (one Qwen2.5-VL image-token run per image),
        ``{category}``, ``{source}``, ``{example_id}`` and the example's plain attributes. Default
        :data:`DEFAULT_PROMPT`, ``"{images}{question}\\n{options}"`` (:data:`CHAT_PROMPT`,
        ``"{question}\\n{options}"``, for a chat runner); ``"{images}{question}"`` /
        ``"{question}"`` for an example without options.
    messages : list of dict, optional
        A chat template instead of ``prompt``: text parts (and string contents) take the same
        placeholders; one bare ``{"type": "image"}`` part expands to the example's images. Without
        such a part the images go to :attr:`InputSet.images` (the runner puts them after the
        chat's own images).
    max_pixels : int, optional
        Images are loaded with :meth:`ImageRef.load(max_pixels=...) <latentprobe.data.ImageRef.load>`.
    runner : LatentRunner, optional
        Build the prompts the runner's family is fed, exactly as ``latentprobe run`` does for a study
        file (:func:`latentprobe.data.prompts.family_prompts`): Monet, LVR and Mirage get their chat
        prompt (system prompt, image spans where their authors put them), Coconut its latent slots
        as token ids, CODI its normalised question. Without it the prompts are the rendered text.

    Returns
    -------
    InputSet
        ``example_ids`` and ``gold`` from the examples; ``images`` one array (or a list for several)
        per example, ``None`` for text-only data; ``meta`` per example: ``category``, ``source``,
        ``options``, ``question``, ``image_id`` (equal for examples showing the same images, which
        :class:`~latentprobe.perturbations.ImageSwap` reads), ``attributes``, and the plain
        attributes also at top level where their names are free.

    Raises
    ------
    DataError
        Both ``prompt`` and ``messages``, a template naming an unknown field, duplicate ids, no
        examples, a bad ``max_pixels``, or an image that cannot be decoded.

    Examples
    --------
    >>> exs = [Example("d/1", "Which colour?", "B", options=("red", "blue"), category="colour")]
    >>> s = to_input_set(exs, prompt="{question}\\n{options}\\nAnswer with {letters}.")
    >>> print(s.prompts[0])
    Which colour?
    A. red
    B. blue
    Answer with A, B.
    >>> s.gold, s.images, s.meta[0]["category"]
    (('B',), None, 'colour')
    """
    items = list(examples.examples if isinstance(examples, Sample) else examples)
    if not items:
        raise DataError("to_input_set(): no examples given.")
    if not all(isinstance(ex, Example) for ex in items):
        raise DataError("to_input_set() takes Example records (latentprobe.data.load_benchmark) or a Sample.")
    if prompt is not None and messages is not None:
        raise DataError("to_input_set(): pass prompt= or messages=, not both.")
    if prompt is not None and not isinstance(prompt, str):
        raise DataError(f"to_input_set(): prompt must be a str.format template, got {type(prompt).__name__}.")
    if messages is not None and (not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m
                                                                             for m in messages)):
        raise DataError("to_input_set(): messages must be a list of {'role': ..., 'content': ...} dicts.")
    check_max_pixels(max_pixels, "to_input_set()")
    ids = [ex.example_id for ex in items]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise DataError(f"to_input_set(): example id {dup!r} occurs twice; ids must be unique.")
    from latentprobe.data.prompts import family_prompts, is_chat_runner

    chat = is_chat_runner(runner) and messages is None
    prompts: list[Any] = []
    images: list[Any] = []
    meta: list[dict[str, Any]] = []
    for ex in items:
        where = f"to_input_set(), example {ex.example_id!r}"
        arrays = [ref.load(max_pixels=max_pixels) for ref in ex.images]
        if messages is not None:
            chat, used = _messages(messages, ex, arrays, where)
            prompts.append(chat)
            images.append(None if used or not arrays else arrays[0] if len(arrays) == 1 else arrays)
        else:
            template = prompt if prompt is not None else _default(ex, chat)
            prompts.append(_format(template, ex, where))
            images.append(None if not arrays else arrays[0] if len(arrays) == 1 else arrays)
        m: dict[str, Any] = {k: v for k, v in ex.attributes.items()
                             if isinstance(v, (str, int, float, bool)) or v is None}
        m.update(category=ex.category, source=ex.source, options=ex.options, question=ex.question,
                 attributes=dict(ex.attributes))
        if ex.images:
            m["image_id"] = "|".join(ref.key for ref in ex.images)
        meta.append(m)
    has_images = any(im is not None for im in images)
    return family_prompts(InputSet(example_ids=tuple(ids), prompts=tuple(prompts), images=tuple(images) if has_images else None,
                    gold=tuple(ex.gold for ex in items) if any(ex.gold is not None for ex in items) else None,
                    meta=tuple(meta)), runner if messages is None else None)


def _default(ex: Example, chat: bool) -> str:
    template = CHAT_PROMPT if chat else DEFAULT_PROMPT
    return template if ex.options else template.replace("\n{options}", "")
