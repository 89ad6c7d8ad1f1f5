"""Rule predict_allinone: class ids, boxes and label maps of one split, in original image pixels."""

import argparse
import os

# Idle OpenMP threads sleep instead of spinning: on a CPU shared with other jobs, spinning threads
# of a 2-thread run can make it several times slower. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from pathlib import Path

import torch
import yaml

from trafficfm.allinone.predict import predict
from trafficfm.logs import setup_logging


def main(model, data, out_dir, split, infer_cfg, device="auto", threads=None, log=None):
    logger = setup_logging(log)
    if threads and not torch.cuda.is_available():
        torch.set_num_threads(int(threads))
    summary = predict(model, data, out_dir, split, infer_cfg, device=device)
    logger.info("prediction summary: %s", summary)


if "snakemake" in globals():
    main(
        snakemake.input.model,
        Path(snakemake.input.manifest).parent,
        Path(snakemake.output.cls).parent,
        snakemake.wildcards.aio_split,
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
    parser.add_argument("--out", default="results/allinone/predictions")
    parser.add_argument("--split", default="test")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    cfg = yaml.safe_load(Path(args.config).read_text())["allinone"]
    main(args.model, args.data, args.out, args.split, cfg.get("inference", {}),
         args.device or cfg.get("device", "auto"))
