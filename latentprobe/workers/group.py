"""This process's place in a group of study workers: rank discovery, barriers with a hang report, per-rank logs,
rank 0's one progress bar.

``torch.distributed`` is used for two things only: forming the group (``env://``: ``torchrun`` sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``; under Slurm's ``srun`` the ``SLURM_*``
variables stand in for the first three when ``MASTER_ADDR`` is exported) and barriers. Results never travel
through it: they move through the study folder's stores (:mod:`latentprobe.sweep.sharded`). The group uses gloo
on the CPU and NCCL when CUDA is available (barriers then go through a second, gloo group, because only gloo
has ``monitored_barrier``, which names the ranks that did not arrive).

Each rank writes ``DIR/logs/rank-R.log`` (one line per step: model loaded, unit started and stored, barrier
reached) and ``DIR/logs/rank-R.json`` (what it is doing now: its pid and host, the unit it computes or the
barrier it waits at). A barrier that some rank does not reach within the hang timeout (``--hang-timeout``, or
``LATENTPROBE_HANG_TIMEOUT`` in seconds; default one hour) stops the study with
:class:`~latentprobe.errors.WorkerHangError` naming each missing rank and the unit it was computing; so does
rank 0 when no rank stores a unit for that long.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Mapping

from latentprobe.atomic import atomic_write_text
from latentprobe.errors import WorkerError, WorkerHangError

__all__ = ["LOGS_DIR", "ENV_TIMEOUT", "ENV_GPUS", "DEFAULT_TIMEOUT_S", "Launch", "launch_from_env", "gpu_group",
           "Workers"]

#: The per-rank logs' folder inside the study folder.
LOGS_DIR = "logs"
#: The environment variable of the hang timeout, in seconds.
ENV_TIMEOUT = "LATENTPROBE_HANG_TIMEOUT"
DEFAULT_TIMEOUT_S = 3600.0
#: The environment variable of the GPUs each worker gets (a model larger than one GPU: ``device_map="auto"``).
ENV_GPUS = "LATENTPROBE_GPUS_PER_WORKER"


@dataclass(frozen=True)
class Launch:
    """Where this process sits in the group its launcher started.

    Attributes
    ----------
    rank, world_size : int
        This worker's rank and the number of workers.
    local_rank, local_world_size : int
        Its rank on this machine and the workers on this machine (its GPU is ``cuda:local_rank``).
    group_id : str
        The same string in every worker of one launch (the rendezvous address and the launch's id), recorded in the
        study lock so that the other ranks can tell their rank 0 from another run's.
    """

    rank: int
    world_size: int
    local_rank: int = 0
    local_world_size: int = 1
    group_id: str = ""


def launch_from_env(env: Mapping[str, str] | None = None) -> Launch | None:
    """The launch this process belongs to, read from ``torchrun``'s or Slurm's environment; ``None`` outside one.

    Parameters
    ----------
    env : mapping, optional
        The environment (default ``os.environ``).

    Returns
    -------
    Launch or None

    Examples
    --------
    >>> launch_from_env({"RANK": "1", "WORLD_SIZE": "3", "LOCAL_RANK": "1", "MASTER_ADDR": "h", "MASTER_PORT": "29500",
    ...                  "TORCHELASTIC_RUN_ID": "job7"})
    Launch(rank=1, world_size=3, local_rank=1, local_world_size=1, group_id='h:29500/job7')
    >>> launch_from_env({}) is None
    True
    """
    env = os.environ if env is None else env
    try:
        if "RANK" in env and "WORLD_SIZE" in env:
            rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
            local, local_world = int(env.get("LOCAL_RANK", 0)), int(env.get("LOCAL_WORLD_SIZE", 1))
            run_id = env.get("TORCHELASTIC_RUN_ID") or env.get("SLURM_JOB_ID", "")
        elif "SLURM_PROCID" in env and "SLURM_NTASKS" in env and "MASTER_ADDR" in env:
            rank, world = int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"])
            local = int(env.get("SLURM_LOCALID", 0))
            per_node = re.match(r"\d+", env.get("SLURM_NTASKS_PER_NODE", "") or env.get("SLURM_TASKS_PER_NODE", ""))
            local_world = int(per_node.group()) if per_node else 1
            run_id = f"{env.get('SLURM_JOB_ID', '')}.{env.get('SLURM_STEP_ID', '')}"
        else:
            return None
    except ValueError as err:
        raise WorkerError(f"the launcher's environment has a malformed rank or size ({err}); launch with torchrun "
                          "or srun, or unset RANK and WORLD_SIZE for a single-process run.") from None
    if not 0 <= rank < world:
        raise WorkerError(f"RANK={rank} is outside 0..WORLD_SIZE-1 (WORLD_SIZE={world}); launch with torchrun or srun.")
    group = f"{env.get('MASTER_ADDR', '')}:{env.get('MASTER_PORT', '')}/{run_id}"
    return Launch(rank, world, local, local_world, group)


def gpu_group(launch: Launch, env: dict[str, str] | None = None) -> str | None:
    """Give this worker its own GPUs when ``LATENTPROBE_GPUS_PER_WORKER`` is set: ``CUDA_VISIBLE_DEVICES`` becomes
    its slice of the machine's GPUs (as VLMEvalKit's ``run.py`` does per local rank). Call it before CUDA starts.

    Parameters
    ----------
    launch : Launch
        This worker's place (its local rank picks the slice).
    env : dict, optional
        The environment to read and change (default ``os.environ``).

    Returns
    -------
    str or None
        The new ``CUDA_VISIBLE_DEVICES``, or ``None`` when the variable is unset (one GPU per worker).

    Examples
    --------
    >>> gpu_group(Launch(1, 4, local_rank=1, local_world_size=2), {"LATENTPROBE_GPUS_PER_WORKER": "4"})
    '4,5,6,7'
    >>> gpu_group(Launch(0, 2, local_world_size=2),
    ...           {"LATENTPROBE_GPUS_PER_WORKER": "2", "CUDA_VISIBLE_DEVICES": "3,1,2,0"})
    '3,1'
    """
    env = os.environ if env is None else env
    raw = env.get(ENV_GPUS)
    if not raw:
        return None
    per = int(raw) if raw.strip().isdigit() else 0
    if per < 1:
        raise WorkerError(f"{ENV_GPUS}={raw!r} must be a whole number of GPUs per worker (>= 1).")
    visible = env.get("CUDA_VISIBLE_DEVICES")
    ids = visible.split(",") if visible else [str(i) for i in range(per * launch.local_world_size)]
    mine = ids[launch.local_rank * per:(launch.local_rank + 1) * per]
    if len(mine) < per:
        raise WorkerError(f"{ENV_GPUS}={per} with {launch.local_world_size} workers on this machine needs "
                          f"{per * launch.local_world_size} GPUs, and {len(ids)} are visible; start fewer workers.")
    env["CUDA_VISIBLE_DEVICES"] = ",".join(mine)
    return env["CUDA_VISIBLE_DEVICES"]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Workers:
    """This process's worker group, with its logs and progress bar.

    Parameters
    ----------
    launch : Launch
        Its place in the group (:func:`launch_from_env`).
    out_dir : path
        The study folder (logs go to ``out_dir/logs``).
    timeout_s : float, optional
        The hang timeout (default: ``LATENTPROBE_HANG_TIMEOUT`` or one hour).
    connect : bool
        Form the group through ``torch.distributed`` (``False``: a group of one without it, as a single
        ``latentprobe run`` uses when it resumes a folder written by workers).
    progress : bool
        Rank 0 shows the study's progress bar.

    Examples
    --------
    >>> import tempfile
    >>> w = Workers(Launch(0, 1), tempfile.mkdtemp(), connect=False, progress=False)
    >>> w.barrier("start"); w.is_main, w.world_size
    (True, 1)
    """

    def __init__(self, launch: Launch, out_dir: str | os.PathLike, *, timeout_s: float | None = None,
                 connect: bool = True, progress: bool = True) -> None:
        self.launch = launch
        self.out_dir = Path(out_dir)
        env_timeout = os.environ.get(ENV_TIMEOUT)
        try:
            self.timeout_s = float(timeout_s if timeout_s is not None else env_timeout or DEFAULT_TIMEOUT_S)
        except ValueError:
            raise WorkerError(f"{ENV_TIMEOUT}={env_timeout!r} is not a number of seconds; set it to e.g. "
                              "3600.") from None
        self._connected = False
        self._barrier_group: Any = None
        self._bar: Any = None
        self._progress = progress and launch.rank == 0
        self._log_dir = self.out_dir / LOGS_DIR
        #: GPUs per worker (``LATENTPROBE_GPUS_PER_WORKER``); above 1 the model spreads over them (``"auto"``).
        self.gpus = int(os.environ.get(ENV_GPUS) or 1)
        if connect:
            self._connect()
        self.log(f"rank {self.rank} of {self.world_size} (local {launch.local_rank}), pid {os.getpid()} on "
                 f"{socket.gethostname()}, group {launch.group_id or 'single'}")

    # ------------------------------------------------------------------ group
    @property
    def rank(self) -> int:
        """This worker's rank."""
        return self.launch.rank

    @property
    def world_size(self) -> int:
        """The number of workers."""
        return self.launch.world_size

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes the study's shared files, merges and shows progress."""
        return self.launch.rank == 0

    def device(self) -> str | None:
        """This worker's GPU.

        Returns
        -------
        str or None
            ``cuda:LOCAL_RANK`` (modulo the GPUs this process sees), or ``None`` without CUDA.
        """
        import torch

        if not torch.cuda.is_available():
            return None
        if self.gpus > 1:  # gpu_group gave this worker its own GPUs: its first one
            return "cuda:0"
        return f"cuda:{self.launch.local_rank % max(torch.cuda.device_count(), 1)}"

    def _connect(self) -> None:
        import torch
        import torch.distributed as dist

        timeout = timedelta(seconds=self.timeout_s)
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(self.device())
        try:
            if not dist.is_initialized():
                dist.init_process_group(backend=backend, timeout=timeout, rank=self.rank, world_size=self.world_size)
            self._barrier_group = dist.new_group(backend="gloo", timeout=timeout) if backend == "nccl" else None
        except (RuntimeError, ValueError) as err:
            raise WorkerError(f"rank {self.rank}: the worker group could not be formed ({' '.join(str(err).split())}); "
                              "check MASTER_ADDR and MASTER_PORT (torchrun sets them; under Slurm export them in the "
                              "sbatch file) and that every node reaches the first one.") from None
        self._connected = True

    def close(self) -> None:
        """Close the progress bar and leave the group."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._connected:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self._connected = False

    # ------------------------------------------------------------------ logs and status
    def log(self, message: str) -> None:
        """Append a line to ``DIR/logs/rank-R.log``.

        Parameters
        ----------
        message : str
            The line.
        """
        self._log_dir.mkdir(parents=True, exist_ok=True)
        with open(self._log_dir / f"rank-{self.rank}.log", "a", encoding="utf-8") as f:
            f.write(f"{_now()} {message}\n")

    def _status(self, **what: Any) -> None:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        record = {"rank": self.rank, "pid": os.getpid(), "host": socket.gethostname(), "since": _now(), **what}
        atomic_write_text(self._log_dir / f"rank-{self.rank}.json", json.dumps(record, default=str) + "\n")

    def _read_status(self, rank: int) -> dict[str, Any]:
        try:
            found = json.loads((self._log_dir / f"rank-{rank}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return found if isinstance(found, dict) else {}

    def unit_started(self, label: str, key: Any) -> None:
        """Record that this rank computes unit ``key`` of store ``label`` (what a hang report names).

        Parameters
        ----------
        label : str
            The store (``analysis/store``).
        key : Any
            The unit's key.
        """
        self._status(doing="unit", store=label, unit=key)
        self.log(f"unit {label} {json.dumps(key)} started")

    def unit_done(self, label: str, key: Any) -> None:
        """Record that unit ``key`` of store ``label`` is stored.

        Parameters
        ----------
        label : str
            The store.
        key : Any
            The unit's key.
        """
        self.log(f"unit {label} {json.dumps(key)} stored")

    def doing(self, what: str) -> None:
        """Record a step that is not a unit (loading the model, the report), for logs and hang reports.

        Parameters
        ----------
        what : str
            The step.
        """
        self._status(doing=what)
        self.log(what)

    def _where(self, rank: int) -> str:
        s = self._read_status(rank)
        if not s:
            return f"rank {rank} (no status file: it may not have started)"
        head = f"rank {rank} (pid {s.get('pid')} on {s.get('host')!r})"
        if s.get("doing") == "unit":
            return f"{head} computing unit {json.dumps(s.get('unit'))} of {s.get('store')} since {s.get('since')}"
        return f"{head} at {s.get('doing')!r} since {s.get('since')}"

    def _hung(self, label: str, ranks: list[int]) -> WorkerHangError:
        logs = ", ".join(str(self._log_dir / f"rank-{r}.log") for r in ranks)
        return WorkerHangError(
            f"{'; '.join(self._where(r) for r in ranks)}: did not reach {label!r} within {self.timeout_s:.0f} s. "
            f"See {logs}. If it is still working, raise --hang-timeout ({ENV_TIMEOUT}); the run resumes with the same "
            "command, by any number of workers.")

    # ------------------------------------------------------------------ barriers
    def barrier(self, label: str) -> None:
        """Wait until every rank reaches ``label``; a rank that does not within the hang timeout is reported.

        Parameters
        ----------
        label : str
            The barrier's name (the same on every rank).

        Raises
        ------
        WorkerHangError
            On rank 0: the ranks that did not arrive, with the unit each was computing. On the others: that the
            barrier timed out (rank 0 names the rank).
        """
        self._status(doing=f"barrier {label}")
        if not self._connected or self.world_size == 1:
            self.log(f"barrier {label}")
            return
        import torch.distributed as dist

        try:
            dist.monitored_barrier(group=self._barrier_group, timeout=timedelta(seconds=self.timeout_s),
                                   wait_all_ranks=True)
        except RuntimeError as err:
            if self.is_main:
                late = [r for r in range(1, self.world_size)
                        if self._read_status(r).get("doing") != f"barrier {label}"]
                found = re.search(r"Ranks? ([\d, ]+) failed", str(err))  # gloo: "Ranks 1, 2 failed to pass ..."
                named = [int(r) for r in re.findall(r"\d+", found.group(1))] if found else []
                raise self._hung(label, late or named or list(range(1, self.world_size))) from None
            raise WorkerHangError(f"rank {self.rank} waited {self.timeout_s:.0f} s at {label!r} and another rank did "
                                  f"not arrive; rank 0's error and {self._log_dir / 'rank-0.log'} name it.") from None
        self.log(f"barrier {label}")

    def stalled(self, label: str, since: float) -> None:
        """Rank 0, waiting for the others' units: raise when none was stored for longer than the hang timeout.

        Parameters
        ----------
        label : str
            The store waited on.
        since : float
            ``time.monotonic()`` of the last stored unit.

        Raises
        ------
        WorkerHangError
            Naming the ranks still computing a unit of ``label``.
        """
        if time.monotonic() - since <= self.timeout_s:
            return
        busy = [r for r in range(1, self.world_size) if self._read_status(r).get("store") == label
                and self._read_status(r).get("doing") == "unit"]
        raise self._hung(f"the end of {label}", busy or list(range(1, self.world_size)))

    # ------------------------------------------------------------------ progress
    def planned(self, n: int, done: int) -> None:
        """Add ``n`` units to rank 0's bar, ``done`` of them already stored.

        Parameters
        ----------
        n : int
            Units planned.
        done : int
            Units already stored.
        """
        if not self._progress:
            return
        if self._bar is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=0, desc=f"study ({self.world_size} workers)", unit="unit")
        self._bar.total += n
        self._bar.update(done)

    def advanced(self, n: int) -> None:
        """Count ``n`` more units stored on rank 0's bar.

        Parameters
        ----------
        n : int
            Units stored.
        """
        if self._bar is not None:
            self._bar.update(n)
