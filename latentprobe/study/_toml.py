"""Reading one TOML table of a study file: typed key access, then unknown keys refused (:class:`Table`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from latentprobe.errors import StudyError

__all__ = ["Table"]

_KIND_NAMES = {int: "an integer", str: "a string", bool: "true or false", list: "a list", dict: "a table",
               float: "a number"}


class Table:
    """Reads one TOML table: typed key access, then :meth:`done` refuses the keys nobody read."""

    def __init__(self, file: Path, name: str, raw: Any) -> None:
        self.file, self.name = file, name
        if not isinstance(raw, dict):
            raise self.error(None, f"must be a table ([{name}]), got {type(raw).__name__}",
                             f"write it as a [{name}] table of keys")
        self.raw, self.seen = raw, set()

    def error(self, key: str | None, problem: str, fix: str) -> StudyError:
        where = f"[{self.name}]" + (f" key '{key}'" if key else "")
        return StudyError(f"{self.file}: {where}: {problem}; {fix}.")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = dataclasses.MISSING, *,
            choices: tuple[str, ...] | None = None, min_value: int | None = None, hint: str = "") -> Any:
        self.seen.add(key)
        if key not in self.raw:
            if default is dataclasses.MISSING:
                raise self.error(key, "is missing", f"add {key} = ...{' (' + hint + ')' if hint else ''}")
            return default
        value = self.raw[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)
            raise self.error(key, f"must be {names}, got {_KIND_NAMES.get(type(value), type(value).__name__)} "
                             f"{value!r}", f"give {names}{' (' + hint + ')' if hint else ''}")
        if choices is not None and value not in choices:
            raise self.error(key, f"unknown name {value!r}", f"choose one of {', '.join(choices)}")
        if min_value is not None and isinstance(value, int) and value < min_value:
            raise self.error(key, f"must be >= {min_value}, got {value}", f"give an integer >= {min_value}")
        return value

    def names(self, key: str, choices: tuple[str, ...], default: Any = dataclasses.MISSING) -> tuple[str, ...]:
        value = self.get(key, list, default)
        if value is default and default is not dataclasses.MISSING:
            return tuple(value)
        if not value:
            raise self.error(key, "is empty", f"list at least one of {', '.join(choices)}")
        bad = [v for v in value if not isinstance(v, str) or v not in choices]
        if bad:
            raise self.error(key, f"unknown name(s) {bad}", f"choose from {', '.join(choices)}")
        if len(set(value)) != len(value):
            raise self.error(key, "lists a name twice", "list each name once")
        return tuple(value)

    def ints_or_all(self, key: str, default: Any = None) -> tuple[int, ...] | None:
        value = self.get(key, (str, list), "all" if default is None else list(default))
        if value == "all":
            return None
        if isinstance(value, str) or not value or not all(isinstance(v, int) and not isinstance(v, bool)
                                                           and v >= 0 for v in value):
            raise self.error(key, f"must be \"all\" or a non-empty list of integers >= 0, got {value!r}",
                             'write e.g. layers = [0, 2] or layers = "all"')
        return tuple(sorted(set(value)))

    def by(self, key: str = "by") -> str | None:
        value = self.get(key, (str, bool), "category")
        if value is True:
            raise self.error(key, "true is not a field name", 'give a field name (e.g. "category") or false')
        return value or None

    def done(self, known: tuple[str, ...] | None = None) -> None:
        """Refuse the keys nobody read (``known``: the keys to suggest, default those read)."""
        extra = sorted(set(self.raw) - self.seen)
        if extra:
            known = ", ".join(sorted(self.seen if known is None else known))
            raise self.error(extra[0], f"unknown key{'s' if len(extra) > 1 else ''} {extra}",
                             f"remove it or use one of: {known}")
