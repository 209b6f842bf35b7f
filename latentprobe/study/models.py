"""The study's model: ``[model]`` -> a :class:`~latentprobe.engine.LatentRunner` and its fingerprint.

``source = "toy:<variant>"`` builds the toy model as ``latentprobe demo`` does (:func:`latentprobe.toy.load`,
then ``.runner()``), from the shipped weights or the ``weights`` folder; a local folder (resolved against the
study file's folder by :mod:`latentprobe.study.sources`) or a hub id goes through
:func:`latentprobe.load` with the preset (and ``num_latents`` as its K), or, for a preset whose checkpoints
are adapters (``LatentSpec.checkpoint == "adapter"``: CODI), :func:`latentprobe.engine.load_codi` onto ``base``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from latentprobe.fingerprint import runner_fingerprint
from latentprobe.study.config import ModelConfig

if TYPE_CHECKING:
    from latentprobe.engine import LatentRunner
    from latentprobe.study.toys import ToyModel

__all__ = ["StudyModel", "build_model"]


@dataclass(frozen=True, eq=False)
class StudyModel:
    """The runner of a study, the toy model behind it and its fingerprint.

    Attributes
    ----------
    runner : LatentRunner
        The runner every analysis uses.
    toy : ToyModel or None
        The toy model behind the runner (``source = "toy:<variant>"``), ``None`` for a checkpoint.
    fingerprint : dict
        The runner's fingerprint (:func:`latentprobe.fingerprint.runner_fingerprint`), recorded by the study.
    """

    runner: LatentRunner
    toy: ToyModel | None
    fingerprint: dict[str, Any]


def _local_checkpoint(cfg: ModelConfig) -> str:
    """A CODI checkpoint's local folder: ``source`` itself, or its hub snapshot (``load_codi`` reads files).

    The published CODI weights are hub repositories (``zen-E/CODI-gpt2``, ``zen-E/CODI-llama3.2-1b-Instruct``:
    zhenyi4/codi README.md, "Pretrained model weights are available at https://huggingface.co/zen-E").
    """
    from pathlib import Path

    local = Path(cfg.source).expanduser()
    if local.exists():
        return str(local)
    from huggingface_hub import snapshot_download

    return snapshot_download(cfg.source, revision=cfg.revision)


def build_model(cfg: ModelConfig, where: str = "study") -> StudyModel:
    """Load the model of ``[model]``.

    Parameters
    ----------
    cfg : ModelConfig
        The study's ``[model]`` table.
    where : str
        The study file, named in errors.

    Returns
    -------
    StudyModel

    Raises
    ------
    StudyError
        The checkpoint could not be read: a hub id the hub cannot serve (offline, unknown repository; the
        message says how to point at a local folder instead) or a folder that is not a checkpoint.
    LatentProbeError
        Whatever else the loader raises (e.g. ``SpecTokenError`` for a checkpoint without the preset's markers).
    """
    if cfg.toy_variant is not None:
        from latentprobe.study.toys import load_toy

        tm = load_toy(cfg.toy_variant, cfg.weights)
        runner = tm.runner()
        return StudyModel(runner=runner, toy=tm, fingerprint=runner_fingerprint(runner))
    from latentprobe.errors import CheckpointFormatError, CheckpointNotFoundError, LatentProbeError
    from latentprobe.study.sources import load_failure

    try:
        return _checkpoint(cfg)
    except LatentProbeError as err:
        if not isinstance(err, (CheckpointNotFoundError, CheckpointFormatError)):
            raise
        on_base = cfg.base is not None and str(err).startswith(("load_codi(base=", "load_coconut(base="))
        source, key = (cfg.base, "base") if on_base else (cfg.source, "source")
        raise load_failure(source, err, where, key=key) from err  # type: ignore[arg-type]
    except (OSError, ValueError) as err:  # transformers / huggingface_hub: offline, bad repo id, not a checkpoint
        from pathlib import Path

        base_failed = cfg.base is not None and Path(cfg.source).is_absolute() and not Path(cfg.base).is_absolute()
        raise load_failure(cfg.base if base_failed else cfg.source, err, where,  # type: ignore[arg-type]
                           key="base" if base_failed else "source") from err


def _checkpoint(cfg: ModelConfig) -> StudyModel:
    from latentprobe.presets import get_preset

    spec = get_preset(cfg.preset)
    if spec.checkpoint == "adapter":
        import torch

        from latentprobe.engine import load_codi

        kw: dict[str, Any] = {"revision": cfg.revision}
        if cfg.num_latents is not None:
            kw["num_latents"] = cfg.num_latents
        if cfg.dtype is not None:
            kw["dtype"] = getattr(torch, cfg.dtype)
        if cfg.device_map not in (None, "auto"):
            kw["device"] = cfg.device_map
        elif torch.cuda.is_available():
            kw["device"] = "cuda"
        runner = load_codi(_local_checkpoint(cfg), cfg.base, **kw)
    else:
        import latentprobe

        if cfg.num_latents is not None:
            spec = spec.replace(num_latents=cfg.num_latents)
        runner = latentprobe.load(cfg.source, spec, dtype=cfg.dtype, device_map=cfg.device_map,
                                  revision=cfg.revision, trust_remote_code=cfg.trust_remote_code)
    return StudyModel(runner=runner, toy=None, fingerprint=runner_fingerprint(runner))
