"""Fingerprinted training checkpoints: a crash loses at most one checkpoint interval.

One folder per training holds ``ckpt_<step>_<fingerprint>.pt`` files. The fingerprint hashes the
settings that change the result (hyperparameters, model, data), so a file's name says which run it
belongs to.

- ``save`` writes a temporary file, flushes it to disk (fsync), renames it into place and syncs the
  folder: a kill or power cut leaves either the complete new file or none, plus at worst a
  ``.ckpt_*.tmp`` leftover that is never read and is removed by the next ``resume``. The ``keep``
  newest checkpoints of this fingerprint are kept.
- ``latest`` loads the newest checkpoint of this fingerprint that reads back whole. A damaged one
  (truncated, unreadable, not a checkpoint) is reported in the log and renamed ``*.damaged`` (kept
  for inspection, never loaded again); the one before it is tried next.
- ``resume`` is what a training calls at start: ``latest`` plus the decision about checkpoints of
  other settings. Those come from a run whose settings have since changed, and Snakemake reruns a
  training precisely because its settings changed, so the training starts over: the log names the
  settings that differ and the old files move to ``other-settings/`` (one generation, replaced by
  the next) instead of being deleted, so an accidental change costs nothing.

Under torchrun every rank reads (``writer=False`` on all but rank 0); rank 0 alone writes, renames
and deletes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from . import atomic

log = logging.getLogger(__name__)

NAME = re.compile(r"^ckpt_(\d{7,})_([0-9a-f]{16})\.pt$")
ASIDE = "other-settings"
_MAX_LISTED = 8


def fingerprint(settings) -> str:
    """16 hex digits of the SHA-256 of ``settings`` as canonical JSON (key order does not matter)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes, for putting a data file into the settings."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: Path
    state: dict


class CheckpointStore:
    """``CheckpointStore(folder, settings, keep=2, writer=True)``; ``settings`` is JSON-able and
    holds everything that changes the result (nothing about logging or checkpoint frequency)."""

    def __init__(self, directory: str | Path, settings, keep: int = 2, writer: bool = True):
        self.directory = Path(directory)
        self.settings = settings
        self.fingerprint = fingerprint(settings)
        self.keep = max(1, int(keep))
        self.writer = writer

    # ------------------------------------------------------------------------------------ writing
    def path(self, step: int) -> Path:
        return self.directory / f"ckpt_{int(step):07d}_{self.fingerprint}.pt"

    def save(self, step: int, state: dict) -> Path | None:
        """Write ``state`` (any torch-saveable dict) as the checkpoint of ``step``; keep the newest."""
        if not self.writer:
            return None
        path = self.path(step)
        blob = {"step": int(step), "fingerprint": self.fingerprint, "settings": self.settings, "state": state}
        with atomic.atomic_path(path) as tmp:
            _write(blob, tmp)
        _fsync_dir(self.directory)
        for old in self._mine()[: -self.keep]:
            old.unlink(missing_ok=True)
        log.info("checkpoint of step %d saved: %s", step, path)
        return path

    # ------------------------------------------------------------------------------------ reading
    def latest(self) -> Checkpoint | None:
        """The newest checkpoint of these settings that reads back whole; damaged ones are set aside."""
        for path in reversed(self._mine()):
            step = int(NAME.match(path.name).group(1))
            try:
                blob = torch.load(path, map_location="cpu", weights_only=False)
                problem = _check(blob, step, self.fingerprint)
            except Exception as exc:  # truncated or garbled: any reader error means "not usable"
                problem = f"unreadable ({type(exc).__name__}: {str(exc)[:200]})"
            if problem is None:
                return Checkpoint(step, path, blob["state"])
            self._set_aside_damaged(path, problem)
        return None

    def resume(self) -> Checkpoint | None:
        """At the start of a training: clear leftovers of interrupted writes, set aside checkpoints
        of other settings (naming what differs), then return :meth:`latest` (None: start at 0)."""
        if not self.directory.is_dir():
            log.info("no checkpoint in %s: starting at step 0", self.directory)
            return None
        if self.writer:
            for tmp in self.directory.glob(".ckpt_*.tmp"):
                log.warning("removing %s: a checkpoint write that was interrupted (never read)", tmp)
                tmp.unlink(missing_ok=True)
        self._set_aside_others()
        found = self.latest()
        if found is None:
            log.info("no usable checkpoint with fingerprint %s in %s: starting at step 0",
                     self.fingerprint, self.directory)
        else:
            log.info("resuming from %s (step %d)", found.path, found.step)
        return found

    # ---------------------------------------------------------------------------------- internals
    def _all(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted((p for p in self.directory.iterdir() if NAME.match(p.name)),
                      key=lambda p: int(NAME.match(p.name).group(1)))

    def _mine(self) -> list[Path]:
        return [p for p in self._all() if NAME.match(p.name).group(2) == self.fingerprint]

    def _set_aside_damaged(self, path: Path, problem: str) -> None:
        target = path.with_name(path.name + ".damaged")
        log.warning("checkpoint %s is damaged: %s; %s, trying the one before it", path, problem,
                    f"set aside as {target.name}" if self.writer else "skipped")
        if self.writer:
            try:
                os.replace(path, target)
            except FileNotFoundError:
                pass

    def _set_aside_others(self) -> None:
        others = [p for p in self._all() if NAME.match(p.name).group(2) != self.fingerprint]
        if not others:
            return
        changes = _differences(_read_settings(others[-1]), self.settings)
        listed = "; ".join(changes[:_MAX_LISTED]) + (f"; and {len(changes) - _MAX_LISTED} more"
                                                     if len(changes) > _MAX_LISTED else "")
        log.warning("%d checkpoint(s) in %s were written with other settings (%s); %s", len(others),
                    self.directory, listed or "settings unreadable",
                    f"not resuming them: training starts over, and they move to {ASIDE}/" if self.writer
                    else "not resuming them")
        if not self.writer:
            return
        aside = self.directory / ASIDE
        shutil.rmtree(aside, ignore_errors=True)
        aside.mkdir()
        for path in others:
            os.replace(path, aside / path.name)


def _write(blob: dict, path: Path) -> None:
    """torch.save, then flush to disk before the caller renames the file into place."""
    with open(path, "wb") as f:
        torch.save(blob, f)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (the folder entry), where the platform allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _check(blob, step: int, fp: str) -> str | None:
    if not isinstance(blob, dict) or not {"step", "fingerprint", "state"} <= set(blob):
        return "not a checkpoint of this project (keys missing)"
    if blob["fingerprint"] != fp or int(blob["step"]) != step:
        return f"holds step {blob['step']} fingerprint {blob['fingerprint']}, not what its name says"
    return None


def _read_settings(path: Path):
    try:  # mmap: tensors stay on disk, only the small settings part is read
        return torch.load(path, map_location="cpu", weights_only=False, mmap=True).get("settings")
    except Exception:
        return None


def _flatten(obj, prefix: str = "") -> dict:
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: obj}


def _differences(old, new) -> list[str]:
    """``key: old -> new`` for every setting that differs (values shortened)."""
    if old is None:
        return []
    a, b = _flatten(old), _flatten(new)

    def show(d, k):
        return "(absent)" if k not in d else (s if len(s := json.dumps(d[k], default=str)) <= 60 else s[:57] + "...")

    missing = object()
    return [f"{k}: {show(a, k)} -> {show(b, k)}" for k in sorted(set(a) | set(b))
            if a.get(k, missing) != b.get(k, missing)]
