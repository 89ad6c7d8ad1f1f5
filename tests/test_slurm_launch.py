"""Multi-node launch: the commands a training rule given ``nodes``/GPUs builds, and a real run of
two torchrun agents started by srun inside a SLURM job of the test cluster (gloo on CPU), which
must form one process group and train to the same weights as one process on the same batch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from slurm_ddp_job import settings
from trafficfm.allinone.synthetic import make_synthetic_allinone
from trafficfm.allinone.train import train
from trafficfm.distributed import gpus_requested, launch_command, nodes_requested

HERE = Path(__file__).parent


def test_gpus_and_nodes_from_rule_resources():
    assert gpus_requested({"gres": "gpu:8"}) == 8
    assert gpus_requested({"gres": "gpu:a100:4", "gpu": 1}) == 4  # gres is per node and wins
    assert gpus_requested({"gpu": 2}) == 2
    assert gpus_requested({}) == 0 and gpus_requested({"gres": "tmpdisk:100"}) == 0
    assert nodes_requested({"nodes": 4}) == 4 and nodes_requested({}) == 1


def test_one_node_is_torchrun_alone():
    cmd = launch_command("train.py", ["--x"], nproc=8)
    assert cmd[1:4] == ["-m", "torch.distributed.run", "--nproc_per_node=8"]
    assert "--standalone" in cmd and "srun" not in cmd and cmd[-2:] == ["train.py", "--x"]


def test_several_nodes_start_one_agent_per_node(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    cmd = launch_command("train.py", [], nproc=8, nodes=4, cpus_per_agent=32)
    srun, torchrun = cmd[:cmd.index(sys.executable)], cmd[cmd.index(sys.executable):]
    assert srun[0] == "srun" and {"--nodes=4", "--ntasks=4", "--ntasks-per-node=1", "--overlap",
                                  "--cpus-per-task=32"} <= set(srun)
    assert {"--nnodes=4", "--nproc_per_node=8", "--rdzv_backend=c10d", "--rdzv_id=slurm-77"} <= set(torchrun)
    assert any(a.startswith("--rdzv_endpoint=") and a.rsplit(":", 1)[1].isdigit() for a in torchrun)
    assert "--standalone" not in torchrun


@pytest.mark.slurm
def test_two_srun_agents_join_one_rendezvous_and_match_one_process(slurm_cluster, tmp_path, one_thread):
    dataset = make_synthetic_allinone(tmp_path / "data", tmp_path / "root")
    out = tmp_path / "out"
    out.mkdir()
    job = [sys.executable, str(HERE / "slurm_ddp_job.py"), str(dataset), str(out)]
    result = subprocess.run(["sbatch", "--wait", "--parsable", "--nodes=1", "--ntasks=2", "--cpus-per-task=1",
                             "--mem=4000", "-t", "10", "-o", str(tmp_path / "job.log"), "--wrap",
                             " ".join(job)], capture_output=True, text=True, env=slurm_cluster.env)
    job_log = (tmp_path / "job.log").read_text() if (tmp_path / "job.log").exists() else ""
    assert result.returncode == 0, result.stderr + job_log
    assert "srun --overlap --nodes=1 --ntasks=2 --ntasks-per-node=2" in job_log
    assert "--nnodes=2" in job_log and "--rdzv_backend=c10d" in job_log

    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    for seen in ranks:  # each rank sees both agents' processes in its group
        assert seen["me"]["world_size"] == 2
        assert sorted(m["group_rank"] for m in seen["group"]) == [0, 1]  # two torchrun agents
        assert sorted(m["slurm_procid"] for m in seen["group"]) == [0, 1]  # two SLURM tasks
        assert len({m["slurm_step"] for m in seen["group"]}) == 1  # of one srun step
    train(dataset, tmp_path / "single.pt", tmp_path / "ckpt_single", settings())
    single = torch.load(tmp_path / "single.pt", map_location="cpu", weights_only=False)["state_dict"]
    ddp = torch.load(out / "ddp.pt", map_location="cpu", weights_only=False)["state_dict"]
    assert single.keys() == ddp.keys()
    for k in single:
        torch.testing.assert_close(single[k], ddp[k], atol=1e-5, rtol=1e-4, msg=k)
