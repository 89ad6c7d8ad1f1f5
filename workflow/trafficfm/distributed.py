"""Distributed training in one place: starting a rule's script under ``torchrun`` when the rule
is given several GPUs or several nodes, joining the process group ``torchrun`` describes, and the
loss normaliser and log averaging the training loops need."""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist


log = logging.getLogger(__name__)

# Inside a SLURM job step these describe the *step* (one task), not the allocation; an inner srun
# must not inherit them (the executor plugin's job step drops them for the same reason).
_KEEP_SLURM = {"SLURM_JOB_ID", "SLURM_JOBID", "SLURM_CONF", "SLURM_CLUSTER_NAME", "SLURM_SUBMIT_DIR",
               "SLURM_SUBMIT_HOST"}


def under_torchrun() -> bool:
    """True inside a process that torchrun (torch.distributed.run) started."""
    return "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_RANK" in os.environ


def _int(value, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def gpus_requested(resources: Mapping) -> int:
    """GPUs per node a Snakemake job was given: ``gres: gpu:N`` or ``gpu:<type>:N`` (per node, as
    the SLURM profile sets) or else ``gpu: N`` (one machine, or the plugin's ``--gpus``); 0 if none."""
    gres = str(resources.get("gres", "") or "")
    match = re.search(r"(?:^|,)gpu(?::[^:,]+)?:(\d+)", gres)
    if match:
        return int(match.group(1))
    return _int(resources.get("gpu", 0) or 0)


def nodes_requested(resources: Mapping) -> int:
    """Nodes a Snakemake job was given (``resources: nodes: K``, passed to sbatch by the plugin)."""
    return max(1, _int(resources.get("nodes", 1) or 1, 1))


def torchrun_command(script: str, nproc: int, args: Sequence[str] = (), nnodes: int = 1,
                     endpoint: str | None = None, run_id: str = "trafficfm") -> list[str]:
    """``nproc`` processes of ``script`` on this node; with ``nnodes`` > 1 agents this is one agent
    of a c10d rendezvous at ``endpoint`` (host:port) that every agent joins."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={int(nproc)}"]
    if nnodes > 1:
        cmd += [f"--nnodes={int(nnodes)}", "--rdzv_backend=c10d", f"--rdzv_endpoint={endpoint}",
                f"--rdzv_id={run_id}", "--max_restarts=0"]
    else:
        cmd.append("--standalone")
    return [*cmd, str(script), *map(str, args)]


def srun_command(nodes: int, agents_per_node: int = 1, cpus_per_agent: int | None = None) -> list[str]:
    """A job step of one task per node (``agents_per_node`` > 1 only to rehearse several nodes on
    one), inside the current allocation: ``--overlap`` because the rule's own step (the executor
    plugin's ``srun -n1``) already holds the CPUs; one failing agent ends the others."""
    cmd = ["srun", "--overlap", f"--nodes={nodes}", f"--ntasks={nodes * agents_per_node}",
           f"--ntasks-per-node={agents_per_node}", "--kill-on-bad-exit=1"]
    if cpus_per_agent:
        cmd.append(f"--cpus-per-task={int(cpus_per_agent)}")
    return cmd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def launch_command(script: str, args: Sequence[str], nproc: int, nodes: int = 1, agents_per_node: int = 1,
                   cpus_per_agent: int | None = None) -> list[str]:
    """The command that runs ``script`` on ``nproc`` processes per agent: torchrun alone on one
    node, or (several agents) srun starting one torchrun agent per node, all joining a rendezvous
    on this host (the first agent's node), named after the SLURM job."""
    agents = nodes * agents_per_node
    if agents <= 1:
        return torchrun_command(script, nproc, args)
    endpoint = f"{socket.gethostname()}:{_free_port()}"
    run_id = f"slurm-{os.environ.get('SLURM_JOB_ID', os.getpid())}"
    return [*srun_command(nodes, agents_per_node, cpus_per_agent),
            *torchrun_command(script, nproc, args, nnodes=agents, endpoint=endpoint, run_id=run_id)]


def _launch_env(nproc: int, agents: int, cpus: int | None) -> dict[str, str]:
    env = dict(os.environ)
    if agents > 1:
        env = {k: v for k, v in env.items()
               if not (k.startswith(("SRUN_", "SBATCH_")) or (k.startswith("SLURM_") and k not in _KEEP_SLURM))}
    per_rank = max(1, (cpus or os.cpu_count() or 1) // max(1, nproc))
    env.setdefault("OMP_NUM_THREADS", str(per_rank))
    return env


def run_under_torchrun(nproc: int, script: str | None = None, args: Sequence[str] | None = None, nodes: int = 1,
                       agents_per_node: int = 1, cpus_per_agent: int | None = None) -> bool:
    """Re-run this script under ``torchrun`` (``nproc`` processes per node) unless it already runs
    there or there is nothing to spread (one process, one node). With ``nodes`` > 1 an srun step
    starts one torchrun agent per node of the SLURM allocation. Returns True when it did (the
    caller is done: its ranks did the work) and raises ``RuntimeError`` when a rank failed. Each
    rank re-executes the script, Snakemake's preamble included, so inside a rule the ranks see the
    same ``snakemake`` object."""
    nproc, agents = max(1, nproc), nodes * agents_per_node
    if (nproc < 2 and agents < 2) or under_torchrun():
        return False
    if agents > 1 and "SLURM_JOB_ID" not in os.environ:
        raise RuntimeError(f"{nodes} nodes asked, but this process is not inside a SLURM job; "
                           "multi-node training runs through the SLURM executor (see the README)")
    cmd = launch_command(script or sys.argv[0], sys.argv[1:] if args is None else args, nproc, nodes,
                         agents_per_node, cpus_per_agent)
    log.info("starting %d processes (%d torchrun agent(s) x %d): %s", agents * nproc, agents, nproc, " ".join(cmd))
    result = subprocess.run(cmd, env=_launch_env(nproc, agents, cpus_per_agent))
    if result.returncode != 0:
        raise RuntimeError(f"torchrun with {agents} agent(s) x {nproc} processes failed "
                           f"(exit status {result.returncode}): {' '.join(cmd)}")
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
