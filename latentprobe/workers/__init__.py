"""A study across GPUs and nodes: ``latentprobe run STUDY --out DIR`` under ``torchrun`` or ``srun``, or with
``--workers N`` on one machine.

Every worker runs the same command. Each finds its rank in the environment (:func:`launch_from_env`), loads its
own copy of the model on its device, takes its share of the clean run (:mod:`latentprobe.workers.clean`: units of
one batch, by prompt length) and of every analysis's units (:mod:`latentprobe.sweep.sharded`), and writes them
into its own stores; rank 0 merges, writes the tables and the report, and shows the one progress bar.
``torch.distributed`` (gloo on the CPU, NCCL on GPUs) forms the group and provides the barriers, nothing more:
results move through the study folder, so a killed run resumes with any number of workers, and the tables do not
depend on how many there were. The design follows VLMEvalKit's ``torchrun`` inference (open-compass/VLMEvalKit
at e8e78f05f3080fe28154f2130321f17951c3be94: ``vlmeval/inference.py`` lines 109-110 deal the examples
round-robin, ``range(rank, len(dataset), world_size)``; lines 226-245 put a ``dist.barrier()`` after the
per-rank result files, then rank 0 loads every rank's file and asserts that every example index is present;
``run.py`` lines 39-47 give each local rank its own group of GPUs through ``CUDA_VISIBLE_DEVICES`` and lines
628-633 form the group with NCCL and a ``DIST_TIMEOUT`` of 3600 s). Unlike VLMEvalKit, whose per-rank files are
named by the world size (``{rank}{world_size}_{dataset}.pkl``, so a rerun with another count starts over), a
unit here is stored under its own key, whoever computed it.

transformers 5.24 (``modeling_utils.py``, ``from_pretrained``) only logs a message when ``device_map="auto"``
meets ``WORLD_SIZE`` (it does not switch to tensor parallelism unless ``tp_plan`` is given); each worker here
loads with ``device_map="cuda:LOCAL_RANK"`` when the study leaves ``device_map`` unset or ``"auto"`` and CUDA is
available.
"""

from latentprobe.workers.group import DEFAULT_TIMEOUT_S, ENV_TIMEOUT, LOGS_DIR, Launch, Workers, launch_from_env

__all__ = ["Launch", "Workers", "launch_from_env", "LOGS_DIR", "ENV_TIMEOUT", "DEFAULT_TIMEOUT_S"]
