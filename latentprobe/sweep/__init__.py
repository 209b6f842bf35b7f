"""Resumable sweeps: write results as they are computed, resume where they stopped.

A sweep iterates over *units* of work (a layer, a (layer, step) pair, a
batch of examples, ...). After each unit its rows are written to their own
part file, atomically, and the unit is then recorded as completed in a small
JSON metadata file (also written atomically). If the process dies, every
unit recorded as completed is on disk in full and a new
:class:`ResumableSweep` on the same directory skips it.

Layout inside ``out_dir``::

    {name}.meta.json            config, storage format, completed units
    {name}.parts/part-00000.parquet
    {name}.parts/part-00001.parquet
    ...

A part file that exists but is not recorded in the metadata (a crash
between writing the part and updating the metadata) is ignored and removed
when the sweep is next opened; its unit is simply computed again.

Only one process may write to a sweep directory at a time; there is no
locking.

With ``out_dir=None`` the same store is kept in memory (the analyses of
:mod:`latentprobe.causal` use it both ways): units, ``done``, ``results`` and
``run`` behave the same, nothing is written.
"""

from latentprobe.errors import SweepConfigMismatch, SweepError, SweepRowsError, SweepStateError
from latentprobe.sweep.keys import normalize_key
from latentprobe.sweep.resumable import ResumableSweep

__all__ = [
    "SweepError",
    "SweepConfigMismatch",
    "SweepStateError",
    "SweepRowsError",
    "ResumableSweep",
    "normalize_key",
]
