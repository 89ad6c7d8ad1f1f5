"""Rule evaluate_allinone: validation metrics (top-1, mAP@0.5, mIoU, score) and per-class tables,
scored from the validation split's prediction files (written by predict_allinone)."""

import argparse
from pathlib import Path

from trafficfm.allinone.evaluate import evaluate
from trafficfm.logs import setup_logging


def main(predictions, data, metrics, tables_dir, split, log=None):
    setup_logging(log)
    evaluate(predictions, data, metrics, tables_dir, split)


if "snakemake" in globals():
    main(
        Path(snakemake.input.cls).parent,
        Path(snakemake.input.manifest).parent,
        snakemake.output.metrics,
        Path(snakemake.output.metrics).parent,
        snakemake.params.split,
        log=snakemake.log[0],
    )
elif __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--predictions", default="results/allinone/predictions")
    parser.add_argument("--data", default="results/data/allinone")
    parser.add_argument("--out", default="results/allinone", help="folder for val_metrics.json and the tables")
    parser.add_argument("--split", default=None, help="validation split (default: the manifest's)")
    args = parser.parse_args()
    main(args.predictions, args.data, Path(args.out) / "val_metrics.json", args.out, args.split)
