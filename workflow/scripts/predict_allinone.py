"""Rule predict_allinone: class ids, boxes and label maps of one split, in original image pixels."""

from trafficfm import runtime  # noqa: I001 (first: it sets the environment torch reads)

import argparse
from pathlib import Path

import yaml

from trafficfm.allinone.predict import predict


def main(model, data, out_dir, split, infer_cfg, device="auto", threads=None, log=None):
    logger = runtime.start(log, threads)
    logger.info("prediction summary: %s", predict(model, data, out_dir, split, infer_cfg, device=device))


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
