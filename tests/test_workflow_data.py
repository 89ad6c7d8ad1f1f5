"""The data stage through Snakemake on a tiny demo: DAG, outputs, idempotence, failure messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from workflow_runner import ROOT, run_snakemake

TINY = ROOT / "tests" / "tiny.yaml"
DATA_TARGETS = ["results/data/allinone/manifest.json", "results/data/retrieval/manifest.json",
                "results/data/report/summary.json"]


def snakemake(workdir: Path, *args: str, check: bool = True, extra_configs: tuple = ()):
    return run_snakemake(workdir, *args, configs=(TINY, *extra_configs), check=check)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = tmp_path_factory.mktemp("wf")
    snakemake(path, *DATA_TARGETS)
    return path


def test_data_stage_outputs(workdir):
    allinone = json.loads((workdir / "results/data/allinone/manifest.json").read_text())
    assert allinone["counts"]["cls"] == {"train": 12, "val": 8, "test": 6}
    assert allinone["counts"]["det_images"] == {"train": 6, "val": 4, "test": 3}
    assert allinone["counts"]["seg"] == {"train": 6, "val": 4, "test": 3}
    retrieval = json.loads((workdir / "results/data/retrieval/manifest.json").read_text())
    assert retrieval["counts"]["train"]["pairs"] == 60 and retrieval["counts"]["test"]["queries"] == 12
    summary = json.loads((workdir / "results/data/report/summary.json").read_text())
    assert summary["examples"] and all((workdir / "results/data/report/examples" / n).exists()
                                      for n in summary["examples"])
    for rule in ("make_demo_archives", "convert_allinone", "convert_retrieval", "data_report"):
        assert (workdir / "logs" / f"{rule}.log").exists(), rule
    sums = (workdir / "resources/demo/SHA256SUMS").read_text()
    assert "track1_train_data.tar" in sums
    assert not list((workdir / "resources/archives").glob("*.part"))


def test_second_run_does_nothing(workdir):
    """(How long a no-op run takes is a benchmark figure, not a test: it depends on the machine's load.)"""
    stamps = {p: p.stat().st_mtime_ns for p in (workdir / "results").rglob("*") if p.is_file()}
    result = snakemake(workdir, *DATA_TARGETS, "--dry-run")
    assert "Nothing to be done" in result.stdout + result.stderr
    real = snakemake(workdir, *DATA_TARGETS)
    assert "Nothing to be done" in real.stdout + real.stderr
    assert {p: p.stat().st_mtime_ns for p in (workdir / "results").rglob("*") if p.is_file()} == stamps


def test_bad_config_names_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  on_error: sometimes\n")
    result = snakemake(tmp_path, "--dry-run", check=False, extra_configs=(str(bad),))
    assert result.returncode != 0
    assert "data.on_error: 'sometimes' is not one of ['fail', 'skip']" in result.stdout + result.stderr
