"""Per-rule logging: every script sends its log records (and warnings) to the rule's `log:` file,
and a script that stops on an exception reports it there too (:func:`report_uncaught`)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from .errors import TrafficfmError


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
    sys.excepthook = report_uncaught
    return logging.getLogger("trafficfm")


def report_uncaught(kind: type[BaseException], error: BaseException, traceback) -> None:
    """Where a script's uncaught exception goes (``sys.excepthook``): to the log handlers, which
    write the rule's log file and stderr, so stderr shows it once. An expected failure
    (:class:`~trafficfm.errors.TrafficfmError`) is the message alone; anything else keeps its
    traceback. The process then exits with status 1, as Python does after any uncaught exception."""
    log = logging.getLogger("trafficfm")
    if issubclass(kind, TrafficfmError):
        log.error("%s", error)
    elif issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, traceback)
    else:
        log.critical("unexpected error (a bug or a problem of the environment):",
                     exc_info=(kind, error, traceback))
