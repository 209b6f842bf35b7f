"""What every analysis of one study shares: :class:`Context` (the runner, the inputs, the clean run
computed once, the study-level generation settings and the hooks a model family may supply)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from latentprobe.errors import InputError

if TYPE_CHECKING:
    from latentprobe.engine import LatentRunner
    from latentprobe.engine.sampling import LogitsProcessor
    from latentprobe.perturbations import InputSet, Perturbation
    from latentprobe.scoring import Scorer
    from latentprobe.trace import LatentTrace

__all__ = ["Context"]


@dataclass(eq=False)
class Context:
    """The runner, inputs and clean run the analyses of one study share.

    Parameters
    ----------
    runner : LatentRunner
        The model.
    inputs : InputSet
        The examples (prompts, images, gold answers, metadata).
    seed, n_boot, batch_size : int
        Study-level defaults of the shared options of the same names.
    max_new_tokens : int
        Answer budget of every generation.
    chunk_size : int
        Examples per stored unit of the causal analyses.
    scorer : str or Scorer
        The study's scorer (``[generation] scorer``); ``choice`` reads each example's options.
    progress : bool
        Progress bars.
    is_toy : bool
        The shipped toy models and data (toy-only perturbations are allowed).
    capture_positions : str, callable or None
        What the clean run captures besides the latents (``"image"``: the image tokens' states;
        :class:`~latentprobe.geometry.MatchedPositions`: text, image and prompt-last positions), read by the
        similarity baselines (:func:`latentprobe.geometry.baseline_states`).
    logits_processor : object, optional
        Passed to every generation (e.g. :class:`~latentprobe.engine.ForceOpen` for ``open = "force"``).
    generation : str, optional
        The clean run's decoding (``"published"``: the preset's published settings; default greedy).
    hooks : mapping
        Optional family hooks: ``"random_runner"`` (``f(seed) -> LatentRunner``, the same architecture with
        random weights), ``"derived_inputs"`` (``f(inputs) -> InputSet``, the behavioural probe's questions).
    where : str
        The study file, named in errors.
    writes : bool
        Whether this process writes shared files such as a saved trace (``False`` on the ranks other than 0 of a
        study run by several workers).

    Examples
    --------
    >>> from latentprobe import toy
    >>> from latentprobe.analyses import Context
    >>> tm = toy.load("mediated")
    >>> ex = tm.examples("test", 4)
    >>> ctx = Context(tm.runner(), toy.toy_inputs(ex), max_new_tokens=8, progress=False)
    >>> len(ctx.trace), ctx.defaults()["seed"]
    (4, 0)
    """

    runner: LatentRunner
    inputs: InputSet
    seed: int = 0
    n_boot: int = 1000
    batch_size: int = 8
    max_new_tokens: int = 16
    chunk_size: int = 16
    scorer: str | Scorer = "exact"
    progress: bool = True
    is_toy: bool = False
    capture_positions: str | Callable[..., Any] | None = None
    logits_processor: LogitsProcessor | None = None
    generation: str | None = None
    hooks: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    where: str = "study"
    writes: bool = True
    _trace: LatentTrace | None = field(default=None, init=False, repr=False)

    def defaults(self) -> dict[str, Any]:
        """The study-level values of the shared options.

        Returns
        -------
        dict
            ``n_boot``, ``seed``, ``batch_size`` and ``progress`` (:meth:`AnalysisOptions.resolved` takes it).
        """
        return {"n_boot": self.n_boot, "seed": self.seed, "batch_size": self.batch_size, "progress": self.progress}

    @property
    def trace(self) -> LatentTrace:
        """The clean run of every example (greedy), computed on first use."""
        if self._trace is None:
            inp = self.inputs
            self._trace = self.runner.run(
                list(inp.prompts), None if inp.images is None else list(inp.images), example_ids=list(inp.example_ids),
                max_new_tokens=self.max_new_tokens, batch_size=self.batch_size, seed=self.seed,
                capture_positions=self.capture_positions, progress=self.progress, generation=self.generation,
                **({"logits_processor": self.logits_processor} if self.logits_processor is not None else {}))
        return self._trace

    def trace_fingerprint(self) -> str:
        """A short hash of the clean run (ids, answers, latents), for unit stores.

        Returns
        -------
        str
        """
        from latentprobe.fingerprint import trace_fingerprint

        return trace_fingerprint(self.trace)

    def scoring(self, name: str | Scorer | None = None) -> Scorer:
        """A scorer as an object: ``name`` (an analysis's own ``scorer`` option) or the study's; ``choice`` gets
        each example's options, an import string ``"package.module:Name"`` names a Scorer class or a function
        ``f(answer, gold, example) -> bool | None``.

        Parameters
        ----------
        name : str or Scorer, optional
            A scorer name, import string or object (default: the study's scorer).

        Returns
        -------
        Scorer
        """
        from latentprobe.analyses.names import import_object, is_import_string
        from latentprobe.scoring import scorer_from_name

        chosen = self.scorer if name is None else name
        if not isinstance(chosen, str):
            return scorer_from_name(chosen)
        if is_import_string(chosen):
            obj = import_object(chosen, what="scorer")
            made: Scorer = scorer_from_name(obj() if isinstance(obj, type) else obj)
            return made
        opts: dict[str, Any] = {}
        if chosen == "choice":
            opts["options_by_example"] = {eid: tuple(m.get("options") or ()) for eid, m in
                                          zip(self.inputs.example_ids, self.inputs.meta)}
        made = scorer_from_name(chosen, **opts)
        return made

    def answers(self) -> pd.DataFrame:
        """The clean run's answers, one row per example (:class:`latentprobe.schema.ANSWERS`): the answer, the
        gold, whether it is correct as the study's scorer reads it (an unreadable answer is NaN here and counts as
        wrong in every accuracy), what was read and how, and whether the example entered latent mode.

        Returns
        -------
        pandas.DataFrame
            A :class:`latentprobe.schema.ANSWERS` frame in the inputs' order.
        """
        from latentprobe.schema import ANSWERS, NO_GOLD

        scorer, inp = self.scoring(), self.inputs
        gold = inp.gold if inp.gold is not None else (None,) * len(inp)
        rows = []
        for e, g, m, prompt in zip(self.trace, gold, inp.meta, inp.prompts):
            if g is None:
                correct, parsed, method = float("nan"), "", NO_GOLD
            else:
                sc = scorer.score(e.answer_text, g, {"example_id": e.example_id, **m})
                correct = float("nan") if sc.correct is None else float(sc.correct)
                parsed, method = sc.parsed or "", sc.method
            question = m.get("question") or getattr(m.get("toy"), "question", None)
            rows.append({"example_id": e.example_id, "question": question if question is not None else
                         (prompt if isinstance(prompt, str) else ""), "answer": e.answer_text, "gold": g, "correct": correct,
                         "parsed": parsed, "parse_method": method, "n_latents": e.num_latents,
                         "entered": e.entered_latent_mode})
        return ANSWERS.frame(rows)

    def perturbation(self, name: str, seed: int) -> Perturbation:
        """The perturbation of a study file's name (:func:`latentprobe.analyses.names.make_perturbation`).

        Parameters
        ----------
        name : str
            A registered perturbation name or an import string.
        seed : int
            Its seed (for perturbations that draw).

        Returns
        -------
        Perturbation

        Raises
        ------
        InputError
            An unknown name, or a toy-only perturbation on other data.
        """
        from latentprobe.analyses.names import make_perturbation

        made = make_perturbation(name, seed)
        if not self.is_toy and type(made).__module__.startswith("latentprobe.toy"):
            raise InputError(f"{self.where}: perturbation {name!r} needs the toy data's ground truth; use it with "
                             "source = \"toy:<variant>\" and benchmark = \"toy\", or choose another.")
        return made

    def hook(self, name: str) -> Callable[..., Any] | None:
        """A family hook (see the class docstring), or ``None``.

        Parameters
        ----------
        name : str
            ``"random_runner"``, ``"derived_inputs"`` or ``"baseline_runner"`` (``f(source, preset, num_latents)
            -> LatentRunner``: a second model, loaded as a study's ``[model]`` is).

        Returns
        -------
        callable or None
        """
        return self.hooks.get(name)

    def save_trace(self, folder: Path | None, asked: bool) -> None:
        """Save the clean trace into ``folder/trace`` when ``asked``.

        Parameters
        ----------
        folder : Path or None
            The analysis folder (``None``: nothing is saved).
        asked : bool
            The analysis's ``save_trace`` option.
        """
        if asked and folder is not None and self.writes:
            self.trace.save(folder / "trace")
