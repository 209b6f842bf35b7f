"""A family's published conventions: its decoding settings and how its authors build a prompt.

Data the presets (:mod:`latentprobe.presets`) attach to a :class:`~latentprobe.spec.LatentSpec`;
re-exported by :mod:`latentprobe.spec`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from latentprobe.errors import SpecError

__all__ = ["CHECKPOINT_SETTINGS", "DecodingSettings", "PromptConventions"]

#: The decoding settings a script may leave to the checkpoint's ``generation_config.json``.
CHECKPOINT_SETTINGS = ("do_sample", "temperature", "top_k", "top_p", "repetition_penalty", "eos_token_id")


@dataclass(frozen=True)
class DecodingSettings:
    """A family's published decoding settings (what :meth:`LatentRunner.run` uses with ``generation="published"``).

    Parameters
    ----------
    do_sample, temperature, top_k, top_p, repetition_penalty, max_new_tokens
        As in :class:`~latentprobe.engine.sampling.GenerationConfig`; ``top_k``/``top_p`` ``None``: not applied.
    notes : str
        Where each value was read and what was not verified.
    from_checkpoint : tuple of str
        The settings the authors' script does not pass, so that ``generate`` takes them from the checkpoint's
        ``generation_config.json`` (or transformers' defaults where the file sets none): names among
        :data:`CHECKPOINT_SETTINGS`; their values here are not used.
    """

    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float = 1.0
    max_new_tokens: int = 32
    notes: str = ""
    from_checkpoint: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = tuple(self.from_checkpoint)
        object.__setattr__(self, "from_checkpoint", names)
        bad = [x for x in names if x not in CHECKPOINT_SETTINGS]
        if bad:
            raise SpecError(f"DecodingSettings: from_checkpoint names {bad}; use names among {list(CHECKPOINT_SETTINGS)}.")


@dataclass(frozen=True)
class PromptConventions:
    """How a family's authors build a prompt (data for a loader to apply; the engine does not read it).

    Parameters
    ----------
    system_prompt:
        System message text, or ``None`` for none (the chat template's default applies).
    add_generation_prompt:
        Whether the chat template's generation prompt is added.
    suffix, prefix:
        Literal text appended after / prepended before the templated prompt.
    content_order:
        Order of a user turn's parts: ``"text_first"`` or ``"image_first"``.
    image_placeholder:
        A literal in the question text where the image is moved to (Mirage's ``"<image>"``), or ``None``.
    min_pixels, max_pixels:
        Image processor bounds, or ``None`` for the processor's defaults.
    pre_resize:
        ``(min_pixels, max_pixels)`` of the resize the family's script applies to every image before the
        processor (``qwen_vl_utils``' ``fetch_image``), or ``None`` for none; the image policy is this
        resize followed by the processor's bounds.
    strip_question:
        Whether the rendered question loses its surrounding whitespace before tokenising (CODI's
        ``question.strip()``).
    question_replacements:
        ``(old, new)`` literal replacements applied to the rendered question after stripping, in order,
        each once over the text as :meth:`str.replace` does (CODI's ``.replace('  ', ' ')``).
    add_special_tokens:
        Whether a string prompt is tokenised with the tokenizer's special tokens (BOS for Llama), as the
        authors' script does (CODI's ``test.py`` and Coconut's ``dataset.py``: on); ``run`` uses it unless
        told otherwise.
    notes : str
        Where each convention was read (file and line of the authors' code).

    Examples
    --------
    >>> PromptConventions(strip_question=True, question_replacements=(("  ", " "),)).normalise_question(
    ...     "  What  is 2 + 2? ")
    'What is 2 + 2?'
    """

    system_prompt: str | None = None
    add_generation_prompt: bool = True
    suffix: str = ""
    prefix: str = ""
    content_order: Literal["text_first", "image_first"] = "image_first"
    image_placeholder: str | None = None
    min_pixels: int | None = None
    max_pixels: int | None = None
    pre_resize: tuple[int, int] | None = None
    notes: str = ""
    add_special_tokens: bool = False
    strip_question: bool = False
    question_replacements: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        pairs = tuple(tuple(p) for p in self.question_replacements)  # JSON gives lists
        if not all(len(p) == 2 and all(isinstance(x, str) for x in p) and p[0] for p in pairs):
            raise SpecError(f"PromptConventions: question_replacements={self.question_replacements!r}; give "
                            "(old, new) pairs of strings with a non-empty old, e.g. ((\"  \", \" \"),).")
        object.__setattr__(self, "question_replacements", pairs)

    def normalise_question(self, text: str) -> str:
        """``text`` as the family's authors feed it: stripped if :attr:`strip_question`, then each of
        :attr:`question_replacements` applied.

        Parameters
        ----------
        text : str
            The rendered question.

        Returns
        -------
        str
        """
        if self.strip_question:
            text = text.strip()
        for old, new in self.question_replacements:
            text = text.replace(old, new)
        return text
