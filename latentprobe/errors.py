"""Typed errors. Each message says what was wrong and how to fix it."""

from __future__ import annotations


class LatentProbeError(Exception):
    """Base class of every error raised by latentprobe."""


class ModelStructureError(LatentProbeError, TypeError):
    """The model's decoder layers, final norm, embedding or LM head could not be located."""


class SpecError(LatentProbeError, ValueError):
    """A LatentSpec is inconsistent (e.g. K <= 0, offset not 0 or 1)."""


class SpecTokenError(SpecError, KeyError):
    """A token named by a LatentSpec is missing from the tokenizer."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0]) if self.args else ""


class InputError(LatentProbeError, ValueError):
    """Prompts, images or generation settings that cannot be run."""


class ImageBatchError(InputError):
    """Images that do not match the prompts (count, placeholders or size)."""


class InterventionError(LatentProbeError, ValueError):
    """An intervention that cannot be applied as asked."""


class InterventionShapeError(InterventionError):
    """An intervention tensor whose shape does not match the hidden size or step count."""


class StepOutOfRangeError(InterventionError, IndexError):
    """Latent steps or layers outside the range a trace has."""


class TraceFormatError(LatentProbeError, ValueError):
    """A saved trace that is missing fields or was written by an incompatible version."""


class ReportError(LatentProbeError, ValueError, TypeError):
    """A report element that cannot be rendered (wrong type or option); the message names the argument."""


class DataError(InputError):
    """A dataset file or record that cannot be read as asked."""


class StatsInputError(LatentProbeError, ValueError):
    """The inputs to a statistics routine are malformed; the message names the argument and the fix."""


class ProbeError(LatentProbeError, ValueError):
    """Invalid input to a probe: wrong shapes, too few classes or groups, etc."""


class SimilarityError(LatentProbeError, ValueError):
    """Base class of the errors raised by the geometry (similarity, CKA, spectrum) analyses."""


class ShapeError(SimilarityError):
    """An input has the wrong number of dimensions or mismatched sizes."""


class TooFewSamplesError(SimilarityError):
    """An input has too few rows (instances, examples) for the statistic."""


class NonFiniteError(SimilarityError):
    """An input contains NaN or infinite values."""


class DTypeError(SimilarityError):
    """An input is not real-valued numeric data."""


class SweepError(LatentProbeError):
    """Base class of errors raised by resumable sweeps."""


class SweepConfigMismatch(SweepError, ValueError):
    """The directory holds results of a sweep with a different configuration."""


class SweepStateError(SweepError, RuntimeError):
    """The files on disk are inconsistent with the sweep's metadata."""


class SweepRowsError(SweepError, ValueError):
    """Rows handed to :meth:`ResumableSweep.write` cannot be stored."""


class VizInputError(LatentProbeError, ValueError):
    """A table or matrix that cannot be plotted (missing columns, wrong shape)."""


class SweepArgumentError(SweepError, ValueError, TypeError):
    """An argument of :class:`ResumableSweep` (name, format, key columns, config) is malformed."""


class SweepKeyError(SweepError, TypeError):
    """A unit key or config value that cannot be stored as JSON."""


class SweepLockedError(SweepError, RuntimeError):
    """Another live process holds the sweep folder's writer lock."""


class SweepIOError(SweepError, OSError):
    """Writing a sweep's part or metadata failed at the operating-system level (disk full, permissions)."""


class LatentProbeWarning(UserWarning):
    """Base class of every warning latentprobe issues (filter them all with this category)."""


class SweepLockWarning(LatentProbeWarning):
    """A stale writer lock (its process is gone) was taken over."""


class FingerprintWarning(LatentProbeWarning):
    """A user callable reads what cannot be fingerprinted: a resumed run is refused until it has a version
    (:func:`latentprobe.versioned`)."""


class ControlTaskWarning(LatentProbeWarning):
    """A probe's control task cannot be learned by construction (no control type of a held-out example occurs in
    its training folds, e.g. types keyed by the CV groups or unique per example), so selectivity cannot fail."""


class NonFiniteInterventionError(InterventionError):
    """An intervention returned NaN or infinite values; the message names the intervention, example and step."""


class EmptyAnswersError(LatentProbeError, ValueError):
    """Every answer of a run or analysis is empty, so no effect can be measured."""


class CLIUsageError(LatentProbeError, ValueError):
    """A command-line option outside its range or otherwise unusable."""


class StudyError(LatentProbeError, ValueError):
    """A study file (``latentprobe run STUDY.toml``) or output folder that cannot be used; the message names the
    file, the table and the key, and how to fix it."""


class LatentModeError(LatentProbeError, RuntimeError):
    """A study's model never entered latent mode on the clean run; the message holds the diagnosis (share entered,
    the top tokens at the open decision, the fix) and ``diagnosis`` the same as data. A failure (exit 1), not a
    usage error."""

    def __init__(self, message: str, diagnosis: dict | None = None) -> None:
        super().__init__(message)
        self.diagnosis = dict(diagnosis or {})


class ExportDependencyError(ReportError, ImportError):
    """Static figure export needs an optional package that is not installed (the message says what to install)."""


class SchemaError(LatentProbeError, ValueError):
    """A table whose columns or dtypes differ from its declaration in :mod:`latentprobe.schema`; the message
    names the table, the missing, extra and out-of-order columns and the wrong dtypes."""


class StudyLockedError(SweepLockedError):
    """Another live process runs a study into the same output folder (it holds ``DIR/.study.lock``); the message
    names its pid, host and start time. A failure (exit 1), not a usage error."""


class DataChangedError(DataError):
    """The examples a study folder was run on changed before the run was resumed (another gold, question, option
    or image); the message lists the changed, added and removed example ids."""


class SweepChecksumError(SweepStateError):
    """A stored part file's bytes no longer match the checksum recorded when it was written (the file was damaged
    or edited); the message names the file and how to recompute it."""


class LoadError(LatentProbeError):
    """:func:`latentprobe.load` (or another checkpoint loader) could not build a runner from a checkpoint; the message
    names the path (folder or hub id), the file and what to do, and the library's own error is kept as
    ``__cause__``."""


class LoadArgumentError(LoadError, ValueError, TypeError):
    """An argument of :func:`latentprobe.load` that cannot be used: no model path, an unknown or integer ``dtype``,
    a ``device_map`` naming a device this machine lacks."""


class CheckpointNotFoundError(LoadError, FileNotFoundError):
    """The checkpoint is not there: a missing folder or file, or a hub id the hub cannot serve (offline, unknown)."""


class CheckpointFormatError(LoadError, ValueError):
    """A checkpoint file that cannot be read as what it should be: a damaged safetensors file, a config that is not
    JSON or names an unknown ``model_type``, a broken ``preprocessor_config.json``, weights of another shape."""


class NoOpWarning(LatentProbeWarning):
    """An intervention or perturbation that leaves some examples unchanged (a swap that pairs an example with
    itself); the message names them. When it would change nothing at all, an error is raised instead."""


class LayoutMismatchError(InputError):
    """A clean and a counterfactual run whose sequences do not line up position by position (another prompt length,
    image size or number of latents), so no cell (layer, position) of one has a counterpart in the other; the message
    names the example and both layouts."""


class LensMismatchError(LatentProbeError, ValueError):
    """A tuned lens used with another model than the one it was fitted on (class, layer count, width, vocabulary or
    weights fingerprint differ); the message names each difference and how to fit or load the right lens."""


class WorkerError(LatentProbeError, RuntimeError):
    """A study run by several workers (``torchrun``, ``--workers N``) cannot start or go on: the group cannot be
    formed, the folder is held by another group, or a worker stopped; the message names the rank and what to do."""


class WorkerHangError(WorkerError):
    """A worker did not reach a barrier (or stored no unit) within the hang timeout; the message names its rank, the
    unit it was computing and its log file."""
