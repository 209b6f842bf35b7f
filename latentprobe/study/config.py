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

Examples
--------
>>> import pathlib, tempfile
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "s.toml").write_text('[study]\\nname="t"\\n[model]\\nsource="toy:mediated"\\n'
...                               '[data]\\nbenchmark="toy"\\nn=8\\n[analyses.collapse]\\n')
>>> load_study(d / "s.toml").analyses.enabled()
['collapse']
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator, Mapping
from typing import Any

from latentprobe.data import BENCHMARKS, list_benchmarks
from latentprobe.errors import LatentProbeError, StudyError
from latentprobe.scoring import SCORER_NAMES
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
    name: str
    seed: int = 0
    description: str = ""


@dataclass(frozen=True)
class ModelConfig:
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
    n: int
    by: str | None = "category"
    seed: int = 0


@dataclass(frozen=True)
class PromptConfig:
    template: str | None = None
    messages: tuple[Mapping[str, Any], ...] | None = None
    max_pixels: int | None = None


@dataclass(frozen=True)
class GenerationConfig:
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
        """Keys of the analyses the study runs, in running order."""
        return list(self._options)

    def to_dict(self) -> dict[str, Any]:
        """``{key: options that change results}`` as plain data (for the fingerprint)."""
        return {k: o.fingerprint() for k, o in self._options.items()}


@dataclass(frozen=True)
class Study:
    """A parsed, validated study file. ``path`` is the file it was read from."""

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
        """The resolved configuration (defaults filled in, paths resolved) as plain JSON-able data."""
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

    Raises
    ------
    StudyError
        The file is missing or not TOML, or a table or key is wrong: the message names the file, table
        and key and says how to fix it.
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
    data = _data(file, top.get("data", (dict, list)), info.seed, check_paths)
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
    prompt = _prompt(Table(file, "prompt", top.get("prompt", dict))) if "prompt" in raw else None
    if prompt is not None and toy_data:
        raise top.error("prompt", "the toy models use their own prompt", "remove the [prompt] table")
    gen = _generation(Table(file, "generation", top.get("generation", dict, {})), model)
    analyses = _analyses(file, top.get("analyses", dict), toy_data,
                         {"seed": info.seed, "n_boot": gen.n_boot, "batch_size": gen.batch_size})
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
                     description=t.get("description", str, ""))
    t.done()
    return info


def _model(t: Table, check_paths: bool = True) -> ModelConfig:
    from latentprobe.study.sources import read_model_table

    cfg = ModelConfig(**read_model_table(t, check_paths, DTYPES))
    t.done()
    return cfg


def _data(file: Path, raw: Any, seed: int, check_paths: bool) -> tuple[DataConfig, ...]:
    tables = [raw] if isinstance(raw, dict) else list(raw)
    if not tables:
        raise StudyError(f"{file}: [[data]]: no data table; add a [data] table with benchmark = ...")
    out = []
    for i, r in enumerate(tables):
        t = Table(file, "data" if isinstance(raw, dict) else f"data #{i + 1}", r)
        bench = t.get("benchmark", str, choices=("toy", *list_benchmarks()))
        root = t.get("root", str, None)
        if bench != "toy":
            if root is None:
                raise t.error("root", "is missing", "give the folder holding the benchmark's files")
            rp = Path(root).expanduser()
            rp = rp if rp.is_absolute() else (file.parent / rp)
            root = str(rp.resolve())
            if check_paths and not rp.exists():
                raise t.error("root", f"folder {rp} does not exist",
                              "download the benchmark there (see examples/studies/README.md) or fix the path")
        elif root is not None:
            raise t.error("root", "the toy data are generated, not read", "remove root")
        split = t.get("split", str, "test", choices=("train", "test"))
        if bench != "toy" and "split" in t.raw:
            raise t.error("split", "applies to the toy data only", "pass loader options in options = {...}")
        options = t.get("options", dict, {})
        take = t.get("take", str, "sample", choices=("sample", "first"))
        n = t.get("n", int, None, min_value=1)
        if take == "first" and n is None:
            raise t.error("take", '"first" needs n', "add n = <how many examples> or remove take")
        out.append(DataConfig(benchmark=bench, root=root, n=n, by=t.by(), seed=t.get("seed", int, seed), split=split,
                              options=dict(options), take=take))
        t.done()
    return tuple(out)


def _prompt(t: Table) -> PromptConfig:
    template = t.get("template", str, None)
    messages = t.get("messages", list, None)
    if (template is None) == (messages is None):
        raise t.error("template", "give exactly one of template and messages", "keep one of the two keys")
    if template is not None:
        for field in _format_fields(t, template):
            if field not in ("question", "options", "letters"):
                raise t.error("template", f"unknown field {{{field}}}", "use {question}, {options} and {letters}")
    if messages is not None and not all(isinstance(m, dict) and "role" in m and "content" in m for m in messages):
        raise t.error("messages", "every message needs role and content", 'write {role = "user", content = "..."}')
    cfg = PromptConfig(template=template, messages=None if messages is None else tuple(messages),
                       max_pixels=t.get("max_pixels", int, None, min_value=1))
    t.done()
    return cfg


def _format_fields(t: Table, template: str) -> list[str]:
    import string

    try:
        return [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as err:
        raise t.error("template", f"is not a format string ({err})", "write braces as {{ and }}") from None


def _scorer(t: Table) -> str:
    """``[generation] scorer``: a scorer name, or an import string imported now (a typo fails before any work)."""
    from latentprobe.analyses.names import import_object, is_import_string

    value = t.get("scorer", str, "exact")
    if is_import_string(value):
        try:
            import_object(value, what="scorer")
        except LatentProbeError as err:
            raise t.error("scorer", str(err).rstrip("."), "fix the import string") from None
        return value
    if value not in SCORERS:
        raise t.error("scorer", f"unknown name {value!r}",
                      f"choose one of {', '.join(SCORERS)} or give an import string 'package.module:Name'")
    return value


def _generation(t: Table, model: ModelConfig) -> GenerationConfig:
    published = t.get("published", bool, False)
    mnt = t.get("max_new_tokens", int, None, min_value=1)
    if published and mnt is not None:
        raise t.error("max_new_tokens", "conflicts with published = true", "remove one of the two")
    if published:
        from latentprobe.presets import get_preset

        if model.preset is None or get_preset(model.preset).published_generation is None:
            raise t.error("published", f"preset {model.preset!r} has no published settings",
                          "set max_new_tokens instead")
        mnt = get_preset(model.preset).published_generation.max_new_tokens
    cfg = GenerationConfig(max_new_tokens=mnt or 16, published=published,
                           scorer=_scorer(t),
                           batch_size=t.get("batch_size", int, 8, min_value=1),
                           chunk_size=t.get("chunk_size", int, 16, min_value=1),
                           n_boot=t.get("n_boot", int, 1000, min_value=0),
                           open=t.get("open", str, "auto", choices=("auto", "force")))
    if cfg.open == "force" and model.preset is not None:
        from latentprobe.presets import get_preset

        mode = get_preset(model.preset).open_mode
        if mode != "emitted":
            raise t.error("open", f"preset {model.preset!r} opens latent mode itself (open_mode = {mode!r}); "
                          "forcing applies to presets whose model emits an open marker", "remove it")
    t.done()
    return cfg


def _refuse_toy_perturbations(t: Table, options: Any) -> None:
    """Perturbations that need the toy data's ground truth are unknown names on real data."""
    from latentprobe.analyses.names import perturbation_classes

    toy_only = {n for n, cls in perturbation_classes().items() if cls.__module__.startswith("latentprobe.toy")}
    real = sorted(set(perturbation_classes()) - toy_only)
    for f in dataclasses.fields(options):
        if f.metadata.get("choices") != "perturbations":
            continue
        value = getattr(options, f.name)
        bad = [v for v in (value if isinstance(value, tuple) else (value,)) if v in toy_only]
        if bad:
            raise t.error(f.name, f"unknown name{'(s)' if isinstance(value, tuple) else ''} "
                          f"{bad if isinstance(value, tuple) else repr(bad[0])} (it needs the toy data's ground truth)",
                          f"choose from {', '.join(real)}")


def _analyses(file: Path, raw: dict, toy: bool, defaults: Mapping[str, Any]) -> Analyses:
    """Each ``[analyses.<key>]`` table into its registered analysis's options (:mod:`latentprobe.analyses`)."""
    from latentprobe.analyses import OptionError, options_from_mapping, registered_analyses

    if toy:
        from latentprobe.study.toys import register_toy_names

        register_toy_names()
    top = Table(file, "analyses", raw)
    records = registered_analyses()
    found: dict[str, Any] = {}
    for key, record in records.items():
        if key not in raw:
            continue
        t = Table(file, f"analyses.{key}", top.get(key, dict))
        try:
            found[key] = options_from_mapping(record.Options, t.raw, analysis=key).resolved(defaults)
        except OptionError as err:
            raise t.error(err.key, err.problem, err.fix) from None
        if not toy:
            _refuse_toy_perturbations(t, found[key])
    top.done(tuple(records))
    if not found:
        raise top.error(None, "no analysis", f"add at least one [analyses.<name>] table ({', '.join(records)})")
    return Analyses(found)
