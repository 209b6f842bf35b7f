"""``latentprobe run STUDY --out DIR --workers N``: the same run under ``torch.distributed.run`` on this machine.

The shortcut starts ``torch.distributed.run --standalone --nproc-per-node N -m latentprobe.cli run ...`` with
the other options of the command unchanged: exactly what ``torchrun`` would run, not a private process pool.
Each worker is an ordinary ``latentprobe run`` that finds its rank in the environment
(:func:`latentprobe.workers.group.launch_from_env`). When a worker fails, ``torchrun`` stops the others and
this command exits with status 1; the workers' own messages are in ``DIR/logs/rank-R.log`` and on stderr.
"""

from __future__ import annotations

import sys
from typing import Sequence

from latentprobe.errors import CLIUsageError

__all__ = ["torchrun_args", "launch_workers"]


def torchrun_args(n_workers: int, command: Sequence[str]) -> list[str]:
    """The arguments of ``torch.distributed.run`` that start ``n_workers`` workers of a ``latentprobe`` command.

    Parameters
    ----------
    n_workers : int
        Workers on this machine.
    command : sequence of str
        The ``latentprobe`` arguments each worker runs (``run STUDY --out DIR ...``, without ``--workers``).

    Returns
    -------
    list of str

    Examples
    --------
    >>> torchrun_args(2, ["run", "s.toml", "--out", "d"])
    ['--standalone', '--nnodes=1', '--nproc-per-node=2', '--module', 'latentprobe.cli', 'run', 's.toml', '--out', 'd']
    """
    if not isinstance(n_workers, int) or n_workers < 1:
        raise CLIUsageError(f"--workers must be a whole number >= 1, got {n_workers!r}.")
    return ["--standalone", "--nnodes=1", f"--nproc-per-node={n_workers}", "--module", "latentprobe.cli",
            *command]


def launch_workers(n_workers: int, command: Sequence[str]) -> int:
    """Run ``command`` in ``n_workers`` workers through ``torch.distributed.run``; return 0 when all succeeded.

    Parameters
    ----------
    n_workers : int
        Workers on this machine.
    command : sequence of str
        The ``latentprobe`` arguments each worker runs.

    Returns
    -------
    int
        0, or 1 when a worker failed.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    args = parse_args(torchrun_args(n_workers, command))
    args.run_path = False
    try:
        run(args)
    except ChildFailedError as err:
        first = next(iter(err.failures.values()), None) if err.failures else None
        code = getattr(first, "exitcode", 1)
        print(f"latentprobe: error: WorkerError: a worker stopped (rank {getattr(first, 'local_rank', '?')}, exit "
              f"code {code}); its message is above and in its log under --out/logs. Fix what it names (if anything) "
              "and run the same command again: a stopped run resumes, with any number of workers.", file=sys.stderr)
        return 2 if code == 2 else 1
    return 0

