"""Text-only reasoning data as Coconut and CODI use it: GSM8k-Aug and ProsQA.

GSM8k-Aug (the augmented GSM8K of Deng et al., github.com/da03/Internalize_CoT_Step_by_Step at
e06a32e) reaches latent-reasoning code in two shapes, both read here:

- Coconut (github.com/facebookresearch/coconut at 27273cb, README "Data" and
  ``preprocessing/gsm_icot.py``): ``data/gsm_{train,valid,test}.json``, a JSON list of
  ``{"question", "steps": [...], "answer"}`` where ``steps`` are the ``<<...>>`` equations;
- CODI (the ``zen-E/GSM8k-Aug`` dataset on the Hugging Face hub, splits ``train`` / ``test``):
  records ``{"question", "cot", "answer"}`` with ``cot`` the same equations joined by spaces (the
  field names CODI's evaluation scripts read), as parquet files, JSON Lines, or a JSON dict of
  columns (``{"question": [...], "cot": [...], "answer": [...]}``, which CODI's scripts also
  read). Not verified: the hub's parquet file names; ``data/<split>-*.parquet`` (the hub's usual
  layout) and ``<split>-*.parquet`` are looked for, or pass the file itself.

ProsQA (Coconut, ``data/prosqa_{train,valid,test}.json`` at 27273cb): a JSON list of
``{"question", "answer", "steps", "idx_to_symbol", "edges", "root", "target", "neg_target"}``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from latentprobe.data.records import Example, cell, check_unique, read_json, read_jsonl, scalars
from latentprobe.errors import DataError

__all__ = ["load_gsm8k_aug", "load_prosqa"]


def _records(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(where, record)`` pairs of a JSON list, a JSON dict of columns, a JSON Lines or a parquet file."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return [(f"{path}, line {ln}", rec) for ln, rec in read_jsonl(path)]
    if suffix == ".parquet":
        from latentprobe.data.vlmeval import read_table

        _, rows = read_table(path)
        return [(f"{path}, row {i}", r) for i, r in enumerate(rows)]
    data = read_json(path)
    if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        lengths = {k: len(v) for k, v in data.items()}
        if len(set(lengths.values())) != 1:
            raise DataError(f"{path}: a dict of columns needs columns of one length, got {lengths}.")
        n = next(iter(lengths.values()))
        data = [{k: v[i] for k, v in data.items()} for i in range(n)]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of records (or a dict of columns), got {type(data).__name__}.")
    out = []
    for i, rec in enumerate(data):
        if not isinstance(rec, dict):
            raise DataError(f"{path}, row {i}: a record must be a JSON object, got {type(rec).__name__}.")
        out.append((f"{path}, row {i}", rec))
    return out


def _locate(root: Path, split: str, names: tuple[str, ...], what: str) -> Path:
    if root.is_file():
        return root
    if not root.is_dir():
        raise DataError(f"{root} does not exist; pass the {what} file or its folder.")
    for name in names:
        found = sorted(root.glob(name.format(split=split)))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise DataError(f"{root}: several {what} files match {name.format(split=split)!r}; pass the file itself.")
    raise DataError(f"{root}: no {what} file for split {split!r} (looked for "
                    f"{[n.format(split=split) for n in names]}); pass the file itself.")


def _need(rec: dict[str, Any], key: str, where: str) -> str:
    text = cell(rec.get(key))
    if text is None:
        raise DataError(f"{where}, field {key!r}: missing or empty (fields: {sorted(rec)}).")
    return text


def load_gsm8k_aug(root: str | Path, *, split: str = "test") -> list[Example]:
    """Read GSM8k-Aug in Coconut's or CODI's format (see the module docstring for both).

    Parameters
    ----------
    root : path
        A data file (``.json``, ``.jsonl``, ``.parquet``), or a folder holding the split as
        ``gsm_<split>.json`` (Coconut), ``<split>.json`` / ``<split>.jsonl``, or
        ``data/<split>-*.parquet`` / ``<split>-*.parquet`` (the hub's layout).
    split : str
        The split to look for in a folder (default ``"test"``).

    Returns
    -------
    list of Example
        Text-only; gold is ``answer`` (the number as text), ``attributes["steps"]`` the equation
        list (``cot.split()`` in CODI's format) and ``attributes["cot"]`` the steps joined by
        spaces; ids ``gsm8k-aug/<row>``; no category.

    Raises
    ------
    DataError
        A missing file, bad JSON, a record without question, answer or steps/cot; the message names
        file, row and field.
    """
    path = _locate(Path(root).expanduser(), split,
                   ("gsm_{split}.json", "{split}.json", "{split}.jsonl", "data/{split}-*.parquet", "{split}-*.parquet"),
                   "GSM8k-Aug")
    out = []
    for i, (where, rec) in enumerate(_records(path)):
        question, answer = _need(rec, "question", where), _need(rec, "answer", where)
        steps = rec.get("steps")
        if hasattr(steps, "tolist"):
            steps = steps.tolist()
        if steps is None:
            cot = rec.get("cot")
            if not isinstance(cot, str):
                raise DataError(f"{where}, field 'steps': missing (and no 'cot' text either); Coconut's format has "
                                "'steps', CODI's 'cot'.")
            steps = cot.split()
        if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
            raise DataError(f"{where}, field 'steps': expected a list of step strings, got {type(steps).__name__}.")
        attrs = scalars(rec, skip=("question", "answer", "steps", "cot"))
        attrs.update(steps=list(steps), cot=" ".join(steps), native_id=str(i))
        out.append(Example(example_id=f"gsm8k-aug/{i}", question=question, gold=answer.strip(), source="gsm8k-aug",
                           attributes=attrs))
    check_unique(out, str(path))
    return out


def load_prosqa(root: str | Path, *, split: str = "test") -> list[Example]:
    """Read ProsQA as Coconut ships it (``data/prosqa_<split>.json``).

    ``root`` is the file or its folder (``prosqa_<split>.json`` is looked for there and under
    ``data/``). Gold is ``answer`` (a sentence such as ``"Tom is a wumpus."``); ``attributes``
    keep ``steps``, ``idx_to_symbol``, ``edges`` (parsed when stored as JSON text), ``root``,
    ``target``, ``neg_target`` and ``n_steps`` (sample with ``by="n_steps"`` to stratify by
    depth). No options, no category. Ids ``prosqa/<row>``.

    Parameters
    ----------
    root : str | Path
        The ``prosqa_<split>.json`` file or its folder.
    split : str
        The ``<split>`` of ``prosqa_<split>.json``.

    Returns
    -------
    list[Example]

    Raises
    ------
    DataError
        A missing file, bad JSON, a record without question, answer or steps, an ``edges`` text
        that is not JSON; the message names file, row and field.
    """
    path = _locate(Path(root).expanduser(), split, ("prosqa_{split}.json", "data/prosqa_{split}.json"), "ProsQA")
    out = []
    for i, (where, rec) in enumerate(_records(path)):
        question, answer = _need(rec, "question", where), _need(rec, "answer", where)
        steps = rec.get("steps")
        if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
            raise DataError(f"{where}, field 'steps': expected a list of step strings, got {steps!r}.")
        attrs = scalars(rec, skip=("question", "answer", "steps", "edges"))
        edges = rec.get("edges")
        if isinstance(edges, str):
            try:
                edges = json.loads(edges)
            except json.JSONDecodeError as err:
                raise DataError(f"{where}, field 'edges': not valid JSON ({err.msg}).") from None
        attrs.update(steps=list(steps), edges=edges, n_steps=len(steps), native_id=str(i))
        out.append(Example(example_id=f"prosqa/{i}", question=question, gold=answer.strip(), source="prosqa",
                           attributes=attrs))
    check_unique(out, str(path))
    return out
