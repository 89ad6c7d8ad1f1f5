"""Distributed training in one place: starting a rule's script under ``torchrun`` when the rule
is given several GPUs, joining the process group ``torchrun`` describes, and the loss normaliser
and log averaging the training loops need."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist


log = logging.getLogger(__name__)


def under_torchrun() -> bool:
    """True inside a process that torchrun (torch.distributed.run) started."""
    return "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_RANK" in os.environ


def gpus_requested(resources: Mapping) -> int:
    """GPUs a Snakemake job was given (``resources: gpu: N``, as the SLURM profile sets); 0 if none."""
    try:
        return int(resources.get("gpu", 0) or 0)
    except (TypeError, ValueError):
        return 0


def torchrun_command(script: str, nproc: int, args: Sequence[str] = ()) -> list[str]:
    """One node, ``nproc`` processes of ``script`` (multi-node runs are started by hand, see the README)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={int(nproc)}",
            str(script), *map(str, args)]


def run_under_torchrun(nproc: int, script: str | None = None, args: Sequence[str] | None = None) -> bool:
    """Re-run this script under ``torchrun`` with ``nproc`` processes unless it already runs there or
    ``nproc`` < 2. Returns True when it did (the caller is done: its ranks did the work) and raises
    ``RuntimeError`` when a rank failed. Each rank re-executes the script, Snakemake's preamble
    included, so inside a rule the ranks see the same ``snakemake`` object."""
    if nproc < 2 or under_torchrun():
        return False
    cmd = torchrun_command(script or sys.argv[0], nproc, sys.argv[1:] if args is None else args)
    log.info("starting %d processes: %s", nproc, " ".join(cmd))
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))}
    result = subprocess.run(cmd, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"torchrun with {nproc} processes failed (exit status {result.returncode}): {' '.join(cmd)}")
    return True


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "cpu") -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment (RANK, WORLD_SIZE, ...);
    without those variables this is a single-process run and nothing is initialised."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank, world, local_rank)


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def global_normalizer(count: torch.Tensor) -> torch.Tensor:
    """Divisor that turns a per-process loss *sum* into this process's share of the global mean.

    DistributedDataParallel averages gradients over processes, so each process divides its sum by
    (global count / world size); a single process divides by its count. Never below 1/world.
    """
    c = count.detach().to(torch.float32).reshape(())
    w = world_size()
    if w > 1:
        c = c.clone()
        dist.all_reduce(c)
    return c.clamp(min=1.0) / w


def all_reduce_mean(values: dict[str, float], device: torch.device | str = "cpu") -> dict[str, float]:
    """Average scalar logs over processes (for logging only)."""
    if world_size() == 1 or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= world_size()
    return {k: float(v) for k, v in zip(keys, t)}
