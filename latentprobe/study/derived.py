"""What the ``behavioural`` analysis needs from a study beyond its own model: derived questions read from a
JSON-lines file, and a second model given by a ``[model]`` table of its own (``[analyses.behavioural.model]``).

The derived-questions file holds one line per example, ``{"example_id": ..., "question": ..., "answer": ...}``,
written by any model or by hand (nothing calls an LLM inside latentprobe). Each derived question is asked about
the same images as its example, with the study's ``[prompt]`` and the family's chat prompt of the model asked.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latentprobe.errors import StudyError

if TYPE_CHECKING:
    from latentprobe.engine import LatentRunner
    from latentprobe.perturbations import InputSet
    from latentprobe.study.config import Study
    from latentprobe.study.datasets import StudyData

__all__ = ["read_derived", "derived_from_file", "load_second_model"]


def read_derived(path: str | Path) -> dict[str, tuple[str, str]]:
    """The derived questions of a JSON-lines file: ``{example_id: (question, answer)}``.

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    dict

    Raises
    ------
    StudyError
        A missing file, a line that is not a JSON object with ``example_id``, ``question`` and ``answer``, or an
        id given twice; the message names the file and the line.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "d.jsonl"
    >>> _ = p.write_text('{"example_id": "a/1", "question": "What colour is the cup?", "answer": "red"}\\n')
    >>> read_derived(p)
    {'a/1': ('What colour is the cup?', 'red')}
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise StudyError(f"{file}: no such derived-questions file; write one JSON object per line with example_id, "
                         "question and answer.")
    out: dict[str, tuple[str, str]] = {}
    for ln, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise StudyError(f"{file}, line {ln}: not valid JSON ({exc.msg}).") from None
        missing = [k for k in ("example_id", "question", "answer") if not isinstance(rec, dict) or rec.get(k) is None]
        if missing:
            raise StudyError(f"{file}, line {ln}: missing {missing}; each line is "
                             "{\"example_id\": ..., \"question\": ..., \"answer\": ...}.")
        eid = str(rec["example_id"])
        if eid in out:
            raise StudyError(f"{file}, line {ln}: example id {eid!r} is given twice; give one derived question each.")
        out[eid] = (str(rec["question"]), str(rec["answer"]))
    return out


def derived_from_file(study: Study, data: StudyData, path: str) -> Callable[[LatentRunner], tuple[InputSet, InputSet]]:
    """``runner -> (original, derived)`` for the study's examples that have a derived question in ``path``.

    Parameters
    ----------
    study : Study
        The study (its ``[prompt]``, and its folder: a relative ``path`` starts there).
    data : StudyData
        The study's examples (a real benchmark's records).
    path : str
        The derived-questions file (see :func:`read_derived`).

    Returns
    -------
    callable
        Builds both input sets with the prompts ``runner``'s family is fed.

    Raises
    ------
    StudyError
        Toy data (they derive their own questions), ids the study does not hold, or no example with a question.
    """
    from latentprobe.study.datasets import _input_set

    if not data.examples:
        raise StudyError(f"{study.path}: [analyses.behavioural] derived = {path!r}: the toy data derive their own "
                         "questions; remove the key.")
    file = Path(path).expanduser()
    table = read_derived(file if file.is_absolute() else study.path.parent / file)
    ids = {e.example_id for e in data.examples}
    unknown = sorted(set(table) - ids)
    if unknown:
        raise StudyError(f"{study.path}: derived questions {path!r} name example ids the study does not hold: "
                         f"{unknown[:5]}; the ids are those of sample.csv.")
    examples = [e for e in data.examples if e.example_id in table]
    if not examples:
        raise StudyError(f"{study.path}: derived questions {path!r} name none of the study's examples.")
    derived = [dataclasses.replace(e, question=table[e.example_id][0], gold=table[e.example_id][1], options=None)
               for e in examples]

    def build(runner: LatentRunner) -> tuple[InputSet, InputSet]:
        return _input_set(study, examples, runner), _input_set(study, derived, runner)

    return build


def load_second_model(study: Study, raw: Mapping[str, Any], table: str) -> LatentRunner:
    """The runner of a second ``[model]`` table (same keys as the study's ``[model]``).

    Parameters
    ----------
    study : Study
        The study (relative folders start at its folder).
    raw : mapping
        The table as TOML read it.
    table : str
        Its name, for messages (e.g. ``"analyses.behavioural.model"``).

    Returns
    -------
    LatentRunner

    Raises
    ------
    StudyError
        A key that is wrong or a checkpoint that cannot be read, naming the table and key.
    """
    from latentprobe.study._toml import Table
    from latentprobe.study.config import DTYPES, ModelConfig
    from latentprobe.study.models import build_model
    from latentprobe.study.sources import read_model_table

    t = Table(study.path, table, dict(raw))
    cfg = ModelConfig(**read_model_table(t, True, DTYPES))
    t.done()
    return build_model(cfg, str(study.path)).runner
