"""Per-rule logging: every script sends its log records (and warnings) to the rule's `log:` file."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path


def setup_logging(log_path: str | Path | None = None, level: int = logging.INFO) -> logging.Logger:
    """Log to stderr and, when given, to ``log_path`` (the Snakemake rule's log file).

    Under torchrun only rank 0 writes the file, appending to what the launching process wrote;
    the other ranks log to stderr with their rank in each line."""
    rank = int(os.environ.get("RANK", "0"))
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path and rank == 0:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="a" if "LOCAL_RANK" in os.environ else "w"))
    logging.basicConfig(
        level=level,
        format=f"%(asctime)s {f'[rank {rank}] ' if rank else ''}%(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    logging.captureWarnings(True)
    return logging.getLogger("trafficfm")
