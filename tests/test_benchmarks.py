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


def test_bench_retrieval_seeds_scores_the_test_split_on_the_hidden_truth(tmp_path):
    """The benchmark's test column is the mAP@10 of the test rankings it wrote, on the generator's
    hidden truth (recomputed here from the truth files with the scorer's per-query AP), and its
    val - test column is the difference."""
    import pandas as pd
    from trafficfm.data.demo import truth
    from trafficfm.retrieval.metrics import average_precision
    from trafficfm.retrieval.relevance import is_relevant

    printed = _run("benchmarks/bench_retrieval_seeds.py", "--configfile", str(REPO / "tests" / "tiny.yaml"),
                   str(REPO / "tests" / "tiny-models.yaml"), "--profile", "demo", "--data-seeds", "3",
                   "--threads", "1", "--work", str(tmp_path), "--tag", "t", "--set", "retrieval.train.epochs=1",
                   "retrieval.eval.rerank=false")
    assert "| val - test |" in printed
    run = tmp_path / "t" / "data_demo3"
    row = json.loads((run / "metrics.json").read_text())
    queries, gallery = truth.retrieval_labels(tmp_path / "truth_demo3")
    rankings = pd.read_csv(run / "test_rankings.csv", keep_default_na=False)
    aps = []
    for q, group in rankings.groupby("query", sort=True):
        text, attribute = queries[q]
        assert group["text"].iloc[0] == text
        names = group.sort_values("rank")["name"].tolist()
        aps.append(average_precision(names, {n for n in names if is_relevant(attribute, gallery[n])}))
    assert len(aps) == len(queries)
    assert abs(row["test"] - sum(aps) / len(aps)) < 1e-9
    assert abs(row["val_minus_test"] - (row["map10"] - row["test"])) < 1e-12


def test_runs_started_side_by_side_draw_their_release_once(tmp_path):
    """Two benchmark processes started at once on one release: the first draws it, the second waits
    and reuses it (they once raced on the half-drawn folder and one died)."""
    code = ("import sys; sys.path.insert(0, 'benchmarks'); from pathlib import Path; import bench_retrieval_seeds as b; "
            "from trafficfm.config import load; "
            "s = load('tests/tiny.yaml', 'tests/tiny-models.yaml'); "
            "print(b.release(Path(sys.argv[1]), 3, s, 'demo'), flush=True)")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    outputs = [r.communicate(timeout=300)[0] for r in runs]
    assert [r.returncode for r in runs] == [0, 0], outputs
    assert "".join(outputs).count("drawn and converted") == 1
    assert all(o.strip().endswith("data_demo3") for o in outputs)
    assert (tmp_path / "data_demo3" / "manifest.json").exists()
