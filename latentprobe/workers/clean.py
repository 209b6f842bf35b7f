"""The clean run of a study, sharded over the workers and merged through the study folder.

The examples are ordered by prompt length, longest first (characters of a text prompt, ids of a tokenised
one, messages' text for a chat), and cut into units of ``batch_size`` examples: each unit is one batch of
the runner, so its numbers do not depend on the worker count. The units are dealt round-robin over the
ranks, so every rank gets long and short prompts alike and the ranks finish together (VLMEvalKit deals its
examples round-robin too, ``range(rank, len(dataset), world_size)``; it does not sort them). Each unit's
trace is saved to ``DIR/clean/unit-NNNNN/`` (written under a temporary name, then renamed: a unit folder is
complete or absent), and after a barrier every rank loads all of them and puts the examples back in the
data's order: the analyses, several of which need every example (swaps, mean ablation, the shared tensor,
cross-instance maps), start only from the merged trace. A killed run keeps its finished units; a resumed
run, with any worker count, computes the missing ones. ``DIR/clean/plan.json`` records the units' example
ids; a plan that differs (other data, another ``batch_size``) discards the old units.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latentprobe.atomic import atomic_write_text

if TYPE_CHECKING:
    from latentprobe.analyses import Context
    from latentprobe.workers.group import Workers
    from latentprobe.trace import LatentTrace

__all__ = ["CLEAN_DIR", "clean_units", "sharded_trace"]

#: The folder of the clean run's units inside the study folder.
CLEAN_DIR = "clean"


def _length(prompt: Any) -> int:
    if isinstance(prompt, str):
        return len(prompt)
    if isinstance(prompt, (list, tuple)) and all(isinstance(t, int) for t in prompt):
        return len(prompt)
    return len(json.dumps(prompt, default=str))


def clean_units(prompts: list[Any], batch_size: int) -> list[list[int]]:
    """The clean run's units: example indices by prompt length (longest first, ties in data order), in batches.

    Parameters
    ----------
    prompts : list
        The prompts.
    batch_size : int
        Examples per unit.

    Returns
    -------
    list of list of int

    Examples
    --------
    >>> clean_units(["a", "abc", "ab", "abcd"], 2)
    [[3, 1], [2, 0]]
    """
    order = sorted(range(len(prompts)), key=lambda i: (-_length(prompts[i]), i))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def sharded_trace(ctx: Context, workers: Workers, out_dir: str | os.PathLike) -> LatentTrace:
    """Run this rank's share of the clean run, wait for the others, and return the whole trace (every rank gets
    the same one, in the data's order).

    Parameters
    ----------
    ctx : Context
        The study's context (runner, inputs, generation settings).
    workers : Workers
        The worker group.
    out_dir : path
        The study folder.

    Returns
    -------
    LatentTrace
    """
    from latentprobe.trace import LatentTrace

    inp = ctx.inputs
    folder = Path(out_dir) / CLEAN_DIR
    units = clean_units(list(inp.prompts), ctx.batch_size)
    plan = {"batch_size": ctx.batch_size, "units": [[inp.example_ids[i] for i in u] for u in units]}
    if workers.is_main:
        plan_path = folder / "plan.json"
        old = json.loads(plan_path.read_text()) if plan_path.exists() else None
        if old != plan:
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            atomic_write_text(plan_path, json.dumps(plan) + "\n")
        for tmp in folder.glob(".unit-*.tmp"):  # a unit a killed worker was saving
            shutil.rmtree(tmp, ignore_errors=True)
    workers.barrier("clean plan")
    pending = [u for u in range(len(units)) if not (folder / f"unit-{u:05d}").is_dir()]
    workers.barrier("clean assign")
    workers.planned(len(units), len(units) - len(pending))
    for u in pending[workers.rank::workers.world_size]:
        workers.unit_started("clean", u)
        idx = units[u]
        trace = ctx.runner.run(
            [inp.prompts[i] for i in idx], None if inp.images is None else [inp.images[i] for i in idx],
            example_ids=[inp.example_ids[i] for i in idx], max_new_tokens=ctx.max_new_tokens,
            batch_size=ctx.batch_size, seed=ctx.seed, capture_positions=ctx.capture_positions, progress=False,
            generation=ctx.generation,
            **({"logits_processor": ctx.logits_processor} if ctx.logits_processor is not None else {}))
        tmp = folder / f".unit-{u:05d}.rank-{workers.rank}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        trace.save(tmp)
        os.replace(tmp, folder / f"unit-{u:05d}")
        workers.unit_done("clean", u)
        workers.advanced(1)
    workers.barrier("clean computed")
    by_id, config, spec = {}, {}, ctx.runner.spec
    for u in range(len(units)):
        part = LatentTrace.load(folder / f"unit-{u:05d}")
        config, spec = (config, spec) if config else (dict(part.config), part.spec)
        by_id.update({e.example_id: e for e in part})
    return LatentTrace(tuple(by_id[eid].replace(index=i) for i, eid in enumerate(inp.example_ids)), spec, config)
