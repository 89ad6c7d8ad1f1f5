"""What the seed benchmarks (bench_seeds.py, bench_retrieval_seeds.py) share: the command line, the
set-up, drawing and converting a demo-generator release once per data seed, and the summary rows
(minimum, median, spread per metric) under their Markdown tables."""

from __future__ import annotations

import argparse
import fcntl
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

STATS = (("min", min), ("median", statistics.median), ("spread", lambda v: max(v) - min(v)))


def parser(doc: str, work: str, set_example: str) -> argparse.ArgumentParser:
    """The options every seed benchmark takes; the script adds its own."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configfile", nargs="*", default=[], help="overlays on config.yaml")
    p.add_argument("--data-seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--set", nargs="*", default=[], help=f"overrides, e.g. {set_example}")
    p.add_argument("--tag", default="default", help="name of this recipe in the work folder")
    p.add_argument("--work", default=str(ROOT / "results" / work))
    p.add_argument("--threads", type=int, default=None)
    return p


def setup(args) -> None:
    """Offline hub, the project's logging, the thread count asked for."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from trafficfm.logs import setup_logging

    setup_logging()
    if args.threads:
        torch.set_num_threads(args.threads)


def release(work: Path, name: str, demo_cfg: dict, settings, convert: Callable[[Path, Path], None]) -> Path:
    """``work/<name>``: the release drawn with the demo settings ``demo_cfg`` (into
    ``release<name>``, truth in ``truth<name>``) and converted by ``convert(raw, out)``; drawn once,
    then reused."""
    from trafficfm.data.demo import make_demo_release

    out = work / f"data{name}"
    work.mkdir(parents=True, exist_ok=True)
    # Runs started side by side on one release: the first draws it, the others wait for it.
    with open(work / f".data{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (out / "manifest.json").exists():
            return out
        t0 = time.perf_counter()
        raw = work / f"release{name}"
        make_demo_release(raw, demo_cfg, settings.data.layout, truth_dir=truth_dir(out))
        convert(raw, out)
        print(f"release {name}: drawn and converted in {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def truth_dir(data_dir: Path) -> Path:
    """The hidden test truth of the release converted into ``data_dir`` by :func:`release`."""
    return data_dir.parent / ("truth" + data_dir.name.removeprefix("data"))


def stat_rows(rows: list[dict], keys: Sequence[str], lead: int, trail: int) -> list[str]:
    """Markdown rows of the minimum, median and spread (max - min) of ``keys`` over ``rows``, after
    ``lead`` label columns and before ``trail`` empty ones."""
    pad_lead, pad_trail = " |" * (lead - 1), " |" * trail
    return [f"| **{name}** |{pad_lead} " + " | ".join(f"{fn([r[k] for r in rows]):.3f}" for k in keys) + f" |{pad_trail}"
            for name, fn in STATS]
