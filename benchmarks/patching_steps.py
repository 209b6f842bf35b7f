"""Activation patching with the shared prefix cache against the copied one, and the step-influence runs as one
sweep against one ``intervene`` per step, on a shipped toy, in one run.

Prints, best of ``--rounds`` interleaved rounds:

* ``patch()`` over every position group x layer in ``--modes``, with ``prefix_cache="shared"`` (every row of a
  batch attends to one copy of the batch's common prefix) and ``"copied"`` (a copy per row), and their ratio;
  the two tables' answers must agree (checked);
* the K ``do(z_i)`` propagate runs of ``step_influence``: one ``run_many`` sweep (the K conditions of each
  example in one batch) against ``runner.intervene(..., steps=[i], mode="propagate")`` per step, and their
  ratio; the answers must agree (checked).

Usage: python benchmarks/patching_steps.py [--toy mediated] [--n 16] [--rounds 3] [--threads 1]
       [--modes replay redecode]
"""

from __future__ import annotations

import argparse
import time

import torch

from latentprobe import toy
from latentprobe.causal import patch
from latentprobe.causal.steps import _do, _influence_runs


def rounds(fns: dict, n: int) -> tuple[dict, dict]:
    """Best time of each function over ``n`` rounds (each round runs every function once), and its last result."""
    best, last = {k: float("inf") for k in fns}, {}
    for _ in range(n):
        for k, fn in fns.items():
            t = time.perf_counter()
            last[k] = fn()
            best[k] = min(best[k], time.perf_counter() - t)
    return best, last


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--toy", default="mediated")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--modes", nargs="*", default=["replay", "redecode"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tm = toy.load(args.toy)
    runner = tm.runner()
    inputs = toy.toy_inputs(tm.examples("test", args.n))
    kw = dict(modes=args.modes, n_boot=50, max_new_tokens=8)

    t, res = rounds({h: (lambda h=h: patch(runner, inputs, toy.Counterfactual(seed=0), prefix_cache=h, **kw).table)
                     for h in ("shared", "copied")}, args.rounds)
    assert (res["shared"]["answer"].to_numpy() == res["copied"]["answer"].to_numpy()).all()
    print(f"toy:{args.toy}, {args.n} examples, patching every group x layer in {args.modes} "
          f"({len(res['shared'])} rows)")
    print(f"  prefix_cache='shared'   {t['shared']:8.2f} s")
    print(f"  prefix_cache='copied'   {t['copied']:8.2f} s   shared / copied = {t['shared'] / t['copied']:.2f}")

    trace = runner.run(**inputs.run_kwargs(), max_new_tokens=8, progress=False)
    sub = trace.select(list(trace.latent_selection().indices))
    k = sub.examples[0].num_latents
    do = _do("swap", sub, 0)
    t, res = rounds({
        "sweep": lambda: [o.answers for o in _influence_runs(runner, sub, do, k, 8)],
        "per step": lambda: [runner.intervene(sub, do, steps=[i], mode="propagate", batch_size=8, progress=False).answers
                             for i in range(k)],
    }, args.rounds)
    assert res["sweep"] == res["per step"]
    print(f"step influence, K = {k}, {len(sub)} examples (propagate)")
    print(f"  one sweep               {t['sweep']:8.2f} s")
    print(f"  one intervene per step  {t['per step']:8.2f} s   sweep / per step = {t['sweep'] / t['per step']:.2f}")


if __name__ == "__main__":
    main()
