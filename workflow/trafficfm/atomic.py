"""Write outputs completely or not at all: write beside the target, then rename over it."""

from __future__ import annotations

import glob
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``target`` on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):  # of a killed writer
        leftover.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    # mkstemp makes 0600 files; give the output the mode any other new file would get.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_json(target: str | Path, data, indent: int | None = 1) -> None:
    write_text(target, json.dumps(data, indent=indent) + "\n")


def write_csv(target: str | Path, frame) -> None:
    """Write a pandas DataFrame as CSV without its index."""
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, index=False)


def save_figure(fig, target: str | Path, dpi: int = 90) -> None:
    """Save a matplotlib figure as PNG."""
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
