"""Failures a user can read: an expected failure of a rule lands in the rule's own log file (the
file Snakemake points at) and on stderr once, as a short message without a traceback; anything
unexpected keeps its traceback, in the log too."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from workflow_runner import ROOT, run_snakemake

TINY = ROOT / "tests" / "tiny.yaml"
DATA = ("results/data/allinone/manifest.json", "results/data/retrieval/manifest.json")


def _snakemake(workdir: Path, *args: str, configs: tuple = (), check: bool = True):
    return run_snakemake(workdir, *args, configs=(TINY, *configs), check=check)


def _assert_reported(result: subprocess.CompletedProcess, log: Path, *needles: str) -> None:
    """The run failed; the log names the problem; stderr shows it once and no traceback."""
    assert result.returncode != 0
    text = log.read_text()
    for needle in needles:
        assert needle in text, f"{needle!r} not in {log}:\n{text[-3000:]}"
        assert result.stderr.count(needle) == 1, result.stderr[-3000:]
    assert "Traceback" not in text and "Traceback" not in result.stderr, result.stderr[-3000:]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("errors") / "converted"
    workdir.mkdir()
    _snakemake(workdir, *DATA)
    return workdir


def test_bad_record_lands_in_the_conversion_log(converted, tmp_path):
    workdir = shutil.copytree(converted, tmp_path / "w", symlinks=True)
    labels = workdir / "resources/release/track1_train_data/cls/val.txt"
    lines = labels.read_text().splitlines()
    lines[2] = f"{lines[2].split()[0]} 999"
    labels.write_text("\n".join(lines) + "\n")
    # (mtime only: the copy's absolute paths differ, which would otherwise redo the fetch and extraction)
    result = _snakemake(workdir, DATA[0], "--forcerun", "convert_allinone", "--rerun-triggers", "mtime",
                        check=False)
    _assert_reported(result, workdir / "logs/convert_allinone.log",
                     "track1_train_data/cls/val.txt, line 3: class id 999 out of range 0..3")
    assert not list((workdir / "results/data/allinone").glob("*"))  # no converted file is left


def _set_sum(sums: Path, name: str, digest: str) -> None:
    sums.write_text("".join(f"{digest}  {name}\n" if line.endswith(f" {name}") else line + "\n"
                            for line in sums.read_text().splitlines()))


def test_checksum_mismatch_lands_in_the_fetch_log(tmp_path):
    """The demo archives are checked against their SHA256SUMS like downloads against the config's
    sha256 (the same code): a wrong sum stops the fetch."""
    _snakemake(tmp_path, "resources/demo/SHA256SUMS")
    _set_sum(tmp_path / "resources/demo/SHA256SUMS", "track2_val.tar", "0" * 64)
    result = _snakemake(tmp_path, "resources/archives/track2_val.tar", check=False)
    _assert_reported(result, tmp_path / "logs/fetch_archive/track2_val.tar.log",
                     f"SHA-256 mismatch: expected {'0' * 64}")
    assert not list((tmp_path / "resources/archives").glob("track2_val.tar*"))


def test_unsafe_archive_lands_in_the_extraction_log(converted, tmp_path):
    """An archive with a member that climbs out of the extraction folder: refused, named, nothing
    written outside."""
    workdir = shutil.copytree(converted, tmp_path / "w", symlinks=True)
    archive = workdir / "resources/demo/track2_val.tar"
    payload = b"not for outside"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    _set_sum(workdir / "resources/demo/SHA256SUMS", "track2_val.tar", hashlib.sha256(archive.read_bytes()).hexdigest())
    (workdir / "resources/archives/track2_val.tar").unlink()
    result = _snakemake(workdir, DATA[1], "--rerun-triggers", "mtime", check=False)
    _assert_reported(result, workdir / "logs/extract_archive/track2_val.tar.log",
                     "'../../escaped.txt' would be extracted to")
    assert not list(tmp_path.rglob("escaped.txt"))


def _script(tmp_path: Path, raising: str) -> tuple[subprocess.CompletedProcess, str]:
    log = tmp_path / "rule.log"
    code = (f"from trafficfm.logs import setup_logging\nsetup_logging({str(log)!r})\n"
            f"from trafficfm.submission.validate import Report\n"
            f"from trafficfm.submission.package import SubmissionRejected\n{raising}\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return result, log.read_text()


def test_expected_failure_is_a_message_and_a_bug_keeps_its_traceback(tmp_path):
    result, log = _script(tmp_path, "r = Report('retrieval', 'test')\n"
                                    "r.add('image', 'results[3].image_name', 'not in the gallery')\n"
                                    "raise SubmissionRejected(r, None)")
    assert result.returncode == 1
    assert "results[3].image_name" in log and result.stderr.count("results[3].image_name") == 1
    assert "Traceback" not in log + result.stderr

    result, log = _script(tmp_path, "{}['missing key']")
    assert result.returncode == 1
    assert "Traceback" in log and "KeyError: 'missing key'" in log
    assert result.stderr.count("Traceback") == 1
