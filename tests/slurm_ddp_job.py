"""A SLURM job's script for tests/test_slurm_launch.py: started by sbatch with two tasks on one
node, it relaunches itself the way a training rule given ``nodes: K`` does (an srun step of one
torchrun agent per task, one c10d rendezvous); each rank then records what process group it joined
and trains the tiny AllInOne model on its share of the global batch.

    python slurm_ddp_job.py DATASET OUT_DIR
"""

import json
import os
import socket
import sys
from pathlib import Path

from tiny_settings import tiny_allinone


def settings():
    """As tests/test_allinone_train.py's DDP test: 2 ranks x half the batch == 1 x the whole batch
    (a large Adam eps, per-task clipping of the global gradient, a moderate segmentation scale)."""
    return tiny_allinone(steps=3, adam_eps=1e-2, lr=1e-2, tasks={"det": {"grad_clip": 1.0},
                                                                 "seg": {"loss_weight": 1.0, "class_weight_power": 0.5}})


def main(dataset, out):
    import torch
    import torch.distributed as dist

    from trafficfm.allinone.train import train
    from trafficfm.distributed import init_distributed, run_under_torchrun
    from trafficfm.logs import setup_logging

    setup_logging()  # stderr: the job's SLURM log
    # two agents on this one node rehearse two nodes: the same srun + torchrun --nnodes 2 command
    if run_under_torchrun(1, nodes=1, agents_per_node=2, cpus_per_agent=1):
        return
    torch.set_num_threads(1)
    info = init_distributed("cpu")
    me = {"rank": info.rank, "world_size": dist.get_world_size(), "group_rank": int(os.environ["GROUP_RANK"]),
          "slurm_procid": int(os.environ["SLURM_PROCID"]), "slurm_step": os.environ.get("SLURM_STEP_ID"),
          "host": socket.gethostname(), "pid": os.getpid()}
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, me)  # what each rank sees of the group it is in
    Path(out, f"rank{info.rank}.json").write_text(json.dumps({"me": me, "group": everyone}))
    train(dataset, Path(out, "ddp.pt"), Path(out, "ckpt"), settings())
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:3])
