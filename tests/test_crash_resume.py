"""Crashes lose at most one checkpoint interval, and nothing half-written is trusted.

Real Snakemake runs on the tiny demo (tests/tiny.yaml + tests/tiny-models.yaml), frozen at a chosen
point (tests/killpoint/sitecustomize.py) and then killed with SIGKILL, the whole process group at
once as a power cut or the OOM killer would. The rerun is what a user types after such a crash:
``snakemake --unlock``, then the same command (with ``--rerun-incomplete`` where Snakemake asks for
it). Both trainings must then end with exactly the weights of an uninterrupted run (CPU, the same
threads), resuming from the last checkpoint that reads back whole."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from workflow_runner import ROOT, run_snakemake

pytestmark = pytest.mark.slow

TINY = (ROOT / "tests" / "tiny.yaml", ROOT / "tests" / "tiny-models.yaml")
# AllInOne checkpoints after every one of its 3 steps; retrieval after each of its three 3-step epochs.
OVERLAY = {"allinone": {"train": {"steps": 3, "checkpoint_every": 1, "keep_checkpoints": 2}},
           "retrieval": {"train": {"epochs": 3}}}
KILLPOINT = ROOT / "tests" / "killpoint"
# Runs fork a prepared folder by copying it; a copy's absolute paths (in some rules' params) differ,
# which Snakemake would otherwise take as a reason to redo the data stage.
MTIME_ONLY = ("--rerun-triggers", "mtime")


@dataclass(frozen=True)
class Track:
    model: str
    log: str
    checkpoints: str
    first: int  # the step of the first checkpoint
    newest: int  # the second checkpoint: the first run is killed while writing it
    kill_call: int  # the second run is killed inside its kill_call-th optimizer step, after `newest`


TRACKS = {  # the default experiment's training (results/<track>/experiments/base/)
    "allinone": Track("results/allinone/experiments/base/model.pt", "logs/train_allinone/base.log",
                      "results/allinone/experiments/base/checkpoints", first=1, newest=2, kill_call=2),
    "retrieval": Track("results/retrieval/experiments/base/model.pt", "logs/finetune_retrieval/base.log",
                       "results/retrieval/experiments/base/checkpoints", first=3, newest=6, kill_call=5),
}


def _configs(workdir: Path) -> tuple:
    return (*TINY, workdir / "overlay.yaml")


def _snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_snakemake(workdir, *args, *MTIME_ONLY, configs=_configs(workdir), check=check)


def _copy(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest, symlinks=True)  # keeps mtimes: Snakemake sees the same state
    return dest


def _killed_at(workdir: Path, target: str, pause: str, *args: str, half_write: bool = False) -> None:
    """Run ``snakemake target args`` until the process reaches ``pause`` (module:function:call), then
    SIGKILL its whole process group."""
    marker = workdir / "paused"
    env = {**os.environ, "TRAFFICFM_TEST_PAUSE": pause, "TRAFFICFM_TEST_PAUSED": str(marker),
           "PYTHONPATH": os.pathsep.join([str(KILLPOINT), os.environ.get("PYTHONPATH", "")])}
    if half_write:
        env["TRAFFICFM_TEST_PAUSE_HALF"] = "1"
    command = [sys.executable, "-m", "snakemake", target, *args, *MTIME_ONLY, "--snakefile", str(ROOT / "Snakefile"),
               "--directory", str(workdir), "--cores", "2", "--quiet=rules",
               "--configfile", str(ROOT / "config.yaml"), *map(str, _configs(workdir))]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        while not marker.exists():
            if process.poll() is not None:
                raise AssertionError(f"never reached {pause}:\n{process.stdout.read()[-4000:]}")
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        process.stdout.close()
    marker.unlink()


def _rerun(workdir: Path, target: str, *args: str) -> None:
    _snakemake(workdir, "--unlock")
    _snakemake(workdir, target, *args)


def _weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    different = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not different, f"{len(different)} tensors differ from the uninterrupted run, e.g. {different[:3]}"


def _checkpoint(workdir: Path, track: Track, step: int) -> Path:
    found = list((workdir / track.checkpoints).glob(f"ckpt_{step:07d}_*.pt"))
    assert len(found) == 1, sorted(p.name for p in (workdir / track.checkpoints).iterdir())
    return found[0]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The tiny release converted for both tracks (what every run below starts from)."""
    workdir = tmp_path_factory.mktemp("crash") / "prepared"
    workdir.mkdir()
    (workdir / "overlay.yaml").write_text(yaml.safe_dump(OVERLAY))
    _snakemake(workdir, "results/data/allinone/manifest.json", "results/data/retrieval/manifest.json")
    return workdir


@pytest.fixture(scope="module")
def reference(prepared):
    """Both trainings run through without interruption."""
    workdir = _copy(prepared, prepared.parent / "reference")
    _snakemake(workdir, *(track.model for track in TRACKS.values()))
    return workdir


@pytest.mark.parametrize("name", TRACKS)
def test_killed_training_resumes_from_the_last_whole_checkpoint(name, prepared, reference):
    track = TRACKS[name]
    folder = Path(track.checkpoints)

    # 1) killed half-way through writing its second checkpoint: half a file under a temporary name
    killed = _copy(prepared, prepared.parent / f"{name}-killed")
    _killed_at(killed, track.model, "trafficfm.checkpoints:_write:2", half_write=True)
    leftovers = list((killed / folder).glob(".ckpt_*.tmp"))
    assert len(leftovers) == 1 and leftovers[0].stat().st_size > 0
    assert not list((killed / folder).glob(f"ckpt_{track.newest:07d}_*"))

    # 2) rerun: the leftover is removed unread, training resumes from the first checkpoint, and is
    # killed again in the middle of an optimizer step after writing the second
    _snakemake(killed, "--unlock")
    _killed_at(killed, track.model, f"torch.optim.adamw:AdamW.step:{track.kill_call}")
    log = (killed / track.log).read_text()
    assert "checkpoint write that was interrupted" in log, log[-3000:]
    assert f"resuming from {folder / _checkpoint(killed, track, track.first).name} (step {track.first})" in log
    assert not list((killed / folder).glob(".ckpt_*.tmp"))
    assert not (killed / track.model).exists()
    newest = _checkpoint(killed, track, track.newest)

    # 3a) rerun: resumes from the newest checkpoint and ends with the uninterrupted run's weights
    resumed = _copy(killed, prepared.parent / f"{name}-resumed")
    _rerun(resumed, track.model)
    log = (resumed / track.log).read_text()
    assert f"resuming from {folder / newest.name} (step {track.newest})" in log, log[-3000:]
    _assert_same_weights(reference / track.model, resumed / track.model)

    # 3b) the newest checkpoint damaged (cut short) instead: reported, set aside, the one before it
    # resumes, and the weights are still the uninterrupted run's
    damaged = _copy(killed, prepared.parent / f"{name}-damaged")
    cut = damaged / folder / newest.name
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    _rerun(damaged, track.model)
    log = (damaged / track.log).read_text()
    assert f"{newest.name} is damaged" in log, log[-3000:]
    assert f"(step {track.first})" in log.split(f"{newest.name} is damaged")[1], log[-3000:]
    assert (damaged / folder / f"{newest.name}.damaged").exists()
    _assert_same_weights(reference / track.model, damaged / track.model)


def test_killed_prediction_and_packaging_leave_nothing_a_rerun_trusts(prepared, reference):
    """Killed half-way through writing the label maps, then half-way through writing the zip: no
    output is left that Snakemake would take as done, and the rerun's zip is byte-identical to an
    uninterrupted run's."""
    zip_path = "results/submissions/allinone.zip"
    killed = _copy(reference, prepared.parent / "predict-killed")
    _snakemake(reference, zip_path)
    expected = (reference / zip_path).read_bytes()

    predictions = killed / "results/allinone/experiments/base/predictions"  # where predict_allinone writes
    _killed_at(killed, zip_path, "trafficfm.allinone.predict:cv2.imwrite:2")
    assert not (predictions / "seg_test").exists()  # label maps only ever appear as a whole folder
    # (the killed run's partial folder is hidden; the validation split is predicted first, for the selection)
    assert list(predictions.glob(".seg_*.*/*.png"))
    _snakemake(killed, "--unlock")
    dry = _snakemake(killed, zip_path, "--dry-run", check=False)
    assert dry.returncode != 0 and "IncompleteFilesException" in dry.stdout + dry.stderr  # not trusted
    _snakemake(killed, zip_path, "--rerun-incomplete")
    assert (killed / zip_path).read_bytes() == expected
    assert not list(predictions.glob(".seg_*.*"))

    _killed_at(killed, zip_path, "trafficfm.submission.package:zipfile.ZipFile.writestr:1",
               "--forcerun", "package_allinone")
    submissions = killed / "results/submissions"
    assert not (killed / zip_path).exists()  # Snakemake removed the old one; no new one was renamed in
    assert [p.name for p in submissions.glob(".allinone.zip.*.tmp")]  # the partial zip is hidden
    _rerun(killed, zip_path, "--rerun-incomplete")
    assert (killed / zip_path).read_bytes() == expected
    assert zipfile.ZipFile(killed / zip_path).testzip() is None
    assert not list(submissions.glob(".allinone.zip.*.tmp"))
