"""Rule evaluate_allinone: validation metrics (top-1, mAP@0.5, mIoU, score) and per-class tables."""

from trafficfm import runtime  # noqa: I001 (first: it sets the environment torch reads)

import argparse
from pathlib import Path

import yaml

from trafficfm.allinone.evaluate import evaluate


def main(model, data, metrics, tables_dir, infer_cfg, device="auto", threads=None, log=None):
    logger = runtime.start(log, threads)
    logger.info("validation metrics: %s", evaluate(model, data, metrics, tables_dir, infer_cfg, device=device))


if "snakemake" in globals():
    main(
        snakemake.input.model,
        Path(snakemake.input.manifest).parent,
        snakemake.output.metrics,
        Path(snakemake.output.metrics).parent,
        snakemake.params.inference,
        device=snakemake.params.device,
        threads=snakemake.threads,
        log=snakemake.log[0],
    )
elif __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="config.yaml", help="YAML file with an 'allinone' section")
    parser.add_argument("--model", default="results/allinone/model.pt")
    parser.add_argument("--data", default="results/data/allinone")
    parser.add_argument("--out", default="results/allinone", help="folder for val_metrics.json and the tables")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    cfg = yaml.safe_load(Path(args.config).read_text())["allinone"]
    main(args.model, args.data, Path(args.out) / "val_metrics.json", args.out, cfg.get("inference", {}),
         args.device or cfg.get("device", "auto"))
