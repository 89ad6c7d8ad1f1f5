"""Packaging (valid zips only, byte-reproducible), the trafficfm-validate command, and the rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from workflow_runner import run_snakemake
from PIL import Image

from test_submission_data import (write_allinone_dataset, write_allinone_predictions, write_rankings,
                                  write_retrieval_dataset)
from trafficfm.config import load
from trafficfm.retrieval.relevance import is_relevant
from trafficfm.submission.cli import main as cli_main
from trafficfm.submission.package import SubmissionRejected, package_allinone, package_retrieval

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = load()


@pytest.fixture()
def setup(tmp_path):
    truth = write_allinone_dataset(tmp_path / "data", "test")
    pred = write_allinone_predictions(tmp_path / "pred", truth)
    rdata = write_retrieval_dataset(tmp_path / "rdata")
    rankings = write_rankings(tmp_path / "test_rankings.csv", rdata["queries"], rdata["test_names"])
    return tmp_path, pred, rankings


def _package(tmp, pred, target, **kwargs):
    return package_allinone(pred["cls"].parent, tmp / "data", "test", target,
                            target.with_name(f"{target.stem}.validation.json"), SETTINGS, **kwargs)


def test_zip_holds_one_json_and_is_byte_reproducible(setup):
    tmp, pred, rankings = setup
    first = tmp / "a" / "allinone.zip"
    report = _package(tmp, pred, first)
    assert report.valid
    # touch the inputs and rebuild elsewhere: same bytes
    for path in (pred["cls"], pred["det"], *pred["seg"].iterdir()):
        os.utime(path, (1_000_000_000, 1_000_000_000))
    second = tmp / "b" / "allinone.zip"
    _package(tmp, pred, second)
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:
        (info,) = archive.infolist()
        assert (info.filename, info.date_time, info.compress_type) == ("pred_results.json", (1980, 1, 1, 0, 0, 0),
                                                                       zipfile.ZIP_DEFLATED)
        assert info.external_attr >> 16 == 0o100644 and info.create_system == 3
        json.loads(archive.read(info))
    saved = json.loads(first.with_name("allinone.validation.json").read_text())
    assert saved["valid"] and saved["json_member"] == "pred_results.json" and saved["violations"] == []
    assert not list(first.parent.glob(".*tmp"))  # no temporary file left behind
    # retrieval: same guarantees, configurable member name
    r1, r2 = tmp / "r1" / "retrieval.zip", tmp / "r2" / "retrieval.zip"
    for target in (r1, r2):
        package_retrieval(rankings, tmp / "rdata", "test", target, target.with_name("retrieval.validation.json"),
                          SETTINGS.replace("submission.retrieval.json_name=answers.json"))
    assert r1.read_bytes() == r2.read_bytes()
    assert zipfile.ZipFile(r1).namelist() == ["answers.json"]


@pytest.mark.parametrize("breakage,fragment", [
    ("cls_missing", "no entry for a classification test image '00002.jpg'"),
    ("det_unknown_image", "7 is not an image id"),
    ("seg_wrong_size", "label map is 24x16, the image is 48x32"),
    ("seg_missing", "no entry for a segmentation image key (<JPEG stem>.png) '00055.png'"),
])
def test_packaging_refuses_invalid_predictions(setup, breakage, fragment):
    tmp, pred, _ = setup
    target = tmp / "out" / "allinone.zip"
    target.parent.mkdir()
    target.write_bytes(b"an older zip")
    if breakage == "cls_missing":
        lines = pred["cls"].read_text().splitlines()
        pred["cls"].write_text("\n".join(lines[:2] + lines[3:]) + "\n")
    elif breakage == "det_unknown_image":
        pred["det"].write_text(json.dumps([{"image_id": 7, "category_id": 1, "bbox": [1, 1, 2, 2], "score": 0.5}]))
    elif breakage == "seg_wrong_size":
        Image.fromarray(np.zeros((16, 24), np.uint8)).save(pred["seg"] / "00054.png")
    else:
        (pred["seg"] / "00055.png").unlink()
    with pytest.raises(SubmissionRejected) as caught:
        _package(tmp, pred, target)
    assert fragment in str(caught.value)
    assert not target.exists()  # neither a new zip nor the stale one
    report = json.loads(target.with_name("allinone.validation.json").read_text())
    assert not report["valid"] and any(fragment in v["message"] for v in report["violations"])


def test_retrieval_packaging_refuses_a_short_ranking(setup):
    tmp, _, rankings = setup
    rows = rankings.read_text().splitlines()
    rankings.write_text("\n".join(r for r in rows if not r.startswith("3,")) + "\n")
    with pytest.raises(SubmissionRejected, match=r"results\[3\].image_names: has 0 names; exactly 10 are required"):
        package_retrieval(rankings, tmp / "rdata", "test", tmp / "retrieval.zip", None, SETTINGS)
    assert not (tmp / "retrieval.zip").exists()


def test_cli_exit_codes(setup, capsys):
    tmp, pred, rankings = setup
    target = tmp / "out" / "allinone.zip"
    _package(tmp, pred, target)
    assert cli_main(["allinone", str(target), "--data", str(tmp / "data"), "--report", str(tmp / "r.json")]) == 0
    assert json.loads((tmp / "r.json").read_text())["valid"]
    assert "VALID" in capsys.readouterr().out
    # a broken JSON beside it: exit 1, report beside the file by default
    bad = tmp / "bad.json"
    data = json.loads(zipfile.ZipFile(target).read("pred_results.json"))
    data["dec"][0]["category_id"] = 99
    bad.write_text(json.dumps(data))
    assert cli_main(["allinone", str(bad), "--data", str(tmp / "data")]) == 1
    out = capsys.readouterr().out
    assert "INVALID, 1 violation(s)" in out and "dec[0].category_id: 99 is not a category id" in out
    assert not json.loads((tmp / "bad.validation.json").read_text())["valid"]
    # cannot check: missing file, missing data, scoring an unlabelled split
    assert cli_main(["allinone", str(tmp / "nope.zip"), "--data", str(tmp / "data")]) == 2
    assert cli_main(["allinone", str(target), "--data", str(tmp / "nowhere"), "--no-report"]) == 2
    assert cli_main(["allinone", str(target), "--data", str(tmp / "data"), "--no-report", "--score"]) == 2
    assert "has no labels" in capsys.readouterr().err
    # retrieval
    rzip = tmp / "retrieval.zip"
    package_retrieval(rankings, tmp / "rdata", "test", rzip, None, SETTINGS)
    assert cli_main(["retrieval", str(rzip), "--data", str(tmp / "rdata"), "--no-report"]) == 0
    assert cli_main(["retrieval", str(rzip), "--data", str(tmp / "rdata"), "--no-report", "--top-k", "5"]) == 1


def test_console_script_is_installed(setup):
    """The entry point declared in pyproject.toml runs (exit status 2: nothing to check)."""
    tmp, _, _ = setup
    script = Path(sys.executable).with_name("trafficfm-validate")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "trafficfm.submission.cli"]
    result = subprocess.run([*command, "retrieval", str(tmp / "missing.zip"), "--data", str(tmp / "rdata")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "no such file" in result.stderr


SNAKEFILE = """
configfile: "{root}/config.yaml"


include: "{root}/workflow/rules/common.smk"
include: "{root}/workflow/rules/submission.smk"


rule all:
    input:
        paths.submission_outputs(),
        paths.validation_score_outputs(SETTINGS.data),
"""


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return run_snakemake(workdir, *args, snakefile=workdir / "Snakefile")


@pytest.mark.slow
def test_rules_package_and_score(tmp_path):
    """The submission rules on synthetic canonical data and predictions placed where the contract says."""
    work = tmp_path / "wf"
    (work).mkdir()
    (work / "Snakefile").write_text(SNAKEFILE.format(root=ROOT))
    data = work / "results/data/allinone"
    truth = write_allinone_dataset(data, "test")
    truth_val = write_allinone_dataset(data, "val", labelled=True, all_seg_classes=True, seed=1)
    write_allinone_predictions(work / "results/allinone/predictions", truth, "test")
    write_allinone_predictions(work / "results/allinone/predictions", truth_val, "val", cls_wrong=3)
    rdata = write_retrieval_dataset(work / "results/data/retrieval")
    write_rankings(work / "results/retrieval/test_rankings.csv", rdata["queries"], rdata["test_names"])
    val_names = [Path(row[0]).name for row in rdata["val"]]
    write_rankings(work / "results/retrieval/val_rankings.csv", [row[4] for row in rdata["val"]], val_names)

    _snakemake(work)
    subs = work / "results/submissions"
    zips = {name: (subs / name).read_bytes() for name in ("allinone.zip", "retrieval.zip")}
    assert zipfile.ZipFile(subs / "allinone.zip").namelist() == ["pred_results.json"]
    assert zipfile.ZipFile(subs / "retrieval.zip").namelist() == ["infer_json.json"]
    assert json.loads((subs / "allinone.validation.json").read_text())["valid"]
    scores = json.loads((subs / "val/allinone_scores.json").read_text())
    assert scores["cls_top1"] == pytest.approx(0.5) and scores["seg_miou"] == 1.0 and scores["det_map50"] == 1.0
    assert scores["score"] == pytest.approx((0.5 + 1 + 1) / 3)
    # the val rankings rotate the val images: query q lists images q, q+1, ..., q+9; the organisers'
    # AP divides the running hit count at each hit's rank by the hits in the list
    attributes = {Path(row[0]).name: row[3] for row in rdata["val"]}
    aps = []
    for q, row in enumerate(rdata["val"]):
        hits, ap = 1e-6, 0.0
        for rank, name in enumerate((val_names[(q + r) % len(val_names)] for r in range(10)), 1):
            if is_relevant(row[3], attributes[name]):
                hits += 1
                ap += hits / rank
        aps.append(ap / hits)
    expected = sum(aps) / len(aps)
    assert 0.5 < expected < 1  # (neither perfect nor empty: a wrong relevance or order shows)
    assert json.loads((subs / "val/retrieval_scores.json").read_text())["map10"] == pytest.approx(expected)
    assert (work / "logs/package_allinone.log").exists()

    assert "Nothing to be done" in _snakemake(work, "--dry-run").stdout
    _snakemake(work, "--forcerun", "package_allinone", "package_retrieval")
    assert {name: (subs / name).read_bytes() for name in zips} == zips
