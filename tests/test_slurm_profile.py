"""The shipped SLURM profile as the executor plugin turns it into sbatch options, and the
start-up checks of a run's cluster resources (trafficfm.cluster), without a cluster."""

from __future__ import annotations

import re

import pytest
import yaml

from trafficfm.cluster import Partition, parse_sinfo, problems
from workflow_runner import ROOT, run_snakemake

PROFILE = yaml.safe_load((ROOT / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
TRAINING = ("train_allinone", "finetune_retrieval")
PARTITIONS = {"cpu": Partition("cpu", 0, default=True), "gpu": Partition("gpu", 8)}


class _Resources(dict):
    __getattr__ = dict.__getitem__


class _Job:
    """What the plugin reads of a Snakemake job to build its sbatch call."""

    def __init__(self, rule):
        res = {**PROFILE["default-resources"], **PROFILE["set-resources"].get(rule, {})}
        self.resources, self.threads, self.name = _Resources(res), PROFILE["set-threads"].get(rule, 1), rule


def sbatch_options(job: _Job) -> str:
    """The sbatch options the pinned plugin builds for ``job`` (skipped without the plugin)."""
    submit_string = pytest.importorskip("snakemake_executor_plugin_slurm.submit_string")
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    params = {"run_uuid": "x", "slurm_logfile": "x.log", "comment_str": f"rule_{job.name}", "account": "",
              "partition": f"-p {job.resources.get('slurm_partition')}", "workdir": "."}
    return submit_string.get_submit_command(job, params) + set_gres_string(job)


@pytest.mark.parametrize("rule", TRAINING)
def test_training_job_is_one_task_per_node_with_all_its_gpus(rule):
    options = sbatch_options(_Job(rule))
    assert "--ntasks-per-gpu" not in options and "--ntasks=" not in options  # sbatch: 1 task per node
    assert "--nodes=1" in options and "--gres=gpu:8" in options and "--gpus" not in options
    assert "--cpus-per-task=32" in options and "-p gpu" in options
    assert not problems(rule, _Job(rule).resources, TRAINING, PARTITIONS)


def test_the_gpu_trap_is_real_and_refused():
    """Without tasks_per_gpu: 0 the plugin reads `tasks` of a GPU job as --ntasks-per-gpu."""
    job = _Job("train_allinone")
    del job.resources["tasks_per_gpu"]
    assert "--ntasks-per-gpu=1" in sbatch_options(job)  # 8 tasks per node, each its own launcher
    assert any("--ntasks-per-gpu=1" in p for p in problems("train_allinone", job.resources, TRAINING, PARTITIONS))


def test_every_rule_of_the_profile_passes_the_checks():
    for rule in PROFILE["set-resources"]:
        assert problems(rule, _Job(rule).resources, TRAINING, PARTITIONS) == [], rule


def test_sinfo_partitions():
    text = "cpu*|(null)\ngpu|gpu:a100:8(S:0-1)\ngpu|gpu:4\nmixed|gpu:2,tmpdisk:100\n"
    assert parse_sinfo(text) == {"cpu": Partition("cpu", 0, True), "gpu": Partition("gpu", 8),
                                 "mixed": Partition("mixed", 2)}


@pytest.mark.parametrize("rule, resources, on_slurm, message", [
    ("train_allinone", {"slurm_partition": "gpux"}, True, "slurm_partition 'gpux' does not exist"),
    ("predict_allinone", {"gres": "gpu:1"}, True, "partition 'cpu' has no GPUs"),
    ("predict_allinone", {"slurm_partition": "gpu", "gres": "gpu:16"}, True, "have at most 8"),
    ("convert_allinone", {"nodes": 2}, True, "nodes=2, but it runs on one node"),
    ("train_allinone", {"nodes": 2}, False, "nodes=2 needs the SLURM executor"),
    ("train_allinone", {"nodes": 2, "slurm_partition": "gpu", "gpu": 8}, True, "gres: 'gpu:N'"),
    ("train_allinone", {"nodes": 2, "tasks": 1}, True, "needs tasks=2"),
])
def test_bad_settings_are_named(rule, resources, on_slurm, message):
    found = problems(rule, resources, TRAINING, PARTITIONS if on_slurm else None)
    assert any(message in p and p.startswith(f"rule {rule}: ") for p in found), found


def test_two_nodes_of_eight_gpus():
    job = _Job("train_allinone")
    job.resources["nodes"] = 2
    assert problems("train_allinone", job.resources, TRAINING, PARTITIONS) == []
    options = sbatch_options(job)
    assert "--nodes=2" in options and "--gres=gpu:8" in options and "--ntasks" not in options


def test_a_rule_behind_the_selection_checkpoint_is_checked_at_start_up(tmp_path):
    """predict_retrieval's job joins the DAG only after select_retrieval has run; its bad setting
    must still stop the run before the first job (nothing drawn, nothing converted)."""
    result = run_snakemake(tmp_path, "--set-resources", "predict_retrieval:nodes=2",
                           configs=[ROOT / "tests" / "tiny.yaml"], check=False)
    assert result.returncode != 0
    assert "rule predict_retrieval: nodes=2, but it runs on one node" in result.stderr, result.stderr[-3000:]
    assert not (tmp_path / "results").exists()
