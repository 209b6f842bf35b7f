"""Parsing the ``[data]``, ``[prompt]``, ``[generation]`` and ``[analyses.*]`` tables of a study file.

Each parser checks its table (:class:`~latentprobe.study._toml.Table`) and returns the keyword arguments of
its :mod:`latentprobe.study.config` dataclass; :func:`latentprobe.study.config.load_study` builds them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from collections.abc import Mapping
from typing import Any

from latentprobe.data import list_benchmarks
from latentprobe.errors import LatentProbeError, StudyError
from latentprobe.scoring import SCORER_NAMES
from latentprobe.study._toml import Table

__all__ = ["data_tables", "prompt_table", "generation_table", "analyses_tables"]

def data_tables(file: Path, raw: Any, seed: int, check_paths: bool) -> list[dict[str, Any]]:
    """Each ``[data]`` / ``[[data]]`` table into the keyword arguments of a ``DataConfig``."""
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
        out.append(dict(benchmark=bench, root=root, n=n, by=t.by(), seed=t.get("seed", int, seed), split=split,
                        options=dict(options), take=take))
        t.done()
    return out


def prompt_table(t: Table) -> dict[str, Any]:
    """``[prompt]`` into the keyword arguments of a ``PromptConfig``."""
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
    cfg = dict(template=template, messages=None if messages is None else tuple(messages),
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
    if value not in SCORER_NAMES:
        raise t.error("scorer", f"unknown name {value!r}",
                      f"choose one of {', '.join(SCORER_NAMES)} or give an import string 'package.module:Name'")
    return value


def generation_table(t: Table, preset: str | None) -> dict[str, Any]:
    """``[generation]`` into the keyword arguments of a ``GenerationConfig`` (``preset``: ``[model] preset``)."""
    published = t.get("published", bool, False)
    mnt = t.get("max_new_tokens", int, None, min_value=1)
    if published and mnt is not None:
        raise t.error("max_new_tokens", "conflicts with published = true", "remove one of the two")
    if published:
        from latentprobe.presets import get_preset

        if preset is None or get_preset(preset).published_generation is None:
            raise t.error("published", f"preset {preset!r} has no published settings",
                          "set max_new_tokens instead")
        mnt = get_preset(preset).published_generation.max_new_tokens
    cfg = dict(max_new_tokens=mnt or 16, published=published,
               scorer=_scorer(t),
               batch_size=t.get("batch_size", int, 8, min_value=1),
               chunk_size=t.get("chunk_size", int, 16, min_value=1),
               n_boot=t.get("n_boot", int, 1000, min_value=0),
               open=t.get("open", str, "auto", choices=("auto", "force")))
    if cfg["open"] == "force" and preset is not None:
        from latentprobe.presets import get_preset

        mode = get_preset(preset).open_mode
        if mode != "emitted":
            raise t.error("open", f"preset {preset!r} opens latent mode itself (open_mode = {mode!r}); "
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


def analyses_tables(file: Path, raw: dict, toy: bool, defaults: Mapping[str, Any]) -> dict[str, Any]:
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
    return found
