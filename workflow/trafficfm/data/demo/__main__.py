"""``python -m trafficfm.data.demo OUT_ROOT [--archives DIR] [--tiny] [--seed N] [--configfile F]...``:
write (and pack) the demo release of config.yaml (+ overlays) by hand, printing the counts and the
time taken."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ...config import load
from .release import archive_folders, make_demo_release, pack_archives

TINY = {
    "cls_classes": 4, "cls_train": 8, "cls_val": 4, "cls_test": 4,
    "det_train": 6, "det_val": 4, "det_test": 4, "det_size": [256, 384],
    "seg_train": 6, "seg_val": 4, "seg_test": 4, "seg_size": [160, 90],
    "retrieval_train": 24, "retrieval_val": 12, "retrieval_test": 12, "retrieval_test_queries": 6,
}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m trafficfm.data.demo", description=__doc__)
    ap.add_argument("out_root", type=Path)
    ap.add_argument("--archives", type=Path, help="also pack the archives into this folder")
    ap.add_argument("--tiny", action="store_true", help="a few images per split (for tests)")
    ap.add_argument("--seed", type=int, help="data seed (default: config.yaml's data.demo.seed)")
    ap.add_argument("--configfile", action="append", default=[],
                    help="a config overlay on config.yaml, as snakemake --configfile (repeat for several)")
    args = ap.parse_args(argv)
    overrides = [{"data": {"demo": TINY}}] if args.tiny else []
    if args.seed is not None:
        overrides.append(f"data.demo.seed={args.seed}")
    data = load(*args.configfile, overrides=overrides).data
    counts = make_demo_release(args.out_root, data.demo, data.layout)
    print(json.dumps(counts, indent=1))
    if args.archives:
        sums = pack_archives(args.out_root, args.archives, data.archives, archive_folders(data.layout))
        print(sums.read_text(), end="")


if __name__ == "__main__":
    main()
