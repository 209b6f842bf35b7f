"""A run's decoding settings, merged as the authors' pipelines merge them.

Hugging Face ``generate`` takes every setting its caller does not pass from the checkpoint's
``generation_config.json``, and transformers' defaults where the file sets none
(``GenerationConfig._get_default_generation_params``: ``top_k=50``, ``top_p=1.0``, ...); the caller's
arguments win (``GenerationMixin._prepare_generation_config``). Mirage's ``src/test.py`` and LVR's
``evaluation/evaluation.py`` pass only some settings, so the rest come from the checkpoint. vLLM
(Monet) takes only the end-of-sequence ids from the file (``SamplingParams.update_from_generation_config``
adds them to the stop ids). A hand-written loop (Coconut, CODI) reads none of it and stops at the
tokenizer's eos.

:func:`effective_generation` merges in that order: the checkpoint's file (read by
:func:`read_generation_config`; ``latentprobe.load`` does it), then the preset's published arguments
(:class:`~latentprobe.conventions.DecodingSettings`; ``from_checkpoint`` names those the authors leave to the
file), then the caller's explicit arguments. It returns the settings and the record written to
``trace.config["generation"]``, which says where each value came from.

Examples
--------
>>> from latentprobe.presets import get_preset
>>> qwen = CheckpointGeneration.from_dict({"do_sample": True, "temperature": 1e-06, "repetition_penalty": 1.05,
...                                         "eos_token_id": [151645, 151643]})
>>> cfg, record = effective_generation("published", get_preset("mirage"), qwen, tokenizer_eos=151645)
>>> (cfg.do_sample, cfg.temperature, cfg.top_k, cfg.top_p, cfg.repetition_penalty, cfg.eos_token_ids)
(True, 0.7, 50, 0.9, 1.05, (151645, 151643))
>>> record["sources"]["top_k"], record["sources"]["repetition_penalty"]
('transformers default', 'checkpoint')
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from latentprobe.engine.sampling import GenerationConfig
from latentprobe.errors import InputError, ModelStructureError
from latentprobe.spec import LatentSpec

__all__ = ["HF_DEFAULTS", "GENERATION_MODES", "CheckpointGeneration", "read_generation_config",
           "effective_generation", "config_from_record"]

#: transformers' defaults for settings a ``generation_config.json`` leaves unset (``GenerationConfig.
#: _get_default_generation_params`` in transformers 5; the constructor's defaults in 4.x).
HF_DEFAULTS: dict[str, Any] = {"do_sample": False, "temperature": 1.0, "top_k": 50, "top_p": 1.0,
                               "repetition_penalty": 1.0}
_SAMPLING = tuple(HF_DEFAULTS)
#: ``generation=`` values a run takes: ``None`` (greedy unless told otherwise), ``"published"`` (what the
#: authors' script ran), ``"checkpoint"`` (what ``model.generate(**inputs)`` runs with no arguments).
GENERATION_MODES = (None, "published", "checkpoint")


@dataclass(frozen=True)
class CheckpointGeneration:
    """The decoding settings a checkpoint's ``generation_config.json`` sets.

    Parameters
    ----------
    values:
        The sampling settings the file sets (among ``do_sample``, ``temperature``, ``top_k``, ``top_p``,
        ``repetition_penalty``); a setting it leaves out is absent.
    eos_token_ids:
        The file's ``eos_token_id`` as a tuple (an int becomes a 1-tuple), or ``None``.
    source:
        Where the file was read, or ``None``.
    """

    values: Mapping[str, Any] = field(default_factory=dict)
    eos_token_ids: tuple[int, ...] | None = None
    source: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str | None = None) -> "CheckpointGeneration":
        """From the parsed file (other keys, e.g. ``bos_token_id``, are ignored).

        Parameters
        ----------
        d : Mapping[str, Any]
            The parsed ``generation_config.json``.
        source : str | None
            Where it was read from.

        Returns
        -------
        CheckpointGeneration
        """
        eos = d.get("eos_token_id")
        if isinstance(eos, int) and not isinstance(eos, bool):
            eos = (eos,)
        elif eos is not None:
            if not isinstance(eos, (list, tuple)) or not eos or not all(
                    isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in eos):
                raise ModelStructureError(f"{source or 'generation config'}: eos_token_id={eos!r} is not a token "
                                          "id or a list of them; fix the file or remove the key.")
            eos = tuple(int(t) for t in eos)
        values = {k: d[k] for k in _SAMPLING if d.get(k) is not None}
        return cls(values, eos, source)


def read_generation_config(model: str | os.PathLike, revision: str | None = None) -> CheckpointGeneration:
    """The checkpoint's ``generation_config.json`` (a local folder, or the hub cache); empty when it has none.

    Parameters
    ----------
    model : str | os.PathLike
        A local folder or a hub id.
    revision : str | None
        The hub revision.

    Returns
    -------
    CheckpointGeneration

    Raises
    ------
    ModelStructureError
        If the file is not valid JSON or its ``eos_token_id`` is not a token id or a list of them.
    """
    path = Path(model) / "generation_config.json"
    if not path.is_file():
        try:
            from transformers.utils import cached_file

            found = cached_file(str(model), "generation_config.json", revision=revision,
                                _raise_exceptions_for_missing_entries=False)
        except OSError:
            found = None
        if found is None:
            return CheckpointGeneration()
        path = Path(found)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ModelStructureError(f"{path}: not valid JSON ({err}); fix or remove the checkpoint's "
                                  "generation_config.json.") from None
    if not isinstance(d, dict):
        raise ModelStructureError(f"{path}: holds a {type(d).__name__}, not a JSON object.")
    return CheckpointGeneration.from_dict(d, str(path))


def _union(first: tuple[int, ...] | None, then: int | None) -> tuple[int, ...] | None:
    ids = list(first or ())
    if then is not None and then not in ids:
        ids.append(int(then))
    return tuple(ids) or None


def effective_generation(generation: str | None, spec: LatentSpec, checkpoint: CheckpointGeneration | None,
                         tokenizer_eos: int | None, **explicit: Any) -> tuple[GenerationConfig, dict[str, Any]]:
    """A run's settings and their record: checkpoint file, then the preset's published arguments, then ``explicit``.

    ``generation=None``: latentprobe's defaults (greedy, 32 positions). ``"published"``: the preset's
    :attr:`~latentprobe.spec.LatentSpec.published_generation`, each setting it leaves to the checkpoint
    (``from_checkpoint``) read from ``checkpoint`` or transformers' default. ``"checkpoint"``: every
    sampling setting from the checkpoint (what ``generate`` with no arguments does). In every mode the
    end-of-sequence ids are the checkpoint's list plus the tokenizer's eos, except for a published loop
    that reads no generation config (Coconut, CODI: the tokenizer's eos). Explicit arguments that are not
    ``None`` win (``max_new_tokens``, ``do_sample``, ``temperature``, ``top_k``, ``top_p``,
    ``repetition_penalty``, ``seed``).

    Parameters
    ----------
    generation : str | None
        ``None``, ``"published"`` or ``"checkpoint"`` (see :meth:`LatentRunner.run`).
    spec : LatentSpec
        The family's spec (its published settings).
    checkpoint : CheckpointGeneration | None
        The checkpoint's generation config, if read.
    tokenizer_eos : int | None
        The tokenizer's eos id.

    Returns
    -------
    (GenerationConfig, dict)
        The settings (validated) and the record: ``mode``, each setting, ``eos_token_id`` (a list),
        ``sources`` (per setting: ``"checkpoint"``, ``"transformers default"``, ``"published"``,
        ``"latentprobe default"``, ``"argument"``, ``"tokenizer"``) and ``checkpoint_file``.

    Raises
    ------
    InputError
        An unknown ``generation``, a preset without published settings, or a setting that cannot be used.
    """
    ck = checkpoint if checkpoint is not None else CheckpointGeneration()
    base = GenerationConfig()
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def from_checkpoint(name: str) -> None:
        found = name in ck.values
        values[name] = ck.values[name] if found else HF_DEFAULTS[name]
        sources[name] = "checkpoint" if found else "transformers default"

    eos, eos_source = _union(ck.eos_token_ids, tokenizer_eos), "checkpoint" if ck.eos_token_ids else "tokenizer"
    if generation is None:
        for name in _SAMPLING:
            values[name], sources[name] = getattr(base, name), "latentprobe default"
        values["max_new_tokens"], sources["max_new_tokens"] = base.max_new_tokens, "latentprobe default"
    elif generation == "checkpoint":
        for name in _SAMPLING:
            from_checkpoint(name)
        values["max_new_tokens"], sources["max_new_tokens"] = base.max_new_tokens, "latentprobe default"
    elif generation == "published":
        pub = spec.published_generation
        if pub is None:
            raise InputError(f"generation='published': spec {spec.name!r} records no published decoding settings; "
                             "pass do_sample/temperature/top_k/top_p yourself, or generation='checkpoint'.")
        for name in _SAMPLING:
            if name in pub.from_checkpoint:
                from_checkpoint(name)
            else:
                values[name], sources[name] = getattr(pub, name), "published"
        values["max_new_tokens"], sources["max_new_tokens"] = pub.max_new_tokens, "published"
        if "eos_token_id" not in pub.from_checkpoint:  # a hand-written loop: the tokenizer's eos only
            eos, eos_source = (None if tokenizer_eos is None else (int(tokenizer_eos),)), "tokenizer"
    else:
        raise InputError(f"generation={generation!r}: use None (greedy unless do_sample=True), 'published' (the "
                         "authors' settings) or 'checkpoint' (the checkpoint's generation_config.json).")
    if values["top_k"] == 0:  # transformers: top_k=0 applies no top-k filter
        values["top_k"] = None
    seed = explicit.pop("seed", None)
    for name, v in explicit.items():
        if v is not None:
            values[name], sources[name] = v, "argument"
    sources["eos_token_id"] = eos_source
    cfg = GenerationConfig(max_new_tokens=values["max_new_tokens"], do_sample=values["do_sample"],
                           temperature=values["temperature"], top_k=values["top_k"],
                           seed=0 if seed is None else seed, top_p=values["top_p"],
                           repetition_penalty=values["repetition_penalty"], eos_token_ids=eos)
    cfg.validate()
    record = {"mode": generation, **{k: getattr(cfg, k) for k in ("max_new_tokens", *_SAMPLING, "seed")},
              "eos_token_id": None if eos is None else list(eos), "sources": sources, "checkpoint_file": ck.source}
    return cfg, record


def config_from_record(config: Mapping[str, Any], *, max_new_tokens: int | None = None,
                       seed: int | None = None) -> GenerationConfig:
    """The settings a trace was recorded with (``trace.config``), for a resumed run; ``max_new_tokens``/``seed`` override.

    Reads ``config["generation"]`` (this version's record) and falls back to the flat keys older traces hold.

    Parameters
    ----------
    config : Mapping[str, Any]
        A trace's config.
    max_new_tokens : int | None
        Override of the budget.
    seed : int | None
        Override of the seed.

    Returns
    -------
    GenerationConfig
    """
    rec = config.get("generation")
    rec = rec if isinstance(rec, Mapping) else config
    eos = rec.get("eos_token_id")
    cfg = GenerationConfig(
        max_new_tokens if max_new_tokens is not None else int(rec.get("max_new_tokens", 32)),
        bool(rec.get("do_sample", False)), float(rec.get("temperature", 1.0)), rec.get("top_k"),
        int(seed if seed is not None else rec.get("seed", 0)), rec.get("top_p"),
        float(rec.get("repetition_penalty", 1.0)), None if eos is None else tuple(int(t) for t in eos))
    cfg.validate()
    return cfg
