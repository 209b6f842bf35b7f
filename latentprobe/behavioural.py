"""The paper's behavioural probe: can a derived question be answered from the latents alone?

For each example, the model first runs on its original question and image (latents Z). Then a
*derived* question about the same image is answered three ways:

* ``image``: the derived question with the image (the ceiling);
* ``blank``: the derived question with a blank image and the latents the model writes for it
  (the floor: no visual information anywhere);
* ``latents_only``: the derived question with a blank image, every latent replaced by the
  original run's latents (answers re-decoded with the latents held).

If the latents carry the image's content, ``latents_only`` beats ``blank``. Derived questions for
the toy come from :func:`latentprobe.toy.behavioural.toy_derived_inputs`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import pandas as pd
import torch

from latentprobe import stats
from latentprobe.errors import InputError
from latentprobe.interventions import Replace
from latentprobe.perturbations import BlankImage, InputSet
from latentprobe.schema import BEHAVIOURAL_CONDITIONS, BEHAVIOURAL_ROWS, BEHAVIOURAL_SUMMARY, EFFECTS
from latentprobe.scoring import Scorer, ScoringError, scorer_from_name

if TYPE_CHECKING:
    from latentprobe.engine import LatentRunner

__all__ = ["BehaviouralProbeResult", "behavioural_probe", "second_model_summary"]


@dataclass(frozen=True)
class BehaviouralProbeResult:
    """What :func:`behavioural_probe` returns.

    Parameters
    ----------
    summary : pd.DataFrame
        :class:`~latentprobe.schema.BEHAVIOURAL_SUMMARY`: condition, accuracy, ci_low, ci_high, n, note,
        n_unparseable.
    tests : pd.DataFrame
        :class:`~latentprobe.schema.EFFECTS`: paired comparisons (accuracy difference with Tango's paired score
        interval and the p-value of the score test it inverts; :func:`latentprobe.stats.accuracy_difference`).
    rows : pd.DataFrame
        :class:`~latentprobe.schema.BEHAVIOURAL_ROWS`: per example, ``correct_<condition>`` and
        ``parse_method_<condition>`` for each condition.
    dropped : dict[str, int]
        Examples left out, by reason.
    """

    summary: pd.DataFrame
    tests: pd.DataFrame
    rows: pd.DataFrame
    dropped: dict[str, int]


def _correct(trace: Any, gold: list[str], scorer: Scorer, examples: list[dict[str, Any]]
             ) -> tuple[np.ndarray, int, list[str]]:
    """Correctness (an unreadable answer counts as wrong), the number unreadable, how each was read."""
    scores = [scorer.score(e.answer_text, g, ex) for e, g, ex in zip(trace, gold, examples)]
    return (np.array([s.correct is True for s in scores], dtype=bool), sum(s.correct is None for s in scores),
            [s.method for s in scores])


def behavioural_probe(runner: LatentRunner, original: InputSet, derived: InputSet, *, max_new_tokens: int = 16,
                      batch_size: int = 16, n_boot: int = 2000, seed: int = 0, progress: bool = False,
                      scorer: str | Scorer | Callable[..., Any] | None = "exact") -> BehaviouralProbeResult:
    """Answer ``derived`` questions from the image, from nothing, and from ``original``'s latents alone.

    ``original`` and ``derived`` are aligned example by example (same ids, same images); ``derived``
    must carry gold answers. Only examples whose three latent runs have the same number of latents
    count; ``dropped`` says how many were left out.

    ``scorer`` scores each answer against its gold (:func:`latentprobe.scoring.scorer_from_name`;
    default ``"exact"``: SQuAD-style normalised, so case and punctuation do not matter); its
    ``example`` is ``{"example_id": ..., **derived.meta[i]}``. An answer it cannot read counts as
    wrong, as in the causal analyses; ``summary.n_unparseable`` counts them per condition.

    Parameters
    ----------
    runner : LatentRunner
        The runner.
    original : InputSet
        The clean inputs (their latents are reused).
    derived : InputSet
        The derived questions, aligned with ``original``, with gold answers.
    max_new_tokens : int
        Answer budget.
    batch_size : int
        Examples per forward pass.
    n_boot : int
        Bootstrap resamples of the intervals.
    seed : int
        Seed of the bootstrap.
    progress : bool
        Show progress bars.
    scorer : str | Scorer | Callable[..., Any] | None
        How each answer is scored (see above).

    Returns
    -------
    BehaviouralProbeResult
    """
    try:
        scorer = scorer_from_name(scorer)
    except ScoringError as exc:
        raise ScoringError(f"behavioural_probe: {exc}") from None
    if len(original) != len(derived) or original.example_ids != derived.example_ids:
        raise InputError("original and derived InputSets must hold the same example_ids in the same order "
                         f"(got {len(original)} and {len(derived)} examples); build them from the same examples.")
    if derived.gold is None:
        raise InputError("derived needs gold answers (InputSet.gold): one per example, None where unknown.")
    kw = dict(max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)
    clean = runner.run(**original.run_kwargs(), **kw)
    blank_in = BlankImage().apply(derived)
    with_image = runner.run(**derived.run_kwargs(), **kw)
    blank = runner.run(**blank_in.run_kwargs(), **kw)
    keep = [i for i in range(len(derived))
            if clean[i].num_latents > 0 and clean[i].num_latents == blank[i].num_latents and derived.gold[i] is not None]
    dropped = {"no latents or different latent counts": len(derived) - len(keep)}
    if not keep:
        raise InputError(f"no example kept out of {len(derived)}: none entered latent mode with the same number of "
                         "latents in the original and the blank-image run (and a gold answer); check the spec's "
                         "open marker, or pass more examples.")
    gold = [derived.gold[i] for i in keep]
    examples = [{**derived.meta[i], "example_id": derived.example_ids[i]} for i in keep]
    blank_k, clean_k, image_k = blank.select(keep), clean.select(keep), with_image.select(keep)
    z = torch.stack([e.z for e in clean_k])
    latents_only = runner.intervene(blank_k, Replace(z), mode="redecode", **kw)
    image, blank_c, only = BEHAVIOURAL_CONDITIONS
    scored = {image: _correct(image_k, gold, scorer, examples), blank_c: _correct(blank_k, gold, scorer, examples),
              only: _correct(latents_only, gold, scorer, examples)}
    res = {k: c for k, (c, _, _) in scored.items()}
    summary, T = [], BEHAVIOURAL_SUMMARY
    for name, c in res.items():
        e = stats.bootstrap_ci(c.astype(float), n_boot=n_boot, seed=seed, name=name, method="wilson")
        summary.append({T.CONDITION: name, T.ACCURACY: e.estimate, T.CI_LOW: e.ci_low, T.CI_HIGH: e.ci_high,
                        T.N: e.n, T.NOTE: e.note, T.N_UNPARSEABLE: scored[name][1]})
    tests = []
    for a, b in ((only, blank_c), (image, only)):
        e = stats.accuracy_difference(res[a], res[b], n_boot=n_boot, seed=seed, name=f"{a} - {b}")
        tests.append(e.to_dict())
    R = BEHAVIOURAL_ROWS
    rows = R.frame({R.EXAMPLE_ID: [derived.example_ids[i] for i in keep], R.GOLD: gold,
                    R.CORRECT_IMAGE: res[image], R.CORRECT_BLANK: res[blank_c], R.CORRECT_LATENTS_ONLY: res[only],
                    R.PARSE_METHOD_IMAGE: scored[image][2], R.PARSE_METHOD_BLANK: scored[blank_c][2],
                    R.PARSE_METHOD_LATENTS_ONLY: scored[only][2],
                    R.ANSWER_LATENTS_ONLY: [e.answer_text for e in latents_only]})
    return BehaviouralProbeResult(T.frame(summary), EFFECTS.frame(tests), rows, dropped)


def second_model_summary(runner: LatentRunner, derived: InputSet, *, keep: list[str] | None = None,
                         label: str = "second_model", max_new_tokens: int = 16, batch_size: int = 16,
                         n_boot: int = 2000, seed: int = 0, progress: bool = False,
                         scorer: str | Scorer | Callable[..., Any] | None = "exact") -> pd.DataFrame:
    """A second model (e.g. the plain base model) on the same derived questions: with the image and with a blank image.

    The reference the paper sets beside the latent-only probe: what a model without latents answers from the image,
    and from the question alone. Rows ``"<label>: image"`` and ``"<label>: blank"`` of a
    :class:`~latentprobe.schema.BEHAVIOURAL_SUMMARY` table (Wilson intervals), over the examples ``keep``.

    Parameters
    ----------
    runner : LatentRunner
        The second model (any preset; it need not enter latent mode).
    derived : InputSet
        The derived questions as this model is prompted, with gold answers.
    keep : list of str, optional
        The example ids to score (default: all): pass the first model's kept ids, so both are scored on the same
        examples.
    label : str
        The conditions' prefix.
    max_new_tokens, batch_size, n_boot, seed, progress, scorer
        As in :func:`behavioural_probe`.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    InputError
        ``derived`` without gold answers, or ``keep`` naming an id it does not hold.
    """
    scorer = scorer_from_name(scorer)
    if derived.gold is None:
        raise InputError("second_model_summary(): derived needs gold answers (InputSet.gold).")
    ids = list(derived.example_ids)
    keep = ids if keep is None else list(keep)
    unknown = [k for k in keep if k not in ids]
    if unknown:
        raise InputError(f"second_model_summary(): example ids {unknown[:5]} are not in the derived questions.")
    sub = derived.select([ids.index(k) for k in keep])
    kw = dict(max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)
    gold = [str(g) for g in sub.gold]
    examples = [{**sub.meta[i], "example_id": sub.example_ids[i]} for i in range(len(sub))]
    rows, T = [], BEHAVIOURAL_SUMMARY
    for name, inputs in (("image", sub), ("blank", BlankImage().apply(sub))):
        c, unread, _ = _correct(runner.run(**inputs.run_kwargs(), **kw), gold, scorer, examples)
        e = stats.bootstrap_ci(c.astype(float), n_boot=n_boot, seed=seed, name=name, method="wilson")
        rows.append({T.CONDITION: f"{label}: {name}", T.ACCURACY: e.estimate, T.CI_LOW: e.ci_low, T.CI_HIGH: e.ci_high,
                     T.N: e.n, T.NOTE: e.note, T.N_UNPARSEABLE: unread})
    return T.frame(rows)
