"""The embedded default: synthetic shapes data and tiny latent-reasoning VLMs with planted causal graphs.

Five tiny trained Qwen2.5-VL-architecture models ship with the package (float16 safetensors, a
few MB in all). They differ only in which causal edges exist (see :mod:`latentprobe.toy.model`):

=========  =====================================================================
variant    known truth
=========  =====================================================================
mediated   every bit of visual information reaches the answer through the latents
bypass     the latents have exactly no effect on the answer
blind      the image has exactly no effect on the latents
free       ordinary causal attention, like the published models
text       writes a caption between markers; the answer reads the image only through it
=========  =====================================================================

Example
-------
>>> from latentprobe import toy
>>> m = toy.load("mediated")                                  # doctest: +SKIP
>>> ex = m.examples("test", n=32)                             # doctest: +SKIP
>>> trace = m.run(ex)                                         # doctest: +SKIP
>>> m.accuracy(trace, ex) > m.metadata["majority_baseline"]   # doctest: +SKIP
True

``m.runner()`` is a :class:`~latentprobe.engine.LatentRunner` set up with the variant's spec and
mask rule, for interventions; ``m.prompts(ex)`` and ``m.images(ex)`` are its inputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from latentprobe.display import Summarized, describe
from latentprobe.toy.behavioural import toy_derived_inputs
from latentprobe.toy.model import LATENT_VARIANTS, VARIANTS, build_model, mask_rule, prompt_for, toy_spec
from latentprobe.toy.perturbations import Counterfactual, OccludeTarget, toy_inputs, toy_relabel
from latentprobe.toy.shapes import ToyExample, make_dataset, majority_baseline, train_test_split
from latentprobe.toy.vocab import build_tokenizer
from latentprobe.errors import DataError, InputError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from transformers import PreTrainedTokenizerBase

    from latentprobe.engine.masks import MaskRule
    from latentprobe.spec import LatentSpec
    from latentprobe.trace import LatentTrace

__all__ = [
    "ToyModel",
    "load",
    "weights_dir",
    "VARIANTS",
    "LATENT_VARIANTS",
    "make_dataset",
    "train_test_split",
    "majority_baseline",
    "build_tokenizer",
    "build_model",
    "mask_rule",
    "toy_spec",
    "prompt_for",
    "train_variant",
    "train_all",
    "toy_inputs",
    "toy_relabel",
    "toy_derived_inputs",
    "Counterfactual",
    "OccludeTarget",
]

_WEIGHTS = Path(__file__).resolve().parent / "weights"


def __getattr__(name: str) -> Any:
    # the trainer is imported on first use, so ``python -m latentprobe.toy.training`` runs it cleanly
    if name in ("train_variant", "train_all"):
        from latentprobe.toy import training

        return getattr(training, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def weights_dir() -> Path:
    """The folder holding the shipped ``{variant}.safetensors`` and ``{variant}.json`` files.

    Returns
    -------
    Path
    """
    return _WEIGHTS


@lru_cache(maxsize=8)
def _split(n_images: int, questions_per_image: int, test_fraction: float, seed: int
           ) -> tuple[tuple[ToyExample, ...], tuple[ToyExample, ...]]:
    train, test = train_test_split(make_dataset(n_images, questions_per_image, seed=seed), test_fraction, seed=seed)
    return tuple(train), tuple(test)


@dataclass(frozen=True, eq=False, repr=False)
class ToyModel(Summarized):
    """A loaded toy model with everything needed to run it and its data.

    Parameters
    ----------
    variant : str
        One of :data:`VARIANTS`.
    model : torch.nn.Module
        The ``Qwen2_5_VLForConditionalGeneration`` (float32, eval mode).
    tokenizer : PreTrainedTokenizerBase
        The toy word-level tokenizer.
    spec : LatentSpec
        The spec it runs with (``toy`` or ``toy-text``).
    mask_rule : MaskRule or None
        The variant's attention rule (``None`` for ``free``).
    metadata : dict
        The training record (configuration, arguments, seed, measured test accuracy, ...).
    """

    variant: str
    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    spec: LatentSpec
    mask_rule: MaskRule | None
    metadata: dict[str, Any] = field(repr=False)

    def _summary(self) -> tuple[str, list[tuple[str, str]]]:
        n_params = sum(p.numel() for p in self.model.parameters())
        cfg = self.model.config.text_config
        rows = [
            ("model", f"{type(self.model).__name__}: {n_params / 1e6:.2f}M parameters, hidden {cfg.hidden_size}, "
                      f"{cfg.num_hidden_layers} layers"),
            ("spec", f"{self.spec.name} (K={self.spec.num_latents}, mediator {self.spec.mediator})"),
            ("mask rule", getattr(self.mask_rule, "__name__", describe(self.mask_rule))),
            ("test accuracy", describe(self.metadata.get("test_accuracy"))),
        ]
        return f"ToyModel {self.variant!r}", rows

    def runner(self, **kw: Any) -> Any:
        """A :class:`~latentprobe.engine.LatentRunner` with this variant's spec and mask rule.

        Parameters
        ----------
        **kw
            Further arguments of :class:`~latentprobe.engine.LatentRunner`.

        Returns
        -------
        LatentRunner
        """
        from latentprobe.engine import LatentRunner

        kw.setdefault("mask_rule", self.mask_rule)
        return LatentRunner(self.model, self.tokenizer, self.spec, **kw)

    def examples(self, split: str = "test", n: int | None = None) -> list[ToyExample]:
        """The exact examples the model was trained (``"train"``) or evaluated (``"test"``) on; the first ``n``.

        Parameters
        ----------
        split : str
            ``"train"`` or ``"test"``.
        n : int, optional
            How many (default all).

        Returns
        -------
        list of ToyExample
        """
        if split not in ("train", "test"):
            raise InputError(f"split={split!r}; use 'train' or 'test'.")
        a = self.metadata["train_args"]
        train, test = _split(int(a["n_images"]), int(a["questions_per_image"]), float(a["test_fraction"]),
                             int(self.metadata["seed"]))
        out = list(train if split == "train" else test)
        return out if n is None else out[:n]

    @staticmethod
    def prompts(examples: Sequence[ToyExample]) -> list[str]:
        """The runner's prompts: ``question <|vision_start|> <|image_pad|>``.

        Parameters
        ----------
        examples : sequence of ToyExample

        Returns
        -------
        list of str
        """
        return [prompt_for(e.question) for e in examples]

    @staticmethod
    def images(examples: Sequence[ToyExample]) -> list[np.ndarray]:
        """The rendered 112 x 112 uint8 images.

        Parameters
        ----------
        examples : sequence of ToyExample

        Returns
        -------
        list of np.ndarray
        """
        return [e.image() for e in examples]

    def run(self, examples: Sequence[ToyExample], **kw: Any) -> Any:
        """Greedy latent-loop generation on ``examples`` (keyword arguments go to :meth:`LatentRunner.run`).

        Parameters
        ----------
        examples : sequence of ToyExample
        **kw
            Arguments of :meth:`~latentprobe.engine.LatentRunner.run`.

        Returns
        -------
        LatentTrace
        """
        kw.setdefault("max_new_tokens", int(self.metadata.get("train_args", {}).get("max_new_tokens", 16)))
        kw.setdefault("example_ids", [e.example_id for e in examples])
        kw.setdefault("progress", False)
        return self.runner().run(self.prompts(examples), self.images(examples), **kw)

    @staticmethod
    def accuracy(trace: LatentTrace | Sequence[str], examples: Sequence[ToyExample]) -> float:
        """Fraction of ``trace``'s answers equal to the examples' gold answers (in order).

        Parameters
        ----------
        trace : LatentTrace or sequence of str
            A trace of the examples, or their answers.
        examples : sequence of ToyExample

        Returns
        -------
        float
        """
        answers = trace.answers if hasattr(trace, "answers") else list(trace)
        if len(answers) != len(examples):
            raise InputError(f"{len(answers)} answers for {len(examples)} examples.")
        if not examples:
            return 0.0
        return float(np.mean([a == e.answer for a, e in zip(answers, examples)]))


def load(variant: str, weights: str | Path | None = None, *, verify: bool = True) -> ToyModel:
    """Load a shipped toy model (safetensors only; nothing is unpickled).

    Parameters
    ----------
    variant:
        One of :data:`VARIANTS`.
    weights:
        A folder holding ``{variant}.safetensors`` and ``{variant}.json`` (default: the shipped ones;
        :func:`train_all` writes such a folder).
    verify:
        Check the file's sha256 against the one recorded at training time.

    Returns
    -------
    ToyModel
        The model, its tokenizer, spec, mask rule and training record.

    Raises
    ------
    DataError
        ``weights`` holds no files for ``variant``, or their sha256 differs from the recorded one.

    Examples
    --------
    >>> from latentprobe import toy
    >>> tm = toy.load("mediated")
    >>> tm.spec.name, tm.spec.num_latents, tm.model.config.text_config.hidden_size
    ('toy', 4, 128)
    >>> ex = tm.examples("test", 8)
    >>> tm.accuracy(tm.run(ex), ex) > tm.metadata["majority_baseline"]
    True
    """
    from latentprobe.toy.checkpoints import load_weights, verify_weights

    mask_rule(variant)
    folder = Path(weights) if weights is not None else _WEIGHTS
    jf, wf = folder / f"{variant}.json", folder / f"{variant}.safetensors"
    if not jf.exists() or not wf.exists():
        raise DataError(
            f"{folder} holds no weights for {variant!r} ({jf.name}, {wf.name}); retrain with "
            f"`python -m latentprobe.toy.training --out {folder}`."
        )
    meta = json.loads(jf.read_text())
    if verify and meta.get("sha256"):
        verify_weights(wf, meta["sha256"])
    tok = build_tokenizer()
    model = build_model(tok.get_vocab(), seed=int(meta.get("seed", 0)), **meta.get("config_kwargs", {}))
    load_weights(model, wf)
    return ToyModel(variant=variant, model=model, tokenizer=tok, spec=toy_spec(variant), mask_rule=mask_rule(variant),
                    metadata=meta)
