"""Rule train_allinone: joint training of the AllInOne model (resumes from its checkpoints).

Given several GPUs (Snakemake resources gpu=N) the rule starts itself under torchrun. By hand, on
several GPUs or nodes, with the same code:
    torchrun --nproc_per_node 4 workflow/scripts/train_allinone.py --config config.yaml \\
        --data results/data/allinone --out results/allinone
"""

from trafficfm import runtime  # noqa: I001 (first: it sets the environment torch reads)

import argparse
from pathlib import Path

import yaml

from trafficfm.allinone.train import train


def main(data, model, checkpoints, cfg, curve=None, history=None, device="auto", threads=None, log=None):
    logger = runtime.start(log, threads)
    summary = train(data, model, checkpoints, cfg, curve_path=curve, history_path=history, device=device)
    logger.info("training summary: %s", summary)


if "snakemake" in globals():
    if not runtime.ran_as_ranks(snakemake):  # several GPUs: torchrun runs this script per GPU
        main(
            Path(snakemake.input.manifest).parent,
            snakemake.output.model,
            snakemake.params.checkpoint_dir,
            snakemake.params.cfg,
            curve=snakemake.output.curve,
            history=snakemake.output.history,
            device=snakemake.params.device,
            threads=snakemake.threads,
            log=snakemake.log[0],
        )
elif __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config.yaml", help="YAML file with an 'allinone' section")
    parser.add_argument("--data", default="results/data/allinone", help="canonical AllInOne dataset folder")
    parser.add_argument("--out", default="results/allinone", help="folder for model.pt, the curve and history")
    parser.add_argument("--checkpoints", default=None, help="checkpoint folder (default: <out>/checkpoints)")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda (default: config allinone.device)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    args = parser.parse_args()
    cfg = yaml.safe_load(Path(args.config).read_text())["allinone"]
    out = Path(args.out)
    main(args.data, out / "model.pt", args.checkpoints or out / "checkpoints", cfg, out / "training_curve.png",
         out / "training_history.json", args.device or cfg.get("device", "auto"), args.threads)
