"""The study's data: ``[data]`` / ``[[data]]`` and ``[sample]`` -> one :class:`~latentprobe.perturbations.InputSet`.

``benchmark = "toy"`` takes the shipped toy model's own examples (``ToyModel.examples(split)``) and
inputs (:func:`latentprobe.toy.toy_inputs`), as ``latentprobe demo`` does; their ``category`` is the
question template. Real benchmarks go through :func:`latentprobe.data.load_benchmark`,
:func:`latentprobe.data.sample` and :func:`latentprobe.data.to_input_set`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import pandas as pd

from latentprobe.errors import StudyError
from latentprobe.study.config import Study

if TYPE_CHECKING:
    from latentprobe.data import Example
    from latentprobe.perturbations import InputSet
    from latentprobe.study.models import StudyModel

__all__ = ["StudyData", "load_data", "with_prompts", "stratified_ids"]


@dataclass(frozen=True, eq=False)
class StudyData:
    """The study's sampled examples: their inputs, the ``sample.csv`` table and a real benchmark's records.

    Attributes
    ----------
    inputs : InputSet
        The prompts, images, gold answers and meta of the sampled examples, in order.
    sample : pandas.DataFrame
        ``sample.csv``: ``example_id, benchmark, source, category, gold``, one row per example.
    examples : tuple of Example
        A real benchmark's drawn :class:`~latentprobe.data.Example` records (for :func:`with_prompts`);
        empty for the toy data.
    """

    inputs: InputSet
    sample: pd.DataFrame
    examples: tuple[Example, ...] = ()


def stratified_ids(ids: Sequence[str], strata: Sequence[Any] | None, n: int, seed: int) -> list[str]:
    """``n`` of ``ids`` drawn without replacement, proportionally per stratum (largest remainders), in input order.

    The toy data's sampler: the draw of :func:`latentprobe.data.sample` over plain ids.

    Parameters
    ----------
    ids : sequence of str
        The example ids.
    strata : sequence or None
        Each id's stratum (compared as text), or ``None`` for no stratification.
    n : int
        How many ids to draw; all of them when ``n >= len(ids)``.
    seed : int
        The draw's seed.

    Returns
    -------
    list of str
        The drawn ids, in the order of ``ids``.

    Examples
    --------
    >>> stratified_ids(["a", "b", "c", "d"], ["x", "x", "y", "y"], 2, seed=0) in (["a", "c"], ["a", "d"],
    ...                                                                      ["b", "c"], ["b", "d"])
    True
    """
    from latentprobe.data import draw_stratified

    ids = list(ids)
    if n >= len(ids):
        return ids
    keys = ["all"] * len(ids) if strata is None else [str(s) for s in strata]
    picked = set(draw_stratified(ids, keys, n, seed=seed, by="study")[0])
    return [i for i in ids if i in picked]


def _toy(study: Study, model: Any) -> tuple[Any, pd.DataFrame]:
    from latentprobe.study.toys import toy_inputs

    examples = []
    for d in study.data:
        ex = model.toy.examples(d.split)
        if d.take == "first":
            ex = ex[:d.n]
        elif d.n is not None:
            keep = set(stratified_ids([e.example_id for e in ex], [_toy_field(e, d.by) for e in ex] if d.by else None,
                                      d.n, d.seed))
            ex = [e for e in ex if e.example_id in keep]
        examples.extend(ex)
    if study.sample is not None:
        s = study.sample
        keep = set(stratified_ids([e.example_id for e in examples],
                                  [_toy_field(e, s.by) for e in examples] if s.by else None, s.n, s.seed))
        examples = [e for e in examples if e.example_id in keep]
    _unique(study, [e.example_id for e in examples])
    frame = pd.DataFrame({"example_id": [e.example_id for e in examples], "benchmark": "toy",
                          "source": f"toy:{study.model.toy_variant}", "category": [e.template for e in examples],
                          "gold": [e.answer for e in examples]})
    return toy_inputs(examples), frame


def _toy_field(example: Any, name: str | None) -> Any:
    if name in ("category", "template"):
        return example.template
    if name == "source":
        return "toy"
    return example.attributes.get(name, getattr(example, str(name), None))


def _real(study: Study, runner: Any = None) -> tuple[Any, pd.DataFrame, list[Any]]:
    from latentprobe.data import load_benchmark, sample

    examples: list[Any] = []
    bench: dict[str, str] = {}
    for d in study.data:
        ex = load_benchmark(d.benchmark, d.root, **dict(d.options))
        if d.take == "first":
            ex = ex[:d.n]
        elif d.n is not None:
            ex = sample(ex, d.n, by=d.by, seed=d.seed).examples
        examples.extend(ex)
        bench.update((e.example_id, d.benchmark) for e in ex)
    if study.sample is not None:
        examples = sample(examples, study.sample.n, by=study.sample.by, seed=study.sample.seed).examples
    _unique(study, [e.example_id for e in examples])
    if study.generation.scorer == "vsp_plan":  # a VSP plan is judged on its map: the map is the gold it is scored against
        examples = _map_golds(study, examples)
    inputs = _input_set(study, examples, runner)
    frame = pd.DataFrame({"example_id": [e.example_id for e in examples],
                          "benchmark": [bench[e.example_id] for e in examples],
                          "source": [e.source for e in examples], "category": [e.category for e in examples],
                          "gold": [e.gold for e in examples]})
    return inputs, frame, examples


def _map_golds(study: Study, examples: list[Any]) -> list[Any]:
    import dataclasses

    from latentprobe.scoring import ScoringError, vsp_gold

    try:
        return [dataclasses.replace(e, gold=vsp_gold(e)) for e in examples]
    except ScoringError as exc:
        raise StudyError(f"{study.path}: [generation] scorer = \"vsp_plan\": {exc}") from None


def _input_set(study: Study, examples: list[Any], runner: Any) -> Any:
    """The one prompt builder notebooks use too: ``to_input_set(..., runner=runner)`` builds the family's prompts."""
    from latentprobe.data import to_input_set

    p = study.prompt
    return to_input_set(examples, prompt=None if p is None else p.template,
                        messages=None if p is None or p.messages is None else [dict(m) for m in p.messages],
                        max_pixels=None if p is None else p.max_pixels, runner=runner)


def _unique(study: Study, ids: list[str]) -> None:
    if not ids:
        raise StudyError(f"{study.path}: [data]: no example was loaded; check root, options and n.")
    seen: set[str] = set()
    dup = [i for i in ids if i in seen or seen.add(i)]  # type: ignore[func-returns-value]
    if dup:
        raise StudyError(f"{study.path}: [[data]]: example id {dup[0]!r} occurs in more than one table; "
                         "list each benchmark once.")


def load_data(study: Study, model: StudyModel | None) -> StudyData:
    """Load, sample and prepare the study's examples (the toy path needs ``model.toy``).

    The prompts are built by :func:`latentprobe.data.to_input_set` with ``runner=`` (as from Python): for a
    vision-language checkpoint with a chat template, each question (``[prompt] template``, default
    ``"{question}\\n{options}"``) becomes the family's chat prompt: its system prompt, the image spans where
    its authors put them (before or after the text, or at Mirage's ``<image>``), its generation prompt;
    Coconut gets its latent slots, CODI its normalised question.

    Parameters
    ----------
    study : Study
        The parsed study file (``[data]``, ``[sample]``, ``[prompt]``).
    model : StudyModel or None
        The loaded model; ``None`` builds a real benchmark's prompts without the family's chat template
        (:func:`with_prompts` adds it once the model is loaded). The toy data need it.

    Returns
    -------
    StudyData
    """
    if study.is_toy_data:
        inputs, frame = _toy(study, model)
        return StudyData(inputs=inputs, sample=frame.reset_index(drop=True))
    inputs, frame, examples = _real(study, getattr(model, "runner", None))
    return StudyData(inputs=inputs, sample=frame.reset_index(drop=True), examples=tuple(examples))


def with_prompts(study: Study, data: StudyData, model: StudyModel) -> StudyData:
    """``data`` (loaded without a model, for the checks before it loads) with the prompts ``model``'s family is fed.

    The same examples in the same order; the inputs are rebuilt by :func:`latentprobe.data.to_input_set` with
    ``runner=model.runner``, exactly as :func:`load_data` with the model builds them. The toy data already
    have their prompts.

    Parameters
    ----------
    study : Study
        The parsed study file (its ``[prompt]``).
    data : StudyData
        The examples, as :func:`load_data` loaded them without the model.
    model : StudyModel
        The loaded model.

    Returns
    -------
    StudyData
        ``data`` itself for the toy data or when there are no records to rebuild from.
    """
    if study.is_toy_data or not data.examples:
        return data
    return StudyData(inputs=_input_set(study, list(data.examples), model.runner), sample=data.sample,
                     examples=data.examples)
