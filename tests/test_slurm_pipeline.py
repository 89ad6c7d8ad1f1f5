"""The tiny pipeline through the shipped SLURM profile on the one-node test cluster: every
non-local rule is a SLURM job, both zips validate, a second run submits nothing; a training job
cancelled or killed by its time limit resumes from its checkpoint; Ctrl-C cancels the jobs; a
wrong resource setting is refused before anything is submitted."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from workflow_runner import ROOT

pytestmark = pytest.mark.slurm

PROFILE = ROOT / "workflow" / "profiles" / "slurm" / "config.yaml"
CONFIGS = (ROOT / "config.yaml", ROOT / "tests" / "tiny.yaml", ROOT / "tests" / "tiny-models.yaml")
ZIPS = {"allinone": "results/submissions/allinone.zip", "retrieval": "results/submissions/retrieval.zip"}
# The test overlay: the test cluster has one CPU-only partition and two CPUs; the shipped profile's
# partitions map onto it, sizes shrink, GPU requests go, status checks start early. Everything
# else (localrules, nodes, tasks, the accounting-less settings, retries) is the shipped profile's.
PARTITIONS = {"cpu": "debug", "gpu": "debug"}
SIZES = {"mem_mb": 1500, "cpus_per_task": 1, "runtime": 20}
RUN = {"jobs": 4, "latency-wait": 5, "slurm-init-seconds-before-status-checks": 2}


def make_profile(folder: Path, **rule_changes) -> Path:
    """The shipped profile with the test overlay (plus ``rule_changes``: rule -> resources)."""
    profile = yaml.safe_load(PROFILE.read_text())
    profile.update(RUN)
    profile["set-threads"] = {rule: 1 for rule in profile["set-threads"]}

    def shrink(res):
        res = {k: v for k, v in res.items() if k not in ("gres", "gpu")}
        if "slurm_partition" in res:
            res["slurm_partition"] = PARTITIONS[res["slurm_partition"]]
        return {**res, **{k: SIZES[k] for k in SIZES if k in res}}

    profile["default-resources"] = shrink(profile["default-resources"])
    rules = {rule: shrink(res) for rule, res in profile["set-resources"].items()}
    for rule, res in rule_changes.items():
        rules[rule] = {**rules.get(rule, {}), **res}
    profile["set-resources"] = rules
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return folder


def snakemake_cmd(workdir: Path, profile: Path, *args: str, configs=()) -> list[str]:
    return [sys.executable, "-m", "snakemake", *args, "--workflow-profile", str(profile), "--snakefile",
            str(ROOT / "Snakefile"), "--directory", str(workdir), "--configfile", *map(str, CONFIGS),
            *map(str, configs)]


def snakemake(workdir, profile, *args, configs=(), check=True) -> subprocess.CompletedProcess:
    result = subprocess.run(snakemake_cmd(workdir, profile, *args, configs=configs), capture_output=True,
                            text=True, timeout=1200)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout[-3000:]}\n{result.stderr[-8000:]}")
    return result


def rule_jobs(cluster, rule: str) -> list[dict]:
    """SLURM jobs the plugin submitted for ``rule`` (it puts rule_<name>[_wildcards_...] in the comment)."""
    return [j for j in cluster.jobs() if re.fullmatch(rf"rule_{rule}(_wildcards_.*)?", j["comment"])]


@pytest.fixture(scope="module")
def built(slurm_cluster, tmp_path_factory):
    base = tmp_path_factory.mktemp("slurm_pipeline")
    profile = make_profile(base / "profile")
    before = {j["id"] for j in slurm_cluster.jobs()}
    result = snakemake(base / "work", profile)
    return {"work": base / "work", "profile": profile, "base": base, "log": result.stderr,
            "jobs": [j for j in slurm_cluster.jobs() if j["id"] not in before]}


def test_every_non_local_rule_is_one_slurm_job(built, slurm_cluster):
    ran = re.findall(r"^\[.*\]\n(local)?rule (\w+):\n(?:    .*\n)*?    jobid: (\d+)", built["log"], re.M)
    remote = sorted(rule for local, rule, _ in ran if not local)
    local = {rule for local, rule, _ in ran if local}
    assert {"fetch_archive", "extract_archive", "package_allinone", "package_retrieval", "score_allinone",
            "score_retrieval", "allinone_figures", "retrieval_figures", "data_report"} <= local
    assert {"convert_allinone", "train_allinone", "finetune_retrieval", "predict_allinone"} <= set(remote)
    submitted = sorted(re.fullmatch(r"rule_(\w+?)(_wildcards_.*)?", j["comment"]).group(1) for j in built["jobs"])
    assert submitted == remote  # one SLURM job per non-local rule, none for the local ones
    assert all(j["state"] == "COMPLETED" and j["partition"] == "debug" for j in built["jobs"]), built["jobs"]
    for job in built["jobs"]:  # the plugin's logs, and slurmd launched each batch job
        rule = re.fullmatch(r"(rule_\w+?)(_wildcards_.*)?", job["comment"]).group(1)
        assert list((built["work"] / ".snakemake" / "slurm_logs" / rule).glob(f"**/{job['id']}.log")), job
        assert re.search(rf"Launching batch job {job['id']}\b", slurm_cluster.slurmd_log()), job


def test_both_zips_validate(built):
    for track, name in ZIPS.items():
        result = subprocess.run([sys.executable, "-m", "trafficfm.submission.cli", track,
                                 str(built["work"] / name), "--data", str(built["work"] / f"results/data/{track}"),
                                 "--no-report"], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_second_run_submits_nothing(built, slurm_cluster):
    before = {j["id"] for j in slurm_cluster.jobs()}
    result = snakemake(built["work"], built["profile"])
    assert "Nothing to be done" in result.stdout + result.stderr
    assert {j["id"] for j in slurm_cluster.jobs()} == before


@pytest.mark.parametrize("change, message", [
    ({"convert_allinone": {"slurm_partition": "nosuch"}},
     "rule convert_allinone: slurm_partition 'nosuch' does not exist on this cluster (sinfo lists: debug)"),
    # Its job joins the DAG only after the selection checkpoint: checked by the rule's own settings.
    ({"predict_retrieval": {"gres": "gpu:1"}},
     "rule predict_retrieval: asks for 1 GPU(s) per node, but partition 'debug' has no GPUs"),
    ({"convert_retrieval": {"nodes": 2}}, "rule convert_retrieval: nodes=2, but it runs on one node"),
])
def test_bad_resource_setting_is_refused_before_submitting(built, slurm_cluster, change, message):
    profile = make_profile(built["base"] / f"bad-{next(iter(change))}", **change)
    before = {j["id"] for j in slurm_cluster.jobs()}
    result = snakemake(built["work"], profile, "--forcerun", "convert_allinone", "convert_retrieval",
                       "predict_retrieval", check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr[-3000:]
    assert {j["id"] for j in slurm_cluster.jobs()} == before  # nothing was submitted


# ------------------------------------------------------------------------------------------ faults
# A training that runs until it is stopped (a checkpoint every 2 steps), limited to 1 minute.
LONG_TRAINING = {"allinone": {"train": {"steps": 100000, "checkpoint_every": 2, "keep_checkpoints": 2}}}
MODEL = "results/allinone/experiments/base/model.pt"  # the default experiment's training


def _wait(what: str, ready, timeout: float = 240, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = ready()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"snakemake exited ({proc.returncode}) while waiting for {what}: see {proc.args[-1]}")
        time.sleep(1)
    raise AssertionError(f"waited {timeout} s for {what}")


def _start(cmd: list[str], log: Path) -> subprocess.Popen:
    """snakemake in the background, its output to ``log`` (named last in ``args`` for messages)."""
    def interruptible():  # a shell's background job inherits an ignored SIGINT; Ctrl-C must reach it
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, preexec_fn=interruptible)
    proc.args = [*proc.args, str(log)]
    return proc


def _running_training(cluster, known: set[str]):
    return next((j for j in rule_jobs(cluster, "train_allinone") if j["state"] == "RUNNING" and j["id"] not in known),
                None)


def _resumed_steps(log: Path) -> list[int]:
    text = log.read_text(errors="replace") if log.exists() else ""
    return [int(s) for s in re.findall(r"resuming from .*\(step (\d+)\)", text)]


def test_cancelled_and_timed_out_training_resume_and_ctrl_c_cancels(built, slurm_cluster):
    work = built["work"]
    overlay = built["base"] / "long-training.yaml"
    overlay.write_text(yaml.safe_dump(LONG_TRAINING))
    profile = make_profile(built["base"] / "profile-1min", train_allinone={"runtime": 1})
    log, checkpoints = work / "logs" / "train_allinone" / "base.log", work / "results/allinone/experiments/base/checkpoints"
    cmd = snakemake_cmd(work, profile, MODEL, configs=[overlay])
    shutil.rmtree(checkpoints, ignore_errors=True)  # the pipeline's own, from other settings
    known = {j["id"] for j in rule_jobs(slurm_cluster, "train_allinone")}

    # 1. scancel the running training once it has a checkpoint: the shipped profile's retry
    #    resubmits it, and the new job resumes from that checkpoint
    proc = _start(cmd, built["base"] / "run1.log")
    job = _wait("a running training job", lambda: _running_training(slurm_cluster, known), proc=proc)
    _wait("a checkpoint", lambda: list(checkpoints.glob("*.pt")), proc=proc)
    subprocess.run(["scancel", job["id"]], check=True)
    known.add(job["id"])
    retry = _wait("the retried job", lambda: _running_training(slurm_cluster, known), proc=proc)
    first = _wait("the retry to resume", lambda: _resumed_steps(log), proc=proc)[0]
    assert first >= 2
    states = {j["id"]: j["state"] for j in rule_jobs(slurm_cluster, "train_allinone")}
    assert states[job["id"]] == "CANCELLED"

    # 2. the retry runs into its 1-minute limit: SLURM kills it, snakemake gives up ...
    proc.wait(timeout=300)
    assert proc.returncode != 0
    assert {j["id"]: j["state"] for j in rule_jobs(slurm_cluster, "train_allinone")}[retry["id"]] == "TIMEOUT"
    # ... and a rerun (without the limit) resumes from a later checkpoint than the first resume
    proc = _start(snakemake_cmd(work, built["profile"], MODEL, configs=[overlay]), built["base"] / "run2.log")
    known.add(retry["id"])
    rerun = _wait("the rerun's job", lambda: _running_training(slurm_cluster, known), proc=proc)
    _wait("the rerun to resume from a later checkpoint", lambda: [s for s in _resumed_steps(log) if s > first],
          proc=proc)

    # 3. Ctrl-C on snakemake cancels its job
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    _wait("the job to be cancelled", lambda: {j["id"]: j["state"] for j in slurm_cluster.jobs()}[rerun["id"]]
          == "CANCELLED", timeout=60)
    assert not (work / MODEL).exists()
