"""Rule evaluate_allinone: validation metrics (top-1, mAP@0.5, mIoU, score) and per-class tables."""

import argparse
import os

# Idle OpenMP threads sleep instead of spinning: on a CPU shared with other jobs, spinning threads
# of a 2-thread run can make it several times slower. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from pathlib import Path

import torch
import yaml

from trafficfm.allinone.evaluate import evaluate
from trafficfm.logs import setup_logging


def main(model, data, metrics, tables_dir, infer_cfg, device="auto", threads=None, log=None):
    logger = setup_logging(log)
    if threads and not torch.cuda.is_available():
        torch.set_num_threads(int(threads))
    result = evaluate(model, data, metrics, tables_dir, infer_cfg, device=device)
    logger.info("validation metrics: %s", result)


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
