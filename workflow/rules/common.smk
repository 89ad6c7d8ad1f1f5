# The workflow's vocabulary, included first: the settings, every path and the split names by role
# (trafficfm.paths), the release plan and the helpers. Rule files use only the names defined here.
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from trafficfm import paths
from trafficfm.comparison import files_of as comparison_files_of
from trafficfm.config import settings_of
from trafficfm.data.demo import label_space
from trafficfm.experiments import plan_experiments
from trafficfm.data.source import plan_release
from trafficfm.paths import (
    ALLINONE_DATA,
    ALLINONE_DIR,
    ALLINONE_MANIFEST,
    ALLINONE_MODEL,
    ALLINONE_PREDICTIONS,
    ARCHIVE_DIR,
    DATA_REPORT,
    COMPARISON_DIR,
    DEMO_DIR,
    EXPERIMENTS_DIR,
    RELEASE_DIR,
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
# Experiments per track (merged, validated settings; ensembles; selection): trafficfm.experiments.
EXPERIMENTS = plan_experiments(SETTINGS)
AIO_EXP = EXPERIMENTS["allinone"]
RET_EXP = EXPERIMENTS["retrieval"]
AIO_EXP_DIR = EXPERIMENTS_DIR["allinone"]
RET_EXP_DIR = EXPERIMENTS_DIR["retrieval"]
# AllInOne splits whose predictions are published at the documented paths.
AIO_PUBLISHED_SPLITS = sorted({AIO.val, AIO.test})


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
    both submissions and the organisers' scores of the validation splits (on the demo release, of the
    test splits too)."""
    return [
        f"{DATA_REPORT}/summary.json",
        f"{ALLINONE_DIR}/val_metrics.json",
        f"{RETRIEVAL_DIR}/val_metrics.json",
        f"{ALLINONE_DIR}/figures/per_class.png",
        f"{ALLINONE_DIR}/figures/prediction_examples.png",
        f"{RETRIEVAL_DIR}/figures/training_curve.png",
        f"{RETRIEVAL_DIR}/figures/ranking_examples.png",
        f"{COMPARISON_DIR}/comparison.csv",
        *paths.submission_outputs(),
        *paths.validation_score_outputs(SETTINGS.data),
        *paths.test_score_outputs(SETTINGS.data),
    ]


# The rules whose script starts its own launcher (trafficfm.runtime.ran_as_ranks): the only ones
# a `nodes: K` resource may spread over several nodes.
MULTINODE_RULES = {"train_allinone", "finetune_retrieval"}


def check_cluster_resources():
    """Refuse a wrong partition, GPU or node setting before any job is submitted."""
    from trafficfm.cluster import check

    plugin = workflow.executor_plugin
    on_slurm = plugin is not None and plugin.name == "slurm"
    needrun = list(workflow.dag.needrun_jobs())
    jobs = [
        (job.rule.name, job.resources)
        for job in needrun
        if not (on_slurm and job.is_local)
    ]
    if any(job.is_checkpoint for job in needrun):
        # Jobs behind a checkpoint (the selected experiment's predictions) join the DAG only once
        # it has run: check the rules not in the DAG yet by their resources that need no job.
        in_dag = {job.rule.name for job in workflow.dag.jobs}
        jobs += [
            (rule.name, constant_resources(rule))
            for rule in workflow.rules
            if rule.name not in in_dag and not (on_slurm and workflow.is_local(rule))
        ]
    check(jobs, MULTINODE_RULES, on_slurm)


def constant_resources(rule):
    """A rule's resources that need no job to be known: plain values and the profile's strings
    (``gres: gpu:1``); those that depend on a job's input or wildcards are left out."""
    out = {}
    for name, res in rule.resources.items():
        if hasattr(res, "is_evaluable") and res.is_evaluable():
            try:
                res = res.evaluate(
                    {},
                    input=[],
                    attempt=1,
                    threads=1,
                    rulename=rule.name,
                    async_run=None,
                )
            except Exception:  # needs a job's input: left to the job
                continue
        out[name] = getattr(res, "value", res)
    return out


onstart:
    check_cluster_resources()


# ------------------------------------------------------------------------------- experiments
def names_pattern(names):
    """Wildcard constraint matching exactly these names (none: matching nothing)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


def selected_inputs(track, files):
    """Input function of a publish rule: ``files(selected, lead)`` -> {output name: source path},
    once the track's selection checkpoint has run."""

    def inputs(wildcards):
        chosen = json.loads(
            Path(
                getattr(checkpoints, f"select_{track}").get().output.selection
            ).read_text()
        )
        return files(chosen["selected"], chosen["lead"])

    return inputs


def aio_setting(key):
    return lambda w: AIO_EXP.settings[
        w.aio_exp if "aio_exp" in w.keys() else w.aio_trained
    ][key]


def aio_predictions(name, split):
    folder = AIO_EXP.folder(name)
    return {
        "cls": f"{folder}/predictions/cls_{split}.csv",
        "det": f"{folder}/predictions/det_{split}.json",
        "seg": f"{folder}/predictions/seg_{split}",
    }


def ret_setting(key, wildcard="ret_exp"):
    return lambda w: RET_EXP.settings[w[wildcard]][key]


def ret_model(wildcards):
    return f"{RET_EXP.folder(RET_EXP.trained_by(wildcards.ret_exp))}/model.pt"


def ret_member_files(path):
    return lambda w: [
        f"{RET_EXP.folder(m)}/{path}" for m in RET_EXP.ensembles[w.ret_ens]
    ]


def aio_published(chosen, lead):
    trained = AIO_EXP.folder(AIO_EXP.trained_by(lead))
    files = {
        "model": f"{trained}/model.pt",
        "history": f"{trained}/training_history.json",
        "curve": f"{trained}/training_curve.png",
        "metrics": f"{AIO_EXP.folder(chosen)}/val_metrics.json",
    }
    for task in ("cls", "det", "seg"):
        files[f"per_class_{task}"] = (
            f"{AIO_EXP.folder(chosen)}/val_{task}_per_class.csv"
        )
    for split in AIO_PUBLISHED_SPLITS:
        for task, path in aio_predictions(chosen, split).items():
            files[f"{task}_{split}"] = path
    return files


def aio_published_outputs():
    files = {
        "model": ALLINONE_MODEL,
        "history": f"{ALLINONE_DIR}/training_history.json",
        "curve": report(
            f"{ALLINONE_DIR}/training_curve.png",
            category="Training curves",
            labels={"track": "AllInOne", "file": "loss per task, learning rate"},
            caption="../report/allinone_curve.rst",
        ),
        "metrics": report(
            f"{ALLINONE_DIR}/val_metrics.json",
            category="Validation metrics",
            labels={"track": "AllInOne", "file": "top-1, mAP@0.5, mIoU, score"},
            caption="../report/allinone_metrics.rst",
        ),
    }
    for task in ("cls", "det", "seg"):
        files[f"per_class_{task}"] = f"{ALLINONE_DIR}/val_{task}_per_class.csv"
    for split in AIO_PUBLISHED_SPLITS:
        for task, path in paths.allinone_predictions(split).items():
            files[f"{task}_{split}"] = directory(path) if task == "seg" else path
    return files


def ret_published(chosen, lead):
    trained = RET_EXP.folder(RET_EXP.trained_by(lead))
    folder = RET_EXP.folder(chosen)
    return {
        "model": f"{trained}/model.pt",
        "summary": f"{trained}/train_summary.json",
        "metrics": f"{folder}/val_metrics.json",
        "per_kind": f"{folder}/val_metrics_per_kind.json",
        "rerank": f"{folder}/rerank.json",
        "val_rankings": f"{folder}/{RET.val}_rankings.csv",
        "test_rankings": f"{folder}/test_rankings.csv",
    }


def comparison_inputs():
    return [
        path
        for plan in EXPERIMENTS.values()
        for files in comparison_files_of(plan).values()
        for key, path in files.items()
        if key != "benchmark"  # written by Snakemake with the training's outputs
    ]
