"""Resumable sweeps: write results as they are computed, resume where they stopped.

A sweep iterates over *units* of work (a layer, a (layer, step) pair, a
batch of examples, ...). After each unit its rows are written to their own
part file, atomically, and the unit is then recorded as completed in a small
JSON metadata file (also written atomically). If the process dies, every
unit recorded as completed is on disk in full and a new
:class:`ResumableSweep` on the same directory skips it.

Layout inside ``out_dir``::

    .sweep.lock                 the writer's pid, host and start time (while one writes)
    {name}.meta.json            config, storage format, completed units (each with its part's SHA-256)
    {name}.parts/part-00000.parquet
    {name}.parts/part-00001.parquet
    ...

A part file that exists but is not recorded in the metadata (a crash
between writing the part and updating the metadata) is ignored and removed
when the sweep is next opened, as is every temporary file of an interrupted
write anywhere in the folder; its unit is simply computed again. Part names
read from the metadata must be ones the store writes (``part-NNNNN.parquet``).
A part whose bytes differ from the SHA-256 recorded for it is refused with
:class:`~latentprobe.errors.SweepChecksumError` naming the file; a recorded
part that is missing when the sweep opens is forgotten with a warning and its
unit computed again (delete a damaged part to recompute it).

The config records everything the results depend on (the analyses of
:mod:`latentprobe.causal` put the model's weight hash, the whole spec, the mask
rule's source, ... in it, see :mod:`latentprobe.fingerprint`); reopening a
folder with another config raises :class:`SweepConfigMismatch` listing what
changed, key by key.

One process writes to a folder at a time: opening, ``run`` and ``write`` take
the folder's lock file (``.sweep.lock``, created with ``O_EXCL``) and release
it when they return; ``with sweep:`` holds it for a block. A second process is
refused with :class:`SweepLockedError` naming the owner; a lock whose process
is gone is taken over with a :class:`SweepLockWarning`.

With ``out_dir=None`` the same store is kept in memory (the analyses of
:mod:`latentprobe.causal` use it both ways): units, ``done``, ``results`` and
``run`` behave the same, nothing is written.
"""

from latentprobe.errors import (SweepArgumentError, SweepConfigMismatch, SweepError, SweepIOError, SweepKeyError,
                                SweepLockedError, SweepLockWarning, SweepRowsError, SweepStateError)
from latentprobe.sweep.keys import normalize_key
from latentprobe.sweep.resumable import ResumableSweep

__all__ = [
    "SweepError",
    "SweepConfigMismatch",
    "SweepStateError",
    "SweepRowsError",
    "SweepArgumentError",
    "SweepKeyError",
    "SweepLockedError",
    "SweepIOError",
    "SweepLockWarning",
    "ResumableSweep",
    "normalize_key",
]
