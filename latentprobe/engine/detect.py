"""Which published family a checkpoint belongs to, and whether a preset fits it.

* :func:`checkpoint_evidence`: what a checkpoint shows without loading its weights: the tokenizer's added
  tokens, ``config.json`` and the weight names (``safetensors`` headers, ``pytorch_model.bin`` keys, the
  shard index);
* :func:`detect_family`: the families whose signature the evidence matches (:class:`Detection`);
* :func:`check_preset_fits`: a preset of another family, or a head the checkpoint lacks or carries
  unused, is refused; :func:`check_loading_info`: weights that failed to map are listed.

Signatures, one per published family (the marker strings are the presets' own):

================ ===================================================================================
``monet``        a vision-language config and ``<abs_vis_token>``, ``</abs_vis_token>`` in the tokenizer
``lvr``          a vision-language config and ``<|lvr_start|>`` (or ``lvr_start_id`` in the config:
                 ``VincentLeebang/lvr@637a9f7e`` ``src/train/train_lvr.py:177-185``)
``mirage``       a vision-language config and ``<|latent_start|>``, ``<|latent_end|>``, ``<|latent_pad|>``
``coconut``      a text config and ``<|start-latent|>``, ``<|end-latent|>``, ``<|latent|>``; or a state dict
                 whose keys all start ``base_causallm.`` (``facebookresearch/coconut`` ``run.py:116-143``)
``codi``         a state dict with ``codi.*`` and ``prj.*`` keys (``zhenyi4/codi`` ``src/model.py``, ``train.py:415``)
================ ===================================================================================

An LVR checkpoint trained with ``lvr_head`` has ``lvr_head: true`` (and ``lvr_head_type``) in its config
and ``lvr_head.*`` weights (``src/train/train_lvr.py:116-118``, ``src/model/qwen_lvr_model.py:58-78``);
``latent_end_token: true`` adds ``lvr_latent_end_emb`` (``:63-64``, ``:81-91``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from latentprobe.errors import CheckpointFormatError, LoadError, ModelStructureError, SpecError
from latentprobe.presets import get_preset, list_presets
from latentprobe.spec import LatentSpec

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PretrainedConfig
    from transformers import PreTrainedTokenizerBase

__all__ = ["FAMILIES", "Evidence", "Detection", "FamilyDetectionError", "FamilyMismatchError", "HeadMismatchError",
           "UnmappedWeightsError", "checkpoint_evidence", "detect_family", "check_preset_fits", "check_loading_info",
           "read_weights", "resolve_preset", "lvr_weights", "RUNNER_WEIGHTS"]

#: The published families :func:`detect_family` tells apart (the toy presets are the shipped toys' own).
FAMILIES: tuple[str, ...] = ("monet", "lvr", "mirage", "coconut", "codi")
_VL_FAMILIES = ("monet", "lvr", "mirage")
#: Weights the published loops use beyond the base model (LVR: the head and the learned end embedding).
_LVR_HEAD = "lvr_head."
_LVR_END = "lvr_latent_end_emb"


class FamilyDetectionError(LoadError, SpecError):
    """``load`` without a preset could not tell which family a checkpoint belongs to."""


class FamilyMismatchError(LoadError, SpecError):
    """A preset of one family asked for a checkpoint of another."""


class HeadMismatchError(LoadError, SpecError):
    """A preset whose head the checkpoint lacks, or a checkpoint whose head the preset would ignore."""


class UnmappedWeightsError(LoadError, ModelStructureError):
    """Checkpoint weights that do not map onto the model built for them (or model weights the checkpoint lacks)."""


@dataclass(frozen=True)
class Evidence:
    """What a checkpoint shows without loading its weights.

    Parameters
    ----------
    tokens : frozenset of str
        The tokenizer's added tokens.
    config : Mapping[str, Any]
        ``config.json``.
    weights : tuple of str
        The weight names (empty when none could be read, e.g. a hub id).
    layout : str
        ``"folder"`` (``save_pretrained``) or ``"state_dict"`` (one file of tensors, or a folder without
        ``config.json``: Coconut's and CODI's).
    """

    tokens: frozenset[str] = frozenset()
    config: Mapping[str, Any] = field(default_factory=dict)
    weights: tuple[str, ...] = ()
    layout: str = "folder"

    @property
    def is_vl(self) -> bool:
        return self.config.get("vision_config") is not None

    @property
    def lvr_head(self) -> bool:
        """Trained with ``lvr_head``: ``lvr_head.*`` weights, or ``lvr_head: true`` in the config."""
        return bool(self.config.get("lvr_head")) or any(w.startswith(_LVR_HEAD) for w in self.weights)

    @property
    def lvr_end_embedding(self) -> bool:
        return bool(self.config.get("latent_end_token")) or _LVR_END in self.weights


@dataclass(frozen=True)
class Detection:
    """The outcome of :func:`detect_family`.

    Parameters
    ----------
    family : str or None
        The family when exactly one signature matches, else ``None``.
    candidates : tuple of str
        Every family that matches.
    reasons : Mapping[str, str]
        What matched, for each candidate.
    evidence : Evidence
        What the checkpoint showed.
    """

    family: str | None
    candidates: tuple[str, ...]
    reasons: Mapping[str, str]
    evidence: Evidence

    def describe(self) -> str:
        """The candidates and what matched, or what each family needs when none did.

        Returns
        -------
        str
        """
        if not self.candidates:
            return "no published family's markers or weights (" + ", ".join(f"{f}: {_needs(f)}" for f in FAMILIES) + ")"
        return "; ".join(f"{f} ({self.reasons[f]})" for f in self.candidates)


def _markers(family: str) -> tuple[str, ...]:
    return tuple(t for t in get_preset(family).tokens().values() if isinstance(t, str))


def _needs(family: str) -> str:
    if family == "codi":
        return "codi.* and prj.* weights"
    kind = "a vision-language config" if family in _VL_FAMILIES else "a text config"
    return f"{kind} with {', '.join(_markers(family))}"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def _added_tokens(folder: Path) -> set[str]:
    out: set[str] = set()
    out.update(t.get("content", "") for t in _read_json(folder / "tokenizer.json").get("added_tokens", []))
    decoder = _read_json(folder / "tokenizer_config.json").get("added_tokens_decoder", {})
    out.update(t.get("content", "") for t in decoder.values() if isinstance(t, dict))
    out.update(_read_json(folder / "added_tokens.json"))
    return out - {""}


def _weight_files(folder: Path) -> list[Path]:
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        shards = _read_json(folder / index).get("weight_map")
        if shards:
            return [folder / s for s in sorted(set(shards.values()))]
    return [folder / n for n in ("model.safetensors", "pytorch_model.bin", "checkpoint") if (folder / n).is_file()][:1]


def _names(path: Path) -> list[str]:
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                return list(f.keys())
        import torch

        sd = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # safetensors' header errors, torch's unpickling and zip errors: the file is damaged
        raise CheckpointFormatError(
            f"{path}: the weights file cannot be read ({type(err).__name__}: {' '.join(str(err).split())[:200]}); it "
            "is damaged, cut short or not a weights file: download or save it again.") from err
    sd = sd.get("state_dict", sd) if isinstance(sd, dict) else sd
    return list(sd) if isinstance(sd, dict) else []


def read_weights(checkpoint: str | Path, prefix: str) -> dict[str, Any]:
    """The tensors of a local checkpoint whose names start with ``prefix`` (all shards), read without the rest.

    Parameters
    ----------
    checkpoint : str | Path
        A local folder or state-dict file.
    prefix : str
        Name prefix of the tensors to read.

    Returns
    -------
    dict[str, Tensor]
    """
    path = Path(checkpoint)
    out: dict[str, Any] = {}
    for file in (_weight_files(path) if path.is_dir() else [path]):
        if file.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(file), framework="pt") as f:
                out.update({k: f.get_tensor(k) for k in f.keys() if k.startswith(prefix)})
        else:
            import torch

            sd = torch.load(str(file), map_location="cpu", weights_only=True, mmap=True)
            sd = sd.get("state_dict", sd) if isinstance(sd, dict) else sd
            out.update({k: v.clone() for k, v in sd.items() if k.startswith(prefix)})
    return out


def checkpoint_evidence(checkpoint: str | Path, *, tokenizer: PreTrainedTokenizerBase | None = None,
                        config: PretrainedConfig | None = None) -> Evidence:
    """The :class:`Evidence` of a local checkpoint (folder or state-dict file).

    ``tokenizer`` / ``config``, when given (objects ``load`` already built), are used instead of the files:
    that is how a hub id is judged (its weight names are then unknown).

    Parameters
    ----------
    checkpoint : str | Path
        A local folder or state-dict file.
    tokenizer : PreTrainedTokenizerBase
        Its tokenizer, if already loaded.
    config : Any
        Its config, if already loaded.

    Returns
    -------
    Evidence
    """
    path = Path(checkpoint)
    if path.is_file():
        return Evidence(weights=tuple(_names(path)), layout="state_dict")
    tokens: set[str] = set()
    cfg: dict[str, Any] = {}
    weights: list[str] = []
    if path.is_dir():
        tokens = _added_tokens(path)
        cfg = _read_json(path / "config.json")
        for file in _weight_files(path):
            weights.extend(_names(file))
    if tokenizer is not None:
        tokens |= set(tokenizer.get_added_vocab())
    if config is not None:
        cfg = {**cfg, **config.to_dict()}
    layout = "folder" if cfg else ("state_dict" if weights else "folder")
    return Evidence(tokens=frozenset(tokens), config=cfg, weights=tuple(weights), layout=layout)


def _matches(family: str, ev: Evidence) -> str | None:
    if family == "codi":
        has = {w.split(".", 1)[0] for w in ev.weights}
        return "codi.* and prj.* weights" if {"codi", "prj"} <= has else None
    if family == "coconut" and ev.weights and all(w.startswith("base_causallm.") for w in ev.weights):
        return "every weight under base_causallm."
    if (family in _VL_FAMILIES) != ev.is_vl or not ev.config:
        return None
    markers = _markers(family)
    if set(markers) <= ev.tokens:
        return "tokens " + ", ".join(markers)
    if family == "lvr" and "lvr_start_id" in ev.config:
        return "lvr_start_id in config.json"
    return None


def detect_family(checkpoint: str | Path | Evidence, *, tokenizer: PreTrainedTokenizerBase | None = None,
                  config: PretrainedConfig | None = None) -> Detection:
    """Which published family (:data:`FAMILIES`) a checkpoint belongs to, from its tokens, config and weights.

    Parameters
    ----------
    checkpoint:
        A local folder or state-dict file, or its :class:`Evidence`.
    tokenizer, config:
        Already built objects to read the added tokens and config from (see :func:`checkpoint_evidence`).

    Returns
    -------
    Detection
        ``family`` is ``None`` unless exactly one family matches; ``candidates`` lists all that do.

    Examples
    --------
    >>> detect_family(Evidence(tokens=frozenset({"<|latent_start|>", "<|latent_end|>", "<|latent_pad|>"}),
    ...                        config={"vision_config": {}})).family
    'mirage'
    """
    ev = checkpoint if isinstance(checkpoint, Evidence) else checkpoint_evidence(checkpoint, tokenizer=tokenizer,
                                                                                 config=config)
    reasons = {f: r for f in FAMILIES if (r := _matches(f, ev)) is not None}
    found = tuple(reasons)
    return Detection(family=found[0] if len(found) == 1 else None, candidates=found, reasons=reasons, evidence=ev)


#: Presets no checkpoint is detected as: ``capimagine`` checkpoints carry Monet's tokens (trained with Monet's
#: code), ``plain`` runs any checkpoint without a latent protocol. They are never refused by detection.
_UNDETECTED = ("capimagine", "plain")


def _family_of(spec: LatentSpec) -> str | None:
    """The registered preset ``spec`` is (by name), or ``None`` for a spec of the user's own (or one of
    :data:`_UNDETECTED`)."""
    return spec.name if spec.name in list_presets() and spec.name not in _UNDETECTED else None


def check_preset_fits(spec: LatentSpec, detection: Detection, where: str) -> None:
    """Refuse a preset that does not fit the checkpoint ``detection`` describes.

    Parameters
    ----------
    spec : LatentSpec
        The preset asked for.
    detection : Detection
        What the checkpoint is.
    where : str
        Where the checkpoint was given (named in errors).

    Raises
    ------
    FamilyMismatchError
        ``spec`` is a registered preset (the toys' included) and the checkpoint matches other families only.
    HeadMismatchError
        The checkpoint carries ``lvr_head`` weights that a ``head="none"`` spec would ignore, or the spec
        has a head the checkpoint lacks, or ``stop="similarity"`` without ``lvr_latent_end_emb``.
    """
    family = _family_of(spec)
    if family is not None and detection.candidates and family not in detection.candidates:
        raise FamilyMismatchError(
            f"{where}: preset {spec.name!r} does not fit this checkpoint, which is a "
            f"{' or '.join(detection.candidates)} checkpoint ({detection.describe()}). Load it with "
            f"latentprobe.load(path, {detection.candidates[0]!r}), or latentprobe.load(path) to detect the family."
            + (" The toy presets are the shipped toy models' protocols, not a published family's." if
               family.startswith("toy") else ""))
    ev = detection.evidence
    head_type = ev.config.get("lvr_head_type", "simple")
    if ev.lvr_head and spec.head == "none":
        raise HeadMismatchError(
            f"{where}: the checkpoint was trained with lvr_head (config lvr_head={ev.config.get('lvr_head')!r}, "
            f"{sum(w.startswith(_LVR_HEAD) for w in ev.weights)} lvr_head.* weights), which preset {spec.name!r} "
            "(head='none') would ignore: the authors' loop applies it to every latent after the first. Load with "
            "get_preset('lvr', head='latent'), or latentprobe.load(path) to detect it.")
    if spec.head != "none" and not ev.lvr_head:
        raise HeadMismatchError(f"{where}: spec {spec.name!r} has head={spec.head!r} but the checkpoint has no "
                                "lvr_head.* weights (trained with LVR_HEAD=False); use head='none'.")
    if spec.head != "none" and head_type != "simple":
        raise HeadMismatchError(f"{where}: lvr_head_type={head_type!r}; only the 'simple' head (LayerNorm, Linear, "
                                "GELU, Linear: latentprobe.engine.lvr.LvrHead) is supported.")
    if spec.stop == "similarity" and ev.weights and _LVR_END not in ev.weights:
        raise HeadMismatchError(f"{where}: spec {spec.name!r} stops on similarity to lvr_latent_end_emb, which the "
                                "checkpoint lacks (trained without latent_end_token); use stop='quota'.")


def check_loading_info(info: Mapping[str, Sequence[Any]], where: str, used: Sequence[str] = ()) -> None:
    """Refuse a load whose weights did not all map (``from_pretrained(..., output_loading_info=True)``'s info).

    ``used`` are prefixes of checkpoint weights the runner loads itself (``lvr_head.``, ``lvr_latent_end_emb``).

    Parameters
    ----------
    info : Mapping[str, Sequence[Any]]
        ``from_pretrained(..., output_loading_info=True)``'s info.
    where : str
        Where the checkpoint was given (named in errors).
    used : Sequence[str]
        Prefixes of checkpoint weights the runner loads itself (not counted as unmapped).

    Raises
    ------
    UnmappedWeightsError
        Listing every checkpoint weight that mapped onto nothing, every model weight the checkpoint lacks
        (left randomly initialised), and every shape mismatch.
    """
    unexpected = sorted(k for k in info.get("unexpected_keys", ()) if not str(k).startswith(tuple(used)))
    missing = sorted(info.get("missing_keys", ()))
    mismatched = [f"{k[0]} {tuple(k[1])} vs {tuple(k[2])}" if isinstance(k, (tuple, list)) and len(k) == 3 else str(k)
                  for k in info.get("mismatched_keys", ())]
    if unexpected or missing or mismatched:
        parts = [f"{len(v)} {what}: {', '.join(map(str, v))}" for what, v in
                 (("checkpoint weight(s) mapped onto nothing", unexpected),
                  ("model weight(s) missing from the checkpoint (left random)", missing),
                  ("weight(s) of another shape", mismatched)) if v]
        raise UnmappedWeightsError(
            f"{where}: the weights do not map onto the model built for them; " + "; ".join(parts) + ". The checkpoint "
            "was saved from another architecture or family (a preset with a head it needs?), or is damaged; "
            "check its config.json against the weights.")


def resolve_preset(preset: str | LatentSpec | None, detection: Detection, where: str) -> LatentSpec:
    """The spec to load with: ``preset`` (a name or a spec), or the detected family's preset when ``None``
    (LVR with ``head="latent"`` when the checkpoint carries ``lvr_head``).

    Parameters
    ----------
    preset : str | LatentSpec | None
        A preset name, a spec, or ``None`` to use the detected family.
    detection : Detection
        What the checkpoint is.
    where : str
        Where the checkpoint was given (named in errors).

    Returns
    -------
    LatentSpec

    Raises
    ------
    FamilyDetectionError
        ``preset`` is ``None`` and the checkpoint matches no family or several (the message lists them).
    """
    if preset is not None:
        return get_preset(preset) if isinstance(preset, str) else preset
    if detection.family is None:
        some = "several families" if detection.candidates else "no published family"
        raise FamilyDetectionError(
            f"{where}: cannot tell the checkpoint's family, it matches {some}: {detection.describe()}. Candidates: "
            f"{', '.join(detection.candidates or FAMILIES)}; pass the preset, e.g. latentprobe.load(path, "
            f"{(detection.candidates or FAMILIES)[0]!r}).")
    if detection.family == "lvr" and detection.evidence.lvr_head:
        return get_preset("lvr", head="latent")
    return get_preset(detection.family)


def lvr_weights(checkpoint: str | Path, spec: LatentSpec, where: str) -> dict[str, Any]:
    """``head=`` and ``end_embedding=`` for a runner on a local LVR checkpoint, as ``spec`` needs them.

    Parameters
    ----------
    checkpoint : str | Path
        A local LVR checkpoint.
    spec : LatentSpec
        The spec the runner uses.
    where : str
        Where the checkpoint was given (named in errors).

    Returns
    -------
    dict[str, Any]
        ``head`` and ``end_embedding`` as the spec needs them.
    """
    from latentprobe.engine.lvr import LvrHead

    out: dict[str, Any] = {}
    local = Path(checkpoint).exists()
    if (spec.head != "none" or spec.stop == "similarity") and not local:
        raise HeadMismatchError(f"{where}: spec {spec.name!r} needs the checkpoint's lvr_head / lvr_latent_end_emb "
                                "weights, read from a local folder: download the checkpoint and load its folder.")
    if spec.head != "none":
        out["head"] = LvrHead.from_state_dict(read_weights(checkpoint, _LVR_HEAD))
    if spec.stop == "similarity":
        out["end_embedding"] = read_weights(checkpoint, _LVR_END)[_LVR_END]
    return out


#: Prefixes of checkpoint weights that a runner loads itself rather than the Hugging Face model.
RUNNER_WEIGHTS: tuple[str, ...] = (_LVR_HEAD, _LVR_END)
