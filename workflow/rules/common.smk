# Config validation and the helpers that other rule files share.
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from trafficfm.config import settings_of
from trafficfm.data.source import ARCHIVE_DIR, DEMO_DIR, RELEASE_DIR, plan_release

# Every setting, validated and frozen; rules pass sections to their scripts with .to_dict().
SETTINGS = settings_of(config, source="config (config.yaml and --configfile overlays)")
PLAN = plan_release(SETTINGS.data)
ENV = "../../envs/trafficfm.yaml"


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
    return SETTINGS.data.demo.cls_classes if PLAN.source == "demo" else 196


def allinone_tables():
    layout = SETTINGS.data.layout.allinone
    splits = [*layout["train_splits"], layout["test_split"]]
    return [
        f"results/data/allinone/{task}_{split}.{ext}"
        for task, ext in (("cls", "csv"), ("det", "json"), ("seg", "csv"))
        for split in splits
    ]


def retrieval_tables():
    splits = SETTINGS.data.layout.retrieval.train_splits
    names = [*splits, "test_images", "test_queries"]
    return [f"results/data/retrieval/{name}.csv" for name in names]


def final_outputs():
    """The default targets: data report, validation metrics and report figures of both tracks,
    both submissions."""
    return [
        "results/data/report/summary.json",
        "results/allinone/val_metrics.json",
        "results/retrieval/val_metrics.json",
        "results/allinone/figures/per_class.png",
        "results/allinone/figures/prediction_examples.png",
        "results/retrieval/figures/training_curve.png",
        "results/retrieval/figures/ranking_examples.png",
        *submission_outputs(),
        *validation_score_outputs(SCORE_SPLIT),
    ]
