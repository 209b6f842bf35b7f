"""The family's own prompt for each question: what :func:`~latentprobe.data.to_input_set` builds with ``runner=``.

One builder for notebooks and study files alike (``latentprobe run`` calls it too), so the same
examples give the same tokens from Python and from a study file:

- a vision-language checkpoint with a chat template (Monet, LVR, Mirage): the rendered question
  becomes the family's chat prompt (:func:`latentprobe.engine.inputs.chat_prompt`: its system
  prompt, one image span per image where its authors put it, its generation prompt); the images
  stay in :attr:`InputSet.images`, where perturbations replace them;
- a spec whose prompt opens latent mode (``open_mode="prompt"``, Coconut): token ids as Coconut's
  evaluation feeds them, ``encode(question + "\\n", add_special_tokens=True)`` then the open marker,
  ``num_latents`` slot tokens and the close marker (facebookresearch/coconut@27273cb8 ``dataset.py``
  ``get_question_latent_dataset``; the same ids as :func:`latentprobe.engine.loading.coconut_prompt`);
- every family: the preset's question normalisation (:meth:`latentprobe.conventions.PromptConventions.normalise_question`;
  CODI: ``question.strip().replace("  ", " ")`` as its ``test.py`` does, zhenyi4/codi@4fd88d4b);
  the runner appends ``<bot>``;
- any other runner: the rendered text as it is.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from latentprobe.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from latentprobe.engine.runner import LatentRunner
    from latentprobe.perturbations import InputSet

__all__ = ["family_prompts", "is_chat_runner"]


def is_chat_runner(runner: object) -> bool:
    """Whether the runner's prompts are chats: a vision-language checkpoint whose tokenizer has a chat template.

    Text models (CODI, Coconut) take the plain question, as their authors feed it.

    Parameters
    ----------
    runner : Any
        A runner, or anything standing for one.

    Returns
    -------
    bool
    """
    return (runner is not None and bool(getattr(runner, "is_vlm", False))
            and getattr(getattr(runner, "tokenizer", None), "chat_template", None) is not None)


def _spec(runner: Any) -> Any:
    return getattr(runner, "spec", None)


def _prompt_mode_ids(runner: Any, text: str, where: str) -> list[int]:
    spec, tok = _spec(runner), runner.tokenizer
    rs = getattr(runner, "resolved", None)
    ids = [getattr(rs, name, None) for name in ("open_id", "slot_id", "close_id")]
    if tok is None or any(i is None for i in ids):
        raise DataError(f"{where}: spec {spec.name!r} opens latent mode in the prompt, which needs the runner's "
                        "tokenizer and its open, slot and close token ids; pass a LatentRunner (latentprobe.load).")
    open_id, slot_id, close_id = (int(i) for i in ids)
    suffix = getattr(getattr(spec, "prompt", None), "suffix", "") or ""
    body = list(tok.encode(text + suffix, add_special_tokens=True))
    return body + [open_id] + [slot_id] * int(spec.num_latents) + [close_id]


def family_prompts(inputs: InputSet, runner: LatentRunner) -> InputSet:
    """``inputs`` with each rendered question turned into the prompt the runner's family is fed.

    Parameters
    ----------
    inputs : InputSet
        Prompts as rendered text (one string per example), images in ``inputs.images``.
    runner : LatentRunner
        The runner the prompts are for (its spec, tokenizer and prompt convention decide).

    Returns
    -------
    InputSet
        The same examples with the family's prompts: chat strings, Coconut's token ids, or CODI's
        normalised question (see the module docstring); chats given as messages are left alone.

    Raises
    ------
    DataError
        A prompt-opened spec without a tokenizer or marker ids.
    InputError
        A chat prompt whose question holds the wrong number of image placeholders (Mirage's ``<image>``).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from latentprobe.perturbations import InputSet
    >>> from latentprobe.presets import get_preset
    >>> codi = SimpleNamespace(spec=get_preset("codi"), is_vlm=False, tokenizer=None)
    >>> family_prompts(InputSet(("q1",), ("  Two  apples? ",)), codi).prompts
    ('Two apples?',)
    """
    if runner is None or not all(isinstance(p, str) for p in inputs.prompts):
        return inputs
    spec = _spec(runner)
    conventions = getattr(spec, "prompt", None)
    if conventions is not None:  # the family's own question normalisation (CODI: strip, '  ' -> ' ')
        inputs = dataclasses.replace(inputs, prompts=tuple(conventions.normalise_question(p) for p in inputs.prompts))
    if is_chat_runner(runner):
        from latentprobe.engine.inputs import chat_prompt

        images = inputs.images if inputs.images is not None else (None,) * len(inputs.prompts)
        prompts: list[Any] = []
        for eid, text, ims in zip(inputs.example_ids, inputs.prompts, images):
            n = 0 if ims is None else len(ims) if isinstance(ims, (list, tuple)) else 1
            prompts.append(chat_prompt(runner.tokenizer, text, n, getattr(runner, "prompt_convention", None),
                                       where=f"example {eid!r}"))
    elif getattr(spec, "open_mode", None) == "prompt":
        prompts = [_prompt_mode_ids(runner, text, f"example {eid!r}")
                   for eid, text in zip(inputs.example_ids, inputs.prompts)]
    else:
        return inputs
    return dataclasses.replace(inputs, prompts=tuple(prompts))
