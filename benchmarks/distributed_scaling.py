"""Wall-time scaling of ``latentprobe run --workers N`` against one worker, on a compute-bound toy study.

One run of this script runs the same study twice into fresh folders, one after the other: ``--workers 1`` and
``--workers N`` (default 2), each worker with one thread (``[study] threads = 1``; torchrun also sets
``OMP_NUM_THREADS=1``), and prints

* the wall time of each command (start-up included: every worker imports torch and loads its own model);
* the wall time of the work itself, read from rank 0's log (``DIR/logs/rank-0.log``): from the first barrier of
  the clean run to the study's last barrier, i.e. the clean run, every analysis's units, the merges and the
  summaries, without the start-up;
* the wall time of the analysis's units alone (from the barrier that deals them to the barrier after the last
  is stored): the part that is divided among the workers;
* the scaling efficiency ``T1 / (N * TN)`` of both (1.0: N workers are N times as fast);
* whether the tables of the two runs are byte-identical (they must be).

The study is the toy's ``z_to_y`` with many interventions in ``propagate`` mode (each unit regenerates its
chunk's latents and answers for every condition: compute, not input or output) over 480 examples (units of 32
examples), with few bootstrap resamples so that the summary, which
every rank computes, stays small. The efficiency needs as many
free cores as workers: on a shared machine a busy neighbour lowers it, so the figure printed is what this
machine gave in this run. ``--quick`` uses 96 examples, ``--n`` any number (rank 0's log stamps whole seconds:
a longer study measures the work more finely, and start-up weighs less in the command's time).

Usage: python benchmarks/distributed_scaling.py [--workers 2] [--quick | --n 480] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

STUDY = """
[study]
name = "scaling"
seed = 0
threads = 1

[model]
source = "toy:mediated"

[data]
benchmark = "toy"
split = "test"
n = {n}

[generation]
max_new_tokens = 8
batch_size = 16
chunk_size = 32
n_boot = 20

[analyses.z_to_y]
interventions = ["zero", "replace_noise", "add_noise", "mean_ablate", "shared_tensor", "swap"]
modes = ["propagate"]
"""


def _seconds(out: Path, start: str, end: str) -> float:
    """Rank 0's time between two of its log lines (barriers are logged when passed; the stamps have 1 s steps)."""
    stamps = {}
    for line in (out / "logs" / "rank-0.log").read_text().splitlines():
        when, _, what = line.partition(" ")
        if what in (start, end) and what not in stamps:
            stamps[what] = datetime.fromisoformat(when)
    return (stamps[end] - stamps[start]).total_seconds()


def _run(study: Path, out: Path, workers: int) -> float:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "latentprobe.cli", "run", str(study), "--out", str(out), "--quiet",
                    "--no-report", "--workers", str(workers)], check=True, env=env, capture_output=True, text=True)
    return time.perf_counter() - t0


def _tables(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.csv")) if ".ranks" not in p.parts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n", type=int, default=480, help="examples in the study (default 480)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the two study folders here")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="lp-scaling-"))
    base.mkdir(parents=True, exist_ok=True)
    study = base / "study.toml"
    n = 96 if args.quick else args.n
    study.write_text(STUDY.format(n=n))
    outs = {1: base / "w1", args.workers: base / f"w{args.workers}"}
    for out in outs.values():
        shutil.rmtree(out, ignore_errors=True)
    wall = {w: _run(study, out, w) for w, out in outs.items()}
    work = {w: _seconds(out, "barrier clean plan", "barrier study end") for w, out in outs.items()}
    units = {w: _seconds(out, "barrier assign z_to_y/z_to_y", "barrier computed z_to_y/z_to_y")
             for w, out in outs.items()}
    same = _tables(outs[1]) == _tables(outs[args.workers])
    nw = args.workers
    print(f"toy z_to_y, {n} examples, 6 interventions, propagate; {os.cpu_count()} CPUs on this machine, one thread "
          f"per worker")
    print("| measure | 1 worker (s) | " + f"{nw} workers (s) | speed-up | efficiency |")
    print("|---|---|---|---|---|")
    for name, t in (("wall time of the command", wall), ("work (rank 0's log)", work), ("the analysis's units", units)):
        print(f"| {name} | {t[1]:.1f} | {t[nw]:.1f} | {t[1] / t[nw]:.2f} | {t[1] / (nw * t[nw]):.2f} |")
    print(f"tables byte-identical: {same}")
    if args.keep is None:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
