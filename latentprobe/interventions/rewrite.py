"""The text-span rewrite: replace the tokens of a text-imagination span with given text, then decode the answer.

A rewrite is read from a JSONL file, one object per line keyed by example id::

    {"example_id": "vstar-17", "rewrite": "the bag on the left is red", "placebo": "the left bag is of blue colour"}

The texts come from anywhere (a rewriter model run beforehand, or by hand): nothing here calls a model to
write them. ``field`` names the entry used, so one file holds the directed rewrite and its placebo (a
paraphrase of the original span that keeps its meaning and, with ``same_length=True``, its token count).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from torch import Tensor

from latentprobe.errors import InterventionError
from latentprobe.interventions.base import Intervention, register_intervention

if TYPE_CHECKING:  # pragma: no cover
    from latentprobe.trace import ExampleTrace

__all__ = ["RewriteSpan", "read_rewrites"]

ID_KEY = "example_id"


def read_rewrites(path: str | Path, field: str = "rewrite") -> dict[str, str]:
    r"""``{example id: text}`` of the ``field`` entries of a JSONL rewrite file.

    Parameters
    ----------
    path : str or Path
        One JSON object per line with ``"example_id"`` and ``field`` (blank lines are skipped).
    field : str
        The entry to read (``"rewrite"``, ``"placebo"``, or any name the file uses).

    Returns
    -------
    dict[str, str]

    Raises
    ------
    InterventionError
        The file is missing, a line is not a JSON object, lacks ``example_id`` or ``field``, holds a
        non-string text, or repeats an example id.

    Examples
    --------
    >>> import json, tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> path = os.path.join(folder, "rewrites.jsonl")
    >>> with open(path, "w") as f:
    ...     _ = f.write(json.dumps({"example_id": "a", "rewrite": "blue", "placebo": "red"}) + "\n")
    >>> read_rewrites(path), read_rewrites(path, "placebo")
    ({'a': 'blue'}, {'a': 'red'})
    """
    p = Path(path)
    if not p.is_file():
        raise InterventionError(f"RewriteSpan: no rewrite file at {str(p)!r}; write one JSON object per line "
                                f'with "{ID_KEY}" and "{field}".')
    out: dict[str, str] = {}
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{p}:{n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise InterventionError(f"RewriteSpan: {where} is not JSON ({err.msg}); write one object per line.") from None
        if not isinstance(row, dict) or ID_KEY not in row or field not in row:
            raise InterventionError(f"RewriteSpan: {where} needs the keys {ID_KEY!r} and {field!r}; it has "
                                    f"{sorted(row) if isinstance(row, dict) else type(row).__name__}.")
        key, text = str(row[ID_KEY]), row[field]
        if not isinstance(text, str):
            raise InterventionError(f"RewriteSpan: {where} field {field!r} is {type(text).__name__}; give a string.")
        if key in out:
            raise InterventionError(f"RewriteSpan: {where} repeats example id {key!r}; give one line per example.")
        out[key] = text
    return out


@register_intervention
@dataclass(frozen=True)
class RewriteSpan(Intervention):
    r"""Replace the tokens of a text-imagination span (``mediator="text"``) with given text, then decode
    the answer after the span's close marker.

    Only the span's tokens change: everything before the span is the recorded sequence, the close marker
    follows the new text, and the answer is decoded afresh (it may open further spans). Run it with
    :func:`latentprobe.engine.rewrite.rewrite_spans` or through :func:`latentprobe.causal.z_to_y`
    (propagate and redecode modes; both decode from the end of the span). It is not applied vector by
    vector: :meth:`apply` refuses.

    Parameters
    ----------
    path : str
        JSONL file of rewrites (:func:`read_rewrites`), keyed by example id.
    field : str
        The entry of each line to use: ``"rewrite"`` (the directed rewrite) or ``"placebo"`` (a paraphrase
        of the original span), or any name the file uses.
    span : int
        Which text span of each example to rewrite (0: the first; negative counts from the last).
    same_length : bool
        Refuse a text whose token count differs from the span's (a same-length placebo).
    missing : str
        An example without a line in the file: ``"error"`` (default) or ``"keep"`` (its span is kept).

    Notes
    -----
    A flipped answer after a rewrite shows that the answer reads the span; an answer that survives a
    same-length paraphrase shows the flip is not due to any change of the span's tokens. Neither shows
    that the model used the span the same way when it wrote it.

    Examples
    --------
    On the shipped ``text`` toy (a caption span between markers): rewriting each span with its own text
    reproduces the run.

    >>> import json, os, tempfile
    >>> from latentprobe import RewriteSpan, toy
    >>> from latentprobe.engine.rewrite import rewrite_spans, text_spans
    >>> tm = toy.load("text")
    >>> ex = tm.examples("test", 2)
    >>> runner = tm.runner()
    >>> trace = runner.run(tm.prompts(ex), tm.images(ex), max_new_tokens=16, progress=False)
    >>> path = os.path.join(tempfile.mkdtemp(), "rewrites.jsonl")
    >>> with open(path, "w") as f:
    ...     for e in trace:
    ...         o, end = text_spans(e)[0]
    ...         text = tm.tokenizer.decode(e.input_ids[o + 1:end].tolist())
    ...         _ = f.write(json.dumps({"example_id": e.example_id, "rewrite": text}) + "\n")
    >>> out = rewrite_spans(runner, trace, RewriteSpan(path, same_length=True), progress=False)
    >>> out.answers == trace.answers
    True
    """

    path: str
    field: str = "rewrite"
    span: int = 0
    same_length: bool = False
    missing: str = "error"

    name: ClassVar[str] = "rewrite_span"

    def __post_init__(self) -> None:
        if not isinstance(self.path, (str, Path)):
            raise InterventionError(f"RewriteSpan.path={self.path!r}: give the JSONL file's path.")
        object.__setattr__(self, "path", str(self.path))
        if not isinstance(self.field, str) or not self.field:
            raise InterventionError(f"RewriteSpan.field={self.field!r}: give the name of a JSONL entry.")
        if isinstance(self.span, bool) or not isinstance(self.span, int):
            raise InterventionError(f"RewriteSpan.span={self.span!r}: give a span index (int).")
        if self.missing not in ("error", "keep"):
            raise InterventionError(f"RewriteSpan.missing={self.missing!r}: use 'error' or 'keep'.")

    def texts(self) -> dict[str, str]:
        """``{example id: text}`` read from :attr:`path` (:func:`read_rewrites`)."""
        return read_rewrites(self.path, self.field)

    def apply(self, z: Tensor, step: int, example: ExampleTrace, layer: int = 0) -> Tensor:
        raise InterventionError(
            f"RewriteSpan replaces the tokens of a text span instead of rewriting vectors (example "
            f"{example.example_id!r}, step {step}); run it with latentprobe.engine.rewrite.rewrite_spans(runner, "
            "trace, RewriteSpan(...)) or through latentprobe.causal.z_to_y.")

    def to_config(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "path": self.path, "field": self.field, "span": self.span,
                "same_length": self.same_length, "missing": self.missing}
