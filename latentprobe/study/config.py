"""The study file: one TOML file describing a whole analysis, parsed into frozen dataclasses.

``latentprobe run STUDY.toml --out DIR`` reads it with :mod:`tomllib` and checks every table and key
before any work is done: an unknown key, a wrong type, a missing root folder or an unknown preset,
benchmark, scorer, perturbation, intervention or mode name raises :class:`~latentprobe.errors.StudyError`
naming the file, the table and the key, and how to fix it.

Schema (every key; optional ones show their default)::

    [study]
    name = "toy-mediation"      # required, free text; recorded in the output folder
    seed = 0                    # seeds sampling, perturbations, interventions, bootstrap and probes
    description = ""            # free text, shown in the report
    threads = 1                 # CPU threads of torch and the BLAS pools (1: the same floats on every machine)

    [model]
    source = "toy:mediated"     # required: "toy:<variant>", a local folder (~ expanded, relative to the TOML's folder)
                                # or a hub id "owner/name"; a path-like value must exist
    weights = "toy-weights"     # toy: only: the folder `latentprobe toy train --out` wrote (default: shipped weights)
    preset = "monet"            # a preset name (`latentprobe presets`); required unless source is toy:
    dtype = "bfloat16"          # "float32", "bfloat16" or "float16" (default: the checkpoint's)
    device_map = "auto"         # passed to from_pretrained (optional)
    revision = "main"           # optional
    trust_remote_code = false
    base = "gpt2"               # adapter presets (codi) only, required there: the base model (a folder or a hub id)
    num_latents = 6             # optional: the preset's K (num_latents) for this checkpoint

    [data]                      # or several [[data]] tables, concatenated in order
    benchmark = "vstar"         # required: a name of latentprobe.data.list_benchmarks(), or "toy"
    root = "~/data/vstar"       # required for real benchmarks; relative paths resolve against the TOML's folder
    n = 100                     # optional: sample n examples of this table
    by = "category"             # stratify that sample by this field; false: no stratification
    take = "sample"             # "sample" (seeded, stratified by `by`) or "first" (the first n, in file order)
    seed = <study.seed>         # the sample's seed
    split = "test"              # "toy" only: "train" or "test" (the shipped toy data)
    options = {}                # extra keyword arguments of load_benchmark (e.g. {file = "test.tsv"})

    [sample]                    # optional: sample the concatenated examples of all [[data]] tables
    n = 100                     # required in [sample]
    by = "source"               # default "category"; false: no stratification
    seed = <study.seed>

    [prompt]                    # real benchmarks only (the toy models use their own prompt)
    template = "{question}\\n{options}\\nAnswer with the option's letter."   # fields {question} {options} {letters}
    messages = [...]            # instead of template: chat messages (list of tables)
    max_pixels = 1003520        # optional cap on image size

    [generation]
    max_new_tokens = 16         # answer budget (greedy decoding)
    open = "auto"               # "auto": the model opens latent mode itself; "force": its open marker is forced at
                                # the first generated position (latentprobe.engine.ForceOpen), in every generation
    published = false           # true: the preset's published decoding (generation="published": the
                                # authors' settings, the checkpoint's generation_config.json where they
                                # leave them) and its max_new_tokens
    scorer = "exact"            # "choice", "numeric", "exact", "first_word" or "package.module:Name"
    batch_size = 8
    chunk_size = 16             # examples per stored unit of a resumable analysis
    n_boot = 1000               # bootstrap resamples of every interval

    [analyses.<key>]            # each [analyses.*] table present runs that registered analysis; its keys are
                                # the fields of the analysis's options (`latentprobe analyses` lists them all)
    [analyses.x_to_z]
    perturbations = ["image_swap", "blank_image"]   # required: perturbation names or "package.module:Class"
    layers = "all"              # "all" or a list of residual layers (0 = the fed latent)
    baselines = true            # also compare prompt-token states

    [analyses.z_to_y]
    interventions = ["zero", "replace_noise", "no_latents"]   # required: names or "package.module:Class"
    modes = ["propagate", "redecode"]
    layers = [0]

    [analyses.decompose]
    treatment = "blank_image"   # required: a perturbation name
    against = "clean"           # "clean" or "treated"
    outcome = "correct"         # "correct" or "gold_logprob"

    [analyses.probes]
    targets = ["category"]      # required: example fields (meta or attributes) to decode from the latents
    layers = "all"
    steps = "all"
    n_splits = 4
    controls = true

    [analyses.collapse]         # (and representations, latent_similarity, behavioural, any registered one)

                                # every analysis also takes the shared options n_boot, ci, seed, batch_size
                                # (default: [generation] / [study]) and save_trace = false

    [output]
    traces = false              # save the clean trace in every analysis folder

Intervention and perturbation names are the library's own (``replace_noise`` for Gaussian
replacement, ``blank_image`` for a blind input, ``image_swap`` for shuffled images), or import strings
naming your own; ``[sample]`` samples across several ``[[data]]`` tables (e.g. instances stratified by
``source``); ``[model] base`` loads adapter checkpoints (CODI's preset has ``checkpoint = "adapter"``);
``num_latents`` sets any preset's K.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator, Mapping
from typing import Any

from latentprobe.data import BENCHMARKS
from latentprobe.errors import StudyError
from latentprobe.scoring import SCORER_NAMES
from latentprobe.study._parse import analyses_tables, data_tables, generation_table, prompt_table
from latentprobe.study._toml import Table

__all__ = ["Study", "StudyInfo", "ModelConfig", "DataConfig", "SampleConfig", "PromptConfig", "GenerationConfig",
           "Analyses", "load_study", "BENCHMARK_NAMES", "SCORERS", "DTYPES"]

#: The built-in benchmarks; a study file may also name any loader added with
#: :func:`latentprobe.data.register_benchmark` (the check reads :func:`latentprobe.data.list_benchmarks`).
BENCHMARK_NAMES = BENCHMARKS
SCORERS = SCORER_NAMES
DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class StudyInfo:
    """The ``[study]`` table.

    Attributes
    ----------
    name : str
        ``name`` (required): free text, recorded in the output folder.
    seed : int
        ``seed`` (default 0): seeds sampling, perturbations, interventions, the bootstrap and the probes.
    description : str
        ``description`` (default ``""``): free text, shown in the report.
    threads : int
        ``threads`` (default 1): CPU threads of torch and the BLAS pools (:mod:`latentprobe.threads`).
    """

    name: str
    seed: int = 0
    description: str = ""
    threads: int = 1


@dataclass(frozen=True)
class ModelConfig:
    """The ``[model]`` table.

    Attributes
    ----------
    source : str
        ``source`` (required): ``"toy:<variant>"``, a local folder (resolved to an absolute path) or a hub id.
    preset : str or None
        ``preset``: a preset name; required unless ``source`` is a toy (default ``None``).
    dtype : str or None
        ``dtype``: ``"float32"``, ``"bfloat16"`` or ``"float16"`` (default ``None``: the checkpoint's).
    device_map : str or None
        ``device_map``: passed to ``from_pretrained`` (default ``None``).
    revision : str or None
        ``revision``: the hub revision (default ``None``).
    trust_remote_code : bool
        ``trust_remote_code`` (default ``False``).
    base : str or None
        ``base``: the base model of an adapter preset (codi), a folder or a hub id; required there
        (default ``None``).
    num_latents : int or None
        ``num_latents``: the preset's K for this checkpoint (default ``None``: the preset's).
    weights : str or None
        ``weights``, toy sources only: the folder ``latentprobe toy train --out`` wrote (default ``None``:
        the shipped weights).
    """

    source: str
    preset: str | None = None
    dtype: str | None = None
    device_map: str | None = None
    revision: str | None = None
    trust_remote_code: bool = False
    base: str | None = None
    num_latents: int | None = None
    weights: str | None = None

    @property
    def toy_variant(self) -> str | None:
        """The toy variant of ``source = "toy:<variant>"``, else ``None``."""
        return self.source[4:] if self.source.startswith("toy:") else None


@dataclass(frozen=True)
class DataConfig:
    """One ``[data]`` (or ``[[data]]``) table.

    Attributes
    ----------
    benchmark : str
        ``benchmark`` (required): a name of :func:`latentprobe.data.list_benchmarks`, or ``"toy"``.
    root : str or None
        ``root``: the benchmark's folder, resolved to an absolute path; required for real benchmarks,
        ``None`` for the toy data.
    n : int or None
        ``n``: how many examples to take from this table (default ``None``: all).
    by : str or None
        ``by``: the field the sample is stratified by (default ``"category"``; ``false`` gives ``None``,
        no stratification).
    seed : int
        ``seed``: the sample's seed (default: ``[study] seed``).
    split : str
        ``split``, toy data only: ``"train"`` or ``"test"`` (default ``"test"``).
    options : Mapping[str, Any]
        ``options``: extra keyword arguments of :func:`latentprobe.data.load_benchmark` (default ``{}``).
    take : str
        ``take``: ``"sample"`` (seeded, stratified by ``by``) or ``"first"`` (the first ``n`` in file order;
        default ``"sample"``).
    """

    benchmark: str
    root: str | None = None
    n: int | None = None
    by: str | None = "category"
    seed: int = 0
    split: str = "test"
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    take: str = "sample"


@dataclass(frozen=True)
class SampleConfig:
    """The ``[sample]`` table: a sample of the concatenated examples of all ``[[data]]`` tables.

    Attributes
    ----------
    n : int
        ``n`` (required): how many examples.
    by : str or None
        ``by``: the field the sample is stratified by (default ``"category"``; ``false`` gives ``None``).
    seed : int
        ``seed``: the sample's seed (default: ``[study] seed``).
    """

    n: int
    by: str | None = "category"
    seed: int = 0


@dataclass(frozen=True)
class PromptConfig:
    """The ``[prompt]`` table (real benchmarks only); exactly one of ``template`` and ``messages`` is set.

    Attributes
    ----------
    template : str or None
        ``template``: a format string with the fields ``{question}``, ``{options}`` and ``{letters}``.
    messages : tuple of Mapping[str, Any] or None
        ``messages``: chat messages (tables with ``role`` and ``content``) instead of a template.
    max_pixels : int or None
        ``max_pixels``: a cap on the image size (default ``None``: the processor's).
    """

    template: str | None = None
    messages: tuple[Mapping[str, Any], ...] | None = None
    max_pixels: int | None = None


@dataclass(frozen=True)
class GenerationConfig:
    """The ``[generation]`` table.

    Attributes
    ----------
    max_new_tokens : int
        ``max_new_tokens``: the answer budget, greedy decoding (default 16; with ``published = true``,
        the preset's published value).
    published : bool
        ``published``: decode with the preset's published settings (default ``False``).
    scorer : str
        ``scorer``: ``"choice"``, ``"numeric"``, ``"exact"``, ``"first_word"`` or an import string
        ``"package.module:Name"`` (default ``"exact"``).
    batch_size : int
        ``batch_size``: examples per forward pass (default 8).
    chunk_size : int
        ``chunk_size``: examples per stored unit of a resumable analysis (default 16).
    n_boot : int
        ``n_boot``: bootstrap resamples of every interval (default 1000).
    open : str
        ``open``: ``"auto"`` (the model opens latent mode itself) or ``"force"`` (its open marker is forced
        at the first generated position; default ``"auto"``).
    """

    max_new_tokens: int = 16
    published: bool = False
    scorer: str = "exact"
    batch_size: int = 8
    chunk_size: int = 16
    n_boot: int = 1000
    open: str = "auto"


class Analyses(Mapping[str, Any]):
    """The ``[analyses.*]`` tables of a study: ``{key: options}`` in running order (the registry's order).

    Each value is the analysis's options dataclass (:class:`latentprobe.analyses.AnalysisOptions`), with the
    shared options the table leaves out taken from ``[study]`` and ``[generation]``.

    Parameters
    ----------
    options : Mapping[str, AnalysisOptions]
        ``{key: options}`` of each analysis the study runs, in running order.
    """

    def __init__(self, options: Mapping[str, Any]) -> None:
        self._options = dict(options)

    def __getitem__(self, key: str) -> Any:
        return self._options[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._options)

    def __len__(self) -> int:
        return len(self._options)

    def __repr__(self) -> str:
        return f"Analyses({', '.join(self._options)})"

    def enabled(self) -> list[str]:
        """Keys of the analyses the study runs, in running order.

        Returns
        -------
        list of str
        """
        return list(self._options)

    def to_dict(self) -> dict[str, Any]:
        """``{key: options that change results}`` as plain data (for the fingerprint).

        Returns
        -------
        dict
            ``{key: the options' fingerprint}``.
        """
        return {k: o.fingerprint() for k, o in self._options.items()}


@dataclass(frozen=True)
class Study:
    """A parsed, validated study file (:func:`load_study`).

    Attributes
    ----------
    path : Path
        The study file it was read from (absolute).
    study : StudyInfo
        The ``[study]`` table.
    model : ModelConfig
        The ``[model]`` table.
    data : tuple of DataConfig
        The ``[data]`` table, or the ``[[data]]`` tables in file order.
    analyses : Analyses
        The ``[analyses.*]`` tables: ``{key: options}`` in running order.
    generation : GenerationConfig
        The ``[generation]`` table (default: every key's default).
    prompt : PromptConfig or None
        The ``[prompt]`` table (default ``None``: the benchmark's own prompt).
    sample : SampleConfig or None
        The ``[sample]`` table (default ``None``: no sample across the data tables).
    traces : bool
        ``[output] traces``: save the clean trace in every analysis folder (default ``False``).
    """

    path: Path
    study: StudyInfo
    model: ModelConfig
    data: tuple[DataConfig, ...]
    analyses: Analyses
    generation: GenerationConfig = GenerationConfig()
    prompt: PromptConfig | None = None
    sample: SampleConfig | None = None
    traces: bool = False

    @property
    def is_toy_data(self) -> bool:
        return all(d.benchmark == "toy" for d in self.data)

    def to_dict(self) -> dict[str, Any]:
        """The resolved configuration (defaults filled in, paths resolved) as plain JSON-able data.

        Returns
        -------
        dict
            One key per table (``study``, ``model``, ``data``, ...), each its keys and values.
        """
        d = {f.name: dataclasses.asdict(getattr(self, f.name)) if dataclasses.is_dataclass(getattr(self, f.name))
             else getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("path", "analyses")}
        d["data"] = [dataclasses.asdict(x) for x in self.data]
        d["analyses"] = self.analyses.to_dict()
        return _plain(d)


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def load_study(path: str | Path, *, check_paths: bool = True) -> Study:
    """Read and validate a study file.

    Parameters
    ----------
    path : path
        The TOML file.
    check_paths : bool
        Check that every ``[data] root`` folder exists (turn off only to validate a study file on a
        machine without the data, e.g. in CI).

    Returns
    -------
    Study
        The parsed file, every default filled in.

    Raises
    ------
    StudyError
        The file is missing or not TOML, or a table or key is wrong: the message names the file, table
        and key and says how to fix it.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "s.toml").write_text('[study]\\nname="t"\\n[model]\\nsource="toy:mediated"\\n'
    ...                               '[data]\\nbenchmark="toy"\\nn=8\\n[analyses.collapse]\\n')
    >>> load_study(d / "s.toml").analyses.enabled()
    ['collapse']
    """
    file = Path(path).expanduser()
    try:
        with open(file, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise StudyError(f"{file}: no such study file; give the path of a .toml file (see examples/studies/).") from None
    except tomllib.TOMLDecodeError as err:
        raise StudyError(f"{file}: not valid TOML ({err}); fix the syntax at that line.") from None
    except OSError as err:
        raise StudyError(f"{file}: cannot be read ({err.strerror}); check the path and permissions.") from None
    top = Table(file, "top level", raw)
    for key in ("study", "model", "data", "analyses"):
        if key not in raw:
            raise top.error(None, f"the [{key}] table is missing", f"add a [{key}] table (see examples/studies/)")
    info = _study(Table(file, "study", top.get("study", dict)))
    model = _model(Table(file, "model", top.get("model", dict)), check_paths)
    data = tuple(DataConfig(**d) for d in data_tables(file, top.get("data", (dict, list)), info.seed, check_paths))
    sample = None
    if "sample" in raw:
        t = Table(file, "sample", top.get("sample", dict))
        sample = SampleConfig(n=t.get("n", int, min_value=1), by=t.by(), seed=t.get("seed", int, info.seed))
        t.done()
    toy_data = all(d.benchmark == "toy" for d in data)
    if any(d.benchmark == "toy" for d in data) and not toy_data:
        raise top.error(None, "toy and real benchmarks are mixed in [[data]]", "use one kind per study")
    if toy_data != (model.toy_variant is not None):
        raise StudyError(f"{file}: [model] key 'source' and [data] key 'benchmark': the toy data need a toy model "
                         f"and the reverse; use source = \"toy:<variant>\" with benchmark = \"toy\", or neither.")
    prompt = PromptConfig(**prompt_table(Table(file, "prompt", top.get("prompt", dict)))) if "prompt" in raw else None
    if prompt is not None and toy_data:
        raise top.error("prompt", "the toy models use their own prompt", "remove the [prompt] table")
    gen = GenerationConfig(**generation_table(Table(file, "generation", top.get("generation", dict, {})), model.preset))
    analyses = Analyses(analyses_tables(file, top.get("analyses", dict), toy_data,
                                        {"seed": info.seed, "n_boot": gen.n_boot, "batch_size": gen.batch_size}))
    traces = False
    if "output" in raw:
        t = Table(file, "output", top.get("output", dict))
        traces = t.get("traces", bool, False)
        t.done()
    if traces:  # [output] traces = true: every analysis saves the clean trace
        analyses = Analyses({k: dataclasses.replace(o, save_trace=True) for k, o in analyses.items()})
    top.done(("study", "model", "data", "sample", "prompt", "generation", "analyses", "output"))
    return Study(path=file.resolve(), study=info, model=model, data=data, analyses=analyses, generation=gen,
                 prompt=prompt, sample=sample, traces=traces)


def _study(t: Table) -> StudyInfo:
    info = StudyInfo(name=t.get("name", str), seed=t.get("seed", int, 0, min_value=0),
                     description=t.get("description", str, ""), threads=t.get("threads", int, 1, min_value=1))
    t.done()
    return info


def _model(t: Table, check_paths: bool = True) -> ModelConfig:
    from latentprobe.study.sources import read_model_table

    cfg = ModelConfig(**read_model_table(t, check_paths, DTYPES))
    t.done()
    return cfg


