"""Tiny demo release -> the lead's converter -> fine-tuning, validation and test rankings.

The fast test drives the package directly; the slow one runs the Snakemake rules (data stage +
retrieval stage) on a tiny config with the tiny model.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from trafficfm.data.convert_retrieval import convert_retrieval
from trafficfm.data.demo import make_demo_release
from trafficfm.retrieval.evaluate import evaluate
from trafficfm.retrieval.metrics import scorer_map
from trafficfm.retrieval.predict import predict
from trafficfm.retrieval.relevance import is_relevant
from trafficfm.retrieval.train import finetune
from tiny_settings import RETRIEVAL_TESTS, tiny
from workflow_runner import run_snakemake

ROOT = Path(__file__).resolve().parents[1]
# the unit tests' tiny retrieval model and schedule, without augmentation
SETTINGS = tiny({"retrieval": RETRIEVAL_TESTS}, "retrieval.train.augment.scale_min=1.0",
                "retrieval.train.augment.hflip=false", "retrieval.train.epochs=8")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    base = tmp_path_factory.mktemp("demo")
    make_demo_release(base / "release", SETTINGS.data.demo, SETTINGS.data.layout, truth_dir=base / "truth")
    convert_retrieval(base / "release", base / "retrieval", SETTINGS.data.layout.retrieval, SETTINGS.data.on_error)
    return base


def test_demo_through_converter_to_rankings(demo, tmp_path):
    data = demo / "retrieval"
    val = pd.read_csv(data / "val.csv", keep_default_na=False, dtype={"name": str})
    assert set(val["kind"]) == {"vehicle", "pedestrian"}
    finetune(data, tmp_path / "model.pt", SETTINGS.retrieval, tmp_path / "ckpt", None, "train")
    result = evaluate(data, tmp_path / "model.pt", tmp_path / "val_metrics.json", tmp_path / "per_kind.json",
                      tmp_path / "rerank.json", SETTINGS.retrieval, "val", rankings_out=tmp_path / "val_rankings.csv")
    # Fine-tuning learns: measured val mAP@10 0.304 -> 0.651 after 8 epochs on one thread (0.573 with
    # another seed; 2 epochs reach only 0.391); the margin 0.15 leaves room for other thread counts.
    assert result["metrics"]["map10"] >= result["metrics"]["map10_before"] + 0.15, result["metrics"]
    assert result["per_kind"]["after"]["overall"]["queries"] == len(val)

    frame = predict(data, tmp_path / "model.pt", tmp_path / "rerank.json", tmp_path / "test_rankings.csv",
                    SETTINGS.retrieval)
    queries = (demo / "release" / "test" / "test_text.txt").read_text().splitlines()
    queries = [q for q in queries if q.strip()]
    assert frame["query"].nunique() == len(queries) and len(frame) == 10 * len(queries)

    # score the demo's hidden test truth with the organisers' arithmetic
    truth = [line.split("$") for line in (demo / "truth" / "test_label.txt").read_text().splitlines() if line]
    file_name = {n: n if n.endswith(".jpg") else f"{n}.jpg" for n, _, _ in truth}
    query_truth = [line.split("$") for line in (demo / "truth" / "test_query_label.txt").read_text().splitlines()
                   if line]
    assert [q for q, _ in query_truth] == queries
    relevant = [{file_name[n] for n, attribute, _ in truth if is_relevant(qa, attribute)} for _, qa in query_truth]
    names = [list(g["name"]) for _, g in frame.groupby("query", sort=True)]
    texts = list(frame.groupby("query", sort=True)["text"].first())
    assert all(relevant), "every demo query has a relevant test image"
    assert 0 <= scorer_map(queries, relevant, texts, names) <= 1 + 1e-5


def _snakemake(workdir: Path, *targets: str) -> subprocess.CompletedProcess:
    snakefile = workdir / "Snakefile"
    snakefile.write_text(
        f'configfile: "{ROOT}/config.yaml"\n\n\n'
        f'include: "{ROOT}/workflow/rules/common.smk"\n'
        f'include: "{ROOT}/workflow/rules/data.smk"\n'
        f'include: "{ROOT}/workflow/rules/retrieval.smk"\n'
    )
    overlay = workdir / "tiny_retrieval.yaml"
    retrieval = SETTINGS.retrieval.replace("train.epochs=1")
    overlay.write_text(yaml.safe_dump({"retrieval": {"model": retrieval.model.to_dict(), "train": retrieval.train.to_dict()}}))
    return run_snakemake(workdir, *targets, snakefile=snakefile, configs=(ROOT / "tests" / "tiny.yaml", overlay),
                         check=False)


@pytest.mark.slow
def test_snakemake_retrieval_rules(tmp_path):
    base = "results/retrieval/experiments/base"  # the default run's one experiment
    targets = [f"{base}/val_metrics.json", f"{base}/test_rankings.csv"]
    result = _snakemake(tmp_path, *targets)
    assert result.returncode == 0, result.stderr[-5000:]
    metrics = json.loads((tmp_path / base / "val_metrics.json").read_text())
    assert set(metrics) == {"map10", "map10_before", "recall@1", "recall@5", "recall@10"}
    for name in ("val_metrics_per_kind.json", "rerank.json", "val_rankings.csv", "model.pt", "train_summary.json",
                 "embeddings_val.npz", "embeddings_test.npz"):
        assert (tmp_path / base / name).exists(), name
    for rule in ("finetune_retrieval", "evaluate_retrieval", "predict_retrieval"):
        assert (tmp_path / "logs" / rule / "base.log").exists(), rule
        assert (tmp_path / "benchmarks" / rule / "base.tsv").exists(), rule
    assert (tmp_path / base / "checkpoints").is_dir()
    rankings = pd.read_csv(tmp_path / base / "test_rankings.csv", keep_default_na=False)
    assert list(rankings.columns) == ["query", "text", "rank", "name"]
    again = _snakemake(tmp_path, *targets, "--dry-run")  # nothing left to do
    assert again.returncode == 0 and "finetune_retrieval" not in again.stdout
