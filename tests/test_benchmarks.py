"""The benchmark scripts run against the package as it is: a signature change in the training code
once broke bench_allinone.py at start, unnoticed, because nothing ran it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str) -> str:
    """stdout of ``python <args>`` run in the repository on one thread; fails with its output."""
    res = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def test_bench_allinone_measures_the_configured_batches(tmp_path):
    out = tmp_path / "figures.json"
    printed = _run("benchmarks/bench_allinone.py", "--configfile", str(REPO / "tests" / "tiny-models.yaml"),
                   "--steps", "1", "--warmup", "0", "--threads", "1", "--det-infer-size", "64", "--skip-reference",
                   "--json", str(out))
    figures = json.loads(out.read_text())
    # the shapes timed are the overlay's batches, not config.yaml's
    tasks = yaml.safe_load((REPO / "tests" / "tiny-models.yaml").read_text())["allinone"]["train"]["tasks"]
    assert figures["shapes"] == {"cls": [tasks["cls"]["batch_size"], tasks["cls"]["size"], tasks["cls"]["size"]],
                                 "det": [tasks["det"]["batch_size"], tasks["det"]["crop"], tasks["det"]["crop"]],
                                 "seg": [tasks["seg"]["batch_size"], *tasks["seg"]["crop"]], "det_infer": [1, 64, 64]}
    for kind in ("train_images_per_s", "infer_images_per_s"):
        assert set(figures[kind]) == {"cls", "det", "seg"} and min(figures[kind].values()) > 0
    assert "joint step" in printed


def test_bench_retrieval_ranks_exactly_as_a_full_sort():
    out = _run("benchmarks/bench_retrieval.py", "--configfile", str(REPO / "tests" / "tiny-models.yaml"),
               "--steps", "1", "--queries", "50", "--gallery", "100", "--dim", "16", "--threads", "1")
    assert "identical: True" in out and "pairs/s" in out


def test_bench_submission_and_ensemble_and_convert_run_at_small_sizes(tmp_path):
    assert "validate" in _run("benchmarks/bench_submission.py", "--images", "3", "--queries", "20")
    fused = _run("benchmarks/bench_ensemble.py", "--cls-images", "10", "--det-images", "3", "--seg-images", "2",
                 "--distinct", "2", "--queries", "20", "--images", "30", "--dim", "8", "--methods", "nms")
    assert '"members": 3' in fused
    converted = _run("benchmarks/bench_convert.py", "--scale", "0.002", "--workdir", str(tmp_path))
    assert all(task in converted for task in ("classification", "detection", "segmentation"))
