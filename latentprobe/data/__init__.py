"""Benchmarks and datasets: published benchmark layouts as :class:`Example` records, seeded stratified
sampling, and the :class:`~latentprobe.perturbations.InputSet` every experiment takes.

=====================  =====================================================================
name                   what it does
=====================  =====================================================================
:func:`load_benchmark` read a benchmark named in :data:`BENCHMARKS` from its published on-disk
                       layout (V* Bench, HR-Bench 4K/8K, MME-RealWorld-Lite, TableVQA-Bench,
                       Mirage's VSP, VLMEvalKit TSVs, GSM8k-Aug, ProsQA, JSONL, ``datasets``
                       folders) as a list of :class:`Example`; images stay lazy
                       (:class:`ImageRef`), checked at load, decoded by :meth:`ImageRef.load`
:func:`register_       add a loader of your own (or ship one in the ``latentprobe.benchmarks``
benchmark`             entry-point group); :func:`list_benchmarks` names every loader
:func:`sample`         seeded stratified sample (proportional, largest remainders, every stratum
                       represented when ``n`` allows), independent of input order: :class:`Sample`
:func:`to_input_set`   examples -> :class:`~latentprobe.perturbations.InputSet` with a prompt
                       template (``{question}``, ``{options}``, ``{letters}``, ...) or chat messages;
                       ``runner=`` builds the family's own prompts, as ``latentprobe run`` does
:func:`load_jsonl`,    a JSONL file with an image folder, or a ``datasets`` folder, straight to an
:func:`load_hf_disk`   ``InputSet`` (images decoded at once)
=====================  =====================================================================

Layouts and their sources: ``docs/howto/benchmarks.md``. Nothing is downloaded. Every malformed
file raises :class:`~latentprobe.errors.DataError` naming the file, row and field.
"""

from latentprobe.data.images import ImageRef
from latentprobe.data.inputs import render_options, to_input_set
from latentprobe.data.loaders import DataError, load_hf_disk, load_jsonl
from latentprobe.data.records import LETTERS, Example
from latentprobe.data.registry import BENCHMARKS, list_benchmarks, load_benchmark, register_benchmark
from latentprobe.data.sampling import Sample, allocate, draw_stratified, sample

__all__ = [
    "BENCHMARKS",
    "DataError",
    "Example",
    "ImageRef",
    "LETTERS",
    "Sample",
    "allocate",
    "draw_stratified",
    "list_benchmarks",
    "load_benchmark",
    "load_hf_disk",
    "load_jsonl",
    "register_benchmark",
    "render_options",
    "sample",
    "to_input_set",
]
