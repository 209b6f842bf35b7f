"""The "Provenance" section: settings, model, spec, data sample and software versions.

Examples
--------
>>> from latentprobe.report import Report, software_versions
>>> sorted(software_versions())[:3]
['latentprobe', 'nnsight', 'numpy']
>>> rep = Report("r").add_provenance(settings={"seed": 0}, sample=["a", "b"], sample_seed=0)
>>> "Provenance" in rep.to_html()
True
"""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Any, Protocol

from latentprobe.errors import ReportError

if TYPE_CHECKING:  # pragma: no cover
    from latentprobe.data.sampling import Sample
    from latentprobe.engine.runner import LatentRunner
    from latentprobe.spec import LatentSpec
    from latentprobe.trace import LatentTrace

__all__ = ["SOFTWARE", "software_versions", "add_provenance"]

#: Distributions whose versions the section records (import name -> distribution name).
SOFTWARE: dict[str, str] = {
    "torch": "torch", "transformers": "transformers", "nnsight": "nnsight", "latentprobe": "latentprobe",
    "sklearn": "scikit-learn", "plotly": "plotly", "numpy": "numpy", "pandas": "pandas",
}
_MAX_IDS = 200


def software_versions() -> dict[str, str]:
    """``{name: version}`` of python and :data:`SOFTWARE` (``"not installed"`` when missing).

    Returns
    -------
    dict[str, str]
    """
    out = {"python": platform.python_version()}
    for name, dist in SOFTWARE.items():
        try:
            out[name] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    if out.get("latentprobe") == "not installed":
        from latentprobe import __version__

        out["latentprobe"] = str(__version__)
    return dict(sorted(out.items()))


def _rows_of(obj: Any, what: str) -> list[tuple[str, str]]:
    """Rows describing ``obj``: a mapping, an object with a display summary, or its text."""
    if isinstance(obj, Mapping):
        return [(str(k), str(v)) for k, v in obj.items()]
    summary = getattr(obj, "_summary", None)
    if callable(summary):
        name, rows = summary()
        return [("class", str(name))] + [(str(k), str(v)) for k, v in rows]
    if isinstance(obj, str):
        return [(what, obj)]
    raise ReportError(f"add_provenance: {what} must be a mapping, a string or a latentprobe object with a "
                      f"summary (e.g. a LatentRunner), got {type(obj).__name__}.")


def _sample_rows(sample: Any, seed: Any) -> list[tuple[str, str]]:
    if isinstance(sample, Mapping):
        return [(str(k), str(v)) for k, v in sample.items()]
    ids = getattr(sample, "ids", None)
    rows: list[tuple[str, str]] = []
    if ids is not None:  # a latentprobe.data Sample
        for attr in ("n", "by", "seed"):
            if getattr(sample, attr, None) is not None:
                rows.append((f"sampling {attr}" if attr != "n" else "n", str(getattr(sample, attr))))
    elif isinstance(sample, Sequence) and not isinstance(sample, str):
        ids = sample
    elif isinstance(sample, int) and not isinstance(sample, bool):
        return [("n", str(sample))] + ([("sampling seed", str(seed))] if seed is not None else [])
    else:
        raise ReportError(f"add_provenance: sample must be a Sample (latentprobe.data.sample), a list of example "
                          f"ids, a count or a mapping, got {type(sample).__name__}.")
    ids = [str(i) for i in ids]
    if not any(k == "n" for k, _ in rows):
        rows.insert(0, ("n", str(len(ids))))
    if seed is not None and not any(k == "sampling seed" for k, _ in rows):
        rows.append(("sampling seed", str(seed)))
    shown = ", ".join(ids[:_MAX_IDS])
    if len(ids) > _MAX_IDS:
        shown += f", … ({len(ids) - _MAX_IDS} more)"
    rows.append(("example ids", shown))
    return rows


def _generation_rows(generation: Any) -> dict[str, str]:
    """The effective decoding settings: a trace (its ``config["generation"]``) or that record itself."""
    rec = getattr(generation, "config", generation)
    rec = rec.get("generation", rec) if isinstance(rec, Mapping) else rec
    if not isinstance(rec, Mapping):
        raise ReportError(f"add_provenance: generation must be a LatentTrace or its config['generation'] record, "
                          f"got {type(generation).__name__}.")
    sources = rec.get("sources") or {}
    rows = {}
    for k, v in rec.items():
        if k in ("sources",):
            continue
        rows[str(k)] = str(v) + (f" ({sources[k]})" if k in sources else "")
    return rows


class ProvenanceSink(Protocol):
    """What the provenance section writes to (:class:`latentprobe.report.Report` is one)."""

    def add_heading(self, text: str, level: int = 2) -> Any:
        """Add a heading."""

    def add_key_values(self, items: Mapping[Any, Any], caption: str | None = None) -> Any:
        """Add a two-column table of names and values."""

    def add_note(self, text: str, kind: str = "info", *, title: str | None = None) -> Any:
        """Add a note."""


def add_provenance(report: ProvenanceSink, *, settings: Mapping[str, Any] | None = None,
                   runner: LatentRunner | Mapping[str, Any] | str | None = None, spec: LatentSpec | str | None = None,
                   sample: Sample | Sequence[str] | int | Mapping[str, Any] | None = None, sample_seed: int | None = None,
                   versions: Mapping[str, str] | None = None, title: str = "Provenance",
                   generation: LatentTrace | Mapping[str, Any] | None = None) -> None:
    """Add a section recording how the report was made.

    Parameters
    ----------
    report : Report
        The report to add to.
    settings : mapping, optional
        Settings of the run (seeds, n, n_boot, ...).
    runner : LatentRunner, mapping or str, optional
        The model: a runner's summary (model class, size, device, spec, markers).
    spec : LatentSpec or str, optional
        The preset: its name and its ``notes`` (where each value was read).
    sample : Sample, list of ids, int or mapping, optional
        The data sample: ids (or a count) and the sampling seed.
    sample_seed : int, optional
        Sampling seed when ``sample`` does not carry one.
    versions : mapping, optional
        Software versions; default :func:`software_versions`.
    title : str
        The section's heading.
    generation : LatentTrace or mapping, optional
        The effective decoding settings (a trace's ``config["generation"]``: each setting with where it
        came from, the eos ids, the checkpoint's ``generation_config.json``).

    Raises
    ------
    ReportError
        An argument of a type this section cannot describe.
    """
    report.add_heading(title)
    if settings is not None:
        report.add_key_values(dict(_rows_of(settings, "settings")), caption="Settings")
    if generation is not None:
        report.add_key_values(_generation_rows(generation), caption="Decoding (effective settings and their sources)")
    if runner is not None:
        report.add_key_values(dict(_rows_of(runner, "model")), caption="Model")
    if spec is not None:
        if isinstance(spec, str):
            report.add_key_values({"preset": spec}, caption="Spec")
        else:
            name = getattr(spec, "name", None)
            if name is None:
                raise ReportError(f"add_provenance: spec must be a LatentSpec or a preset name, got "
                                  f"{type(spec).__name__}.")
            fields = {"preset": name}
            for attr in ("open_mode", "num_latents", "stop", "first_offset", "slot_policy"):
                if hasattr(spec, attr):
                    fields[attr] = getattr(spec, attr)
            report.add_key_values(fields, caption="Spec")
            notes = str(getattr(spec, "notes", "") or "").strip()
            if notes:
                report.add_note(notes, title=f"Notes of the {name} preset")
    if sample is not None:
        report.add_key_values(dict(_sample_rows(sample, sample_seed)), caption="Data sample")
    report.add_key_values(dict(versions) if versions is not None else software_versions(),
                          caption="Software versions")
