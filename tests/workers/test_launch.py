"""Rank discovery from torchrun's and Slurm's environments, the --workers launcher's arguments, the clean run's
units."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from latentprobe import cli
from latentprobe.errors import CLIUsageError, WorkerError
from latentprobe.workers import Launch, launch_from_env
from latentprobe.workers.clean import clean_units
from latentprobe.workers.launch import torchrun_args


def test_torchrun_environment():
    env = {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "3", "LOCAL_WORLD_SIZE": "4", "MASTER_ADDR": "n1",
           "MASTER_PORT": "29500", "TORCHELASTIC_RUN_ID": "abc", "SLURM_PROCID": "0"}
    assert launch_from_env(env) == Launch(3, 8, 3, 4, "n1:29500/abc")  # torchrun's variables win over Slurm's


def test_slurm_environment_needs_master_addr():
    env = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_NTASKS_PER_NODE": "4(x2)",
           "SLURM_JOB_ID": "77", "SLURM_STEP_ID": "0"}
    assert launch_from_env(env) is None  # a single `latentprobe run` inside a job stays one process
    got = launch_from_env({**env, "MASTER_ADDR": "n1", "MASTER_PORT": "29577"})
    assert got == Launch(5, 8, 1, 4, "n1:29577/77.0")


@pytest.mark.parametrize("env", [{"RANK": "x", "WORLD_SIZE": "2"}, {"RANK": "2", "WORLD_SIZE": "2"}])
def test_malformed_ranks_are_refused(env):
    with pytest.raises(WorkerError, match="RANK"):
        launch_from_env(env)


def test_torchrun_args_start_the_cli_module():
    args = torchrun_args(3, ["run", "s.toml", "--out", "d"])
    assert args[:3] == ["--standalone", "--nnodes=1", "--nproc-per-node=3"]
    assert args[3:] == ["--module", "latentprobe.cli", "run", "s.toml", "--out", "d"]
    from torch.distributed.run import parse_args

    parsed = parse_args(args)
    assert parsed.module and parsed.training_script == "latentprobe.cli" and parsed.nproc_per_node == "3"
    with pytest.raises(CLIUsageError):
        torchrun_args(0, ["run"])


def test_workers_option_is_refused_under_torchrun(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    study = tmp_path / "s.toml"
    study.write_text("")
    res = CliRunner().invoke(cli.main, ["run", str(study), "--out", str(tmp_path / "o"), "--workers", "2"])
    assert res.exit_code == 2 and "leave it out" in res.output


def test_clean_units_put_long_prompts_first_and_keep_batches():
    prompts = ["a" * n for n in (3, 9, 1, 9, 5, 7, 2)]
    units = clean_units(prompts, 3)
    assert units == [[1, 3, 5], [4, 0, 6], [2]]
    assert sorted(i for u in units for i in u) == list(range(len(prompts)))
    # dealt round-robin, two workers get 2 and 1 units: each starts with a long one
    assert [units[r::2] for r in range(2)] == [[[1, 3, 5], [2]], [[4, 0, 6]]]


def test_rank_0_shows_one_bar_of_units_done_of_units_planned(tmp_path):
    from latentprobe.workers import Workers

    w = Workers(Launch(0, 1), tmp_path, connect=False, progress=True)
    w.planned(10, 3)  # an analysis plans 10 units, 3 stored by an earlier run
    w.advanced(2)
    w.planned(4, 0)  # the next analysis
    assert (w._bar.n, w._bar.total) == (5, 14)
    w.close()
    other = Workers(Launch(1, 2), tmp_path, connect=False, progress=True)
    other.planned(10, 3)
    assert other._bar is None  # only rank 0 shows progress
    assert "rank 1 of 2" in (tmp_path / "logs" / "rank-1.log").read_text()
