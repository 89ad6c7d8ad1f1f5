# The workflow's vocabulary, included first: the settings, every path and the split names by role
# (trafficfm.paths), the release plan and the helpers. Rule files use only the names defined here.
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from trafficfm import paths
from trafficfm.config import settings_of
from trafficfm.data.demo import label_space
from trafficfm.data.source import plan_release
from trafficfm.paths import (
    ALLINONE_CHECKPOINTS,
    ALLINONE_DATA,
    ALLINONE_DIR,
    ALLINONE_MANIFEST,
    ALLINONE_MODEL,
    ALLINONE_PREDICTIONS,
    ARCHIVE_DIR,
    DATA_REPORT,
    DEMO_DIR,
    RELEASE_DIR,
    RETRIEVAL_CHECKPOINTS,
    RETRIEVAL_DATA,
    RETRIEVAL_DIR,
    RETRIEVAL_MANIFEST,
    RETRIEVAL_MODEL,
    SUBMISSIONS_DIR,
)

# Every setting, validated and frozen; rules pass sections to their scripts with .to_dict().
SETTINGS = settings_of(config, source="config (config.yaml and --configfile overlays)")
PLAN = plan_release(SETTINGS.data)
ENV = "../../envs/trafficfm.yaml"

# Split names by role (.train, .val, .test), from data.layout: the validation split is predicted,
# evaluated, packaged and scored like the test split.
AIO = paths.splits(SETTINGS.data, "allinone")
RET = paths.splits(SETTINGS.data, "retrieval")
ALLINONE_TABLES = paths.allinone_tables(SETTINGS.data)
RETRIEVAL_TABLES = paths.retrieval_tables(SETTINGS.data)
ARCHIVES_BY_FILE = {a.file: a for a in PLAN.archives.values()}


def archive_entry(wildcards):
    return ARCHIVES_BY_FILE[wildcards.archive]


def demo_inputs(wildcards):
    """The demo archives are made by a rule, so the fetch depends on them."""
    if PLAN.source != "demo":
        return {}
    return {
        "archive": f"{DEMO_DIR}/{wildcards.archive}",
        "sums": f"{DEMO_DIR}/SHA256SUMS",
    }


def extracted_markers(track):
    """Inputs that make a track's release root exist (none for a local extracted tree)."""
    return [
        f"{RELEASE_DIR}/.extracted/{a.file}.json" for a in PLAN.track_archives(track)
    ]


def num_cls_classes():
    value = SETTINGS.data.cls_num_classes
    if value:
        return value
    return label_space(SETTINGS.data.demo) if PLAN.source == "demo" else 196


def allinone_split_tables(split):
    """The canonical AllInOne tables of one split."""
    return [
        f"{ALLINONE_DATA}/{task}_{split}.{ext}"
        for task, ext in (("cls", "csv"), ("det", "json"), ("seg", "csv"))
    ]


def final_outputs():
    """The default targets: data report, validation metrics and report figures of both tracks,
    both submissions and the organisers' scores of the validation splits."""
    return [
        f"{DATA_REPORT}/summary.json",
        f"{ALLINONE_DIR}/val_metrics.json",
        f"{RETRIEVAL_DIR}/val_metrics.json",
        f"{ALLINONE_DIR}/figures/per_class.png",
        f"{ALLINONE_DIR}/figures/prediction_examples.png",
        f"{RETRIEVAL_DIR}/figures/training_curve.png",
        f"{RETRIEVAL_DIR}/figures/ranking_examples.png",
        *paths.submission_outputs(),
        *paths.validation_score_outputs(SETTINGS.data),
    ]


# The rules whose script starts its own launcher (trafficfm.runtime.ran_as_ranks): the only ones
# a `nodes: K` resource may spread over several nodes.
MULTINODE_RULES = {"train_allinone", "finetune_retrieval"}


def check_cluster_resources():
    """Refuse a wrong partition, GPU or node setting before any job is submitted."""
    from trafficfm.cluster import check

    plugin = workflow.executor_plugin
    on_slurm = plugin is not None and plugin.name == "slurm"
    jobs = [
        (job.rule.name, job.resources)
        for job in workflow.dag.needrun_jobs()
        if not (on_slurm and job.is_local)
    ]
    check(jobs, MULTINODE_RULES, on_slurm)


onstart:
    check_cluster_resources()
