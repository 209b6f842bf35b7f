"""Measuring a toy model: greedy answers through the runner, accuracy records, reproducible threads."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np
import torch

from latentprobe.toy.settings import TrainArgs
from latentprobe.toy.model import mask_rule, prompt_for, toy_spec
from latentprobe.toy.shapes import ToyExample

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase


__all__ = ["EVAL_THREADS", "evaluate", "measure_accuracy"]


@contextmanager
def _deterministic(threads: int = 2) -> Iterator[None]:
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old_det, warn_only=old_warn)
        torch.set_num_threads(old_threads)


def evaluate(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, variant: str, examples: Sequence[ToyExample], *,
             batch_size: int = 100, max_new_tokens: int = 16) -> list[str]:
    """Greedy answers of ``model`` through :class:`LatentRunner` (the inference protocol).

    Parameters
    ----------
    model : torch.nn.Module
        A toy model.
    tokenizer : PreTrainedTokenizerBase
        The toy tokenizer.
    variant : str
        One of :data:`~latentprobe.toy.VARIANTS`.
    examples : Sequence[ToyExample]
        Toy examples.
    batch_size : int
        Examples per batch.
    max_new_tokens : int
        The runner's budget.

    Returns
    -------
    list of str
        One answer per example.
    """
    from latentprobe.engine import LatentRunner

    if not examples:
        return []
    runner = LatentRunner(model, tokenizer, toy_spec(variant), mask_rule=mask_rule(variant))
    trace = runner.run([prompt_for(e.question) for e in examples], [e.image() for e in examples],
                       example_ids=[e.example_id for e in examples], max_new_tokens=max_new_tokens,
                       batch_size=batch_size, progress=False)
    return trace.answers


EVAL_THREADS = 1  # evaluation runs single-threaded: reproducible and robust on a busy machine


def measure_accuracy(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, variant: str, test: Sequence[ToyExample],
                     args: TrainArgs) -> dict[str, Any]:
    """The accuracy fields of the JSON record: greedy runner answers on the whole test split.

    Parameters
    ----------
    model : torch.nn.Module
        A toy model.
    tokenizer : PreTrainedTokenizerBase
        The toy tokenizer.
    variant : str
        One of :data:`~latentprobe.toy.VARIANTS`.
    test : Sequence[ToyExample]
        The test split.
    args : TrainArgs
        The training arguments (batch size, budget, ``n_first``).

    Returns
    -------
    dict[str, Any]
    """
    with _deterministic(EVAL_THREADS):
        t1 = time.perf_counter()
        answers = evaluate(model, tokenizer, variant, test, batch_size=args.eval_batch_size,
                           max_new_tokens=args.max_new_tokens)
        seconds = time.perf_counter() - t1
    n_first = min(args.n_first, len(test))
    return {
        "test_accuracy": _accuracy(answers, test),
        "n_first": n_first,
        "test_accuracy_first": _accuracy(answers[:n_first], test[:n_first]),
        "test_accuracy_by_template": _by_template(answers, test),
        "eval_threads": EVAL_THREADS,
        "eval_seconds": round(seconds, 1),
    }


def _accuracy(answers: Sequence[str], examples: Sequence[ToyExample]) -> float:
    if not examples:
        return 0.0
    return float(np.mean([a == e.answer for a, e in zip(answers, examples)]))


def _by_template(answers: Sequence[str], examples: Sequence[ToyExample]) -> dict[str, float]:
    out: dict[str, list[bool]] = {}
    for a, e in zip(answers, examples):
        out.setdefault(e.template, []).append(a == e.answer)
    return {k: round(float(np.mean(v)), 4) for k, v in sorted(out.items())}
