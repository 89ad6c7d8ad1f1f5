"""The whole workflow, as a user runs it: `snakemake` on the real Snakefile from nothing to both
submission zips, on the tiny demo with tiny models (tests/tiny.yaml + tests/tiny-models.yaml)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from workflow_runner import ROOT, run_snakemake

CONFIGS = (ROOT / "tests" / "tiny.yaml", ROOT / "tests" / "tiny-models.yaml")
ZIPS = ("results/submissions/allinone.zip", "results/submissions/retrieval.zip")


def _snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_snakemake(workdir, *args, configs=CONFIGS, check=check)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("pipeline")
    _snakemake(workdir)
    return workdir


@pytest.mark.slow
def test_default_target_builds_both_valid_zips(built):
    for name, inner in zip(ZIPS, ("pred_results.json", "infer_json.json")):
        assert zipfile.ZipFile(built / name).namelist() == [inner]
        report = json.loads((built / name.replace(".zip", ".validation.json")).read_text())
        assert report["valid"], report
    # the validator command accepts what the pipeline wrote
    for track, name in zip(("allinone", "retrieval"), ZIPS):
        data = built / f"results/data/{track}"
        result = subprocess.run([sys.executable, "-m", "trafficfm.submission.cli", track, str(built / name),
                                 "--data", str(data), "--no-report"], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
    metrics = json.loads((built / "results/allinone/val_metrics.json").read_text())
    assert set(metrics) >= {"top1", "map50", "miou", "score"}
    assert set(json.loads((built / "results/retrieval/val_metrics.json").read_text())) >= {"map10", "map10_before"}
    # the leaderboard zips scored on the demo's hidden test truth, beside the validation scores
    for track, headline in (("allinone", "score"), ("retrieval", "map10")):
        val = json.loads((built / f"results/submissions/val/{track}_scores.json").read_text())
        test = json.loads((built / f"results/submissions/test/{track}_scores.json").read_text())
        assert test["split"] == "test" and test["submission"].endswith(f"submissions/{track}.zip")
        assert test["val_minus_test"][headline] == pytest.approx(val[headline] - test[headline], abs=1e-4)
        assert "validation minus test" in (built / f"logs/score_{track}_test.log").read_text()


@pytest.mark.slow
def test_rerun_does_nothing_and_forced_packaging_is_byte_identical(built):
    assert "Nothing to be done" in _snakemake(built, "--dry-run").stdout
    before = {name: (built / name).read_bytes() for name in ZIPS}
    _snakemake(built, "--forcerun", "package_allinone", "package_retrieval")
    assert {name: (built / name).read_bytes() for name in ZIPS} == before


@pytest.mark.slow
def test_report_has_every_stage(built):
    _snakemake(built, "--report", str(built / "report.html"))
    html = (built / "report.html").read_text(errors="replace")
    for needle in ("training_curve.png", "val_metrics.json", "allinone.validation.json", "counts.png",
                   "ranking_examples.png", "prediction_examples.png", "per_class.png"):
        assert needle in html, needle


@pytest.mark.slow
def test_training_rule_starts_torchrun_when_given_two_gpus(built):
    """`resources: gpu=2` on a training rule: the script starts itself under torchrun (on this CPU
    machine the two ranks use gloo), rank 0 writes the model and the log."""
    model = built / "results/allinone/experiments/base/model.pt"
    stamp = model.stat().st_mtime_ns
    _snakemake(built, "--forcerun", "train_allinone", "--until", "train_allinone",
               "--set-resources", "train_allinone:gpu=2", "--resources", "gpu=2")
    assert model.stat().st_mtime_ns != stamp
    log = (built / "logs/train_allinone/base.log").read_text()
    assert "starting 2 processes" in log and "torch.distributed.run" in log
    history = json.loads((built / "results/allinone/experiments/base/training_history.json").read_text())
    assert history  # written by rank 0 after the distributed run
