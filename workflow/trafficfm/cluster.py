"""Checks of the resources a run asks of its cluster, made once at start-up, before anything is
submitted: a wrong partition or GPU setting would otherwise show up as a failed sbatch after
other jobs were already queued, or as a job that never leaves the queue."""

from __future__ import annotations

import subprocess
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from .distributed import gpus_requested, nodes_requested


@dataclass(frozen=True)
class Partition:
    name: str
    gpus: int  # most GPUs a node of the partition has (0: a CPU-only partition)
    default: bool = False


def parse_sinfo(text: str) -> dict[str, Partition]:
    """Partitions from ``sinfo -h -o '%P|%G'`` (one line per partition and node GRES set; the
    default partition's name ends in ``*``)."""
    found: dict[str, Partition] = {}
    for line in text.splitlines():
        if "|" not in line:
            continue
        name, gres = (part.strip() for part in line.split("|", 1))
        default = name.endswith("*")
        name = name.rstrip("*")
        gpus = max((gpus_requested({"gres": g.split("(")[0]}) for g in gres.split(",")), default=0)
        old = found.get(name)
        found[name] = Partition(name, max(gpus, old.gpus if old else 0), default or bool(old and old.default))
    return found


def cluster_partitions() -> dict[str, Partition]:
    """The partitions of the cluster that sinfo talks to."""
    result = subprocess.run(["sinfo", "-h", "-o", "%P|%G"], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"sinfo failed (exit status {result.returncode}): {result.stderr.strip()}")
    return parse_sinfo(result.stdout)


def problems(rule: str, resources: Mapping, multinode_rules: Collection[str],
             partitions: Mapping[str, Partition] | None) -> list[str]:
    """What is wrong with one rule's resources; ``partitions`` is None when not running on SLURM."""
    out = []
    nodes, gpus = nodes_requested(resources), gpus_requested(resources)
    if nodes > 1 and rule not in multinode_rules:
        out.append(f"rule {rule}: nodes={nodes}, but it runs on one node; only "
                   f"{', '.join(sorted(multinode_rules))} can span nodes (one torchrun agent per node)")
    elif nodes > 1 and partitions is None:
        out.append(f"rule {rule}: nodes={nodes} needs the SLURM executor "
                   "(--workflow-profile workflow/profiles/slurm)")
    if nodes > 1 and resources.get("gpu") and not gpus_requested({"gres": resources.get("gres", "")}):
        out.append(f"rule {rule}: with nodes={nodes}, ask for GPUs per node with gres: 'gpu:N' "
                   f"(gpu={resources.get('gpu')} becomes sbatch --gpus, a total for the whole job)")
    if partitions is None:
        return out
    name = resources.get("slurm_partition") or next((p.name for p in partitions.values() if p.default), None)
    partition = partitions.get(name) if name else None
    if name and partition is None:
        out.append(f"rule {rule}: slurm_partition '{name}' does not exist on this cluster "
                   f"(sinfo lists: {', '.join(sorted(partitions)) or 'none'})")
    elif partition is None:
        out.append(f"rule {rule}: no slurm_partition set and the cluster has no default partition")
    elif gpus and partition.gpus == 0:
        out.append(f"rule {rule}: asks for {gpus} GPU(s) per node, but partition '{name}' has no GPUs "
                   "(sinfo shows no gpu GRES); choose a GPU partition or drop the GPU request")
    elif gpus > partition.gpus:
        out.append(f"rule {rule}: asks for {gpus} GPUs per node, but the nodes of partition '{name}' "
                   f"have at most {partition.gpus}")
    tasks = resources.get("tasks")
    if nodes > 1 and not gpus and tasks is not None and int(tasks) != nodes:
        out.append(f"rule {rule}: nodes={nodes} without GPUs needs tasks={nodes} (one launcher per node), "
                   f"not tasks={tasks}")
    per_gpu = resources.get("tasks_per_gpu", tasks)
    if gpus and per_gpu and int(per_gpu) >= 1:
        out.append(f"rule {rule}: with GPUs the executor plugin turns tasks={per_gpu} into --ntasks-per-gpu="
                   f"{per_gpu}, {gpus * int(per_gpu)} tasks per node for a job that starts its own launcher; "
                   "set tasks_per_gpu: 0")
    return out


def check(jobs: Iterable[tuple[str, Mapping]], multinode_rules: Collection[str], on_slurm: bool) -> None:
    """Raise ValueError listing every problem of the (rule, resources) pairs to be submitted."""
    jobs = list(jobs)
    partitions = cluster_partitions() if on_slurm and jobs else None
    found: dict[str, None] = {}
    for rule, resources in jobs:
        found.update(dict.fromkeys(problems(rule, resources, multinode_rules, partitions)))
    if found:
        raise ValueError("cluster resources refused before submitting anything:\n  " + "\n  ".join(found))
