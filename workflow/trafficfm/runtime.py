"""What every model rule's script sets up, in one place. Import this module before torch: it sets
the environment variables that torch and the Hugging Face libraries read when they load."""

from __future__ import annotations

import logging
import os

# The default config needs no model hub; a run with internet may unset these to download weights.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def passive_omp_threads() -> None:
    """Let idle OpenMP threads sleep instead of spinning (call before torch is imported). Right for a
    process that shares its cores with data-loading workers: spinning threads would take the cores
    the workers need. A process alone on its cores is faster with the default (spinning: the
    AllInOne training step is about 15 % faster on 2 cores). Export OMP_WAIT_POLICY to override."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def start(log: str | None = None, threads: int | None = None) -> logging.Logger:
    """Log to the rule's log file, and on CPU use ``threads`` threads shared among the processes of
    a torchrun launch (each rank takes its share)."""
    import torch

    from .logs import setup_logging

    logger = setup_logging(log)
    if threads and not torch.cuda.is_available():
        ranks_here = os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1"))
        torch.set_num_threads(max(1, int(threads) // int(ranks_here)))
    return logger


def settings(snakemake):
    """The run's settings (config.yaml and the --configfile overlays Snakemake merged), validated
    and frozen by the same loader as everywhere else; in a job of one experiment (a rule with an
    experiment wildcard), its track's section is that experiment's."""
    from .config import settings_of
    from .experiments import job_config

    return settings_of(job_config(snakemake.config, dict(snakemake.wildcards.items())),
                       source="config (config.yaml and --configfile overlays)")


def ran_as_ranks(snakemake) -> bool:
    """Inside a training rule: set up its log and, when the rule was given several GPUs
    (``resources: gpu=N`` or ``gres: gpu:N``) or several SLURM nodes (``nodes: K``), run this same
    script under torchrun, one agent per node. True when the ranks did the work (the caller is
    done); False when the caller should train in this process."""
    from .distributed import gpus_requested, nodes_requested, run_under_torchrun

    start(snakemake.log[0], snakemake.threads)
    resources = snakemake.resources
    return run_under_torchrun(gpus_requested(resources), nodes=nodes_requested(resources),
                              cpus_per_agent=resources.get("cpus_per_task") or snakemake.threads)
