"""Rule finetune_retrieval: canonical training pairs -> fine-tuned open_clip model (+ summary)."""

from trafficfm import runtime  # noqa: I001 (first: it sets the environment torch reads)

runtime.passive_omp_threads()  # a data-loading worker shares the cores

import argparse  # noqa: E402
import os
from pathlib import Path

import yaml

from trafficfm.retrieval.train import finetune


def run(dataset_dir, model_out, summary_out, model_cfg, train_cfg, checkpoint_dir, split, threads):
    train_cfg = {**train_cfg, "workers": 1 if threads >= 2 else 0}
    finetune(dataset_dir, model_out, model_cfg, train_cfg, checkpoint_dir, summary_out, split=split)


if "snakemake" in globals():
    if not runtime.ran_as_ranks(snakemake):  # several GPUs: torchrun runs this script per GPU
        run(
            Path(snakemake.input.manifest).parent,
            snakemake.output.model,
            snakemake.output.summary,
            snakemake.params.model,
            snakemake.params.train,
            snakemake.params.checkpoint_dir,
            snakemake.params.split,
            snakemake.threads,
        )
elif __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset_dir", help="canonical retrieval dataset (results/data/retrieval)")
    parser.add_argument("--model-out", default="results/retrieval/model.pt")
    parser.add_argument("--summary-out", default="results/retrieval/train_summary.json")
    parser.add_argument("--config", default="config.yaml", help="config file with a retrieval: section")
    parser.add_argument("--checkpoint-dir", default="results/retrieval/checkpoints")
    parser.add_argument("--split", default="train")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    runtime.start(None, args.threads)
    section = yaml.safe_load(Path(args.config).read_text())["retrieval"]
    run(args.dataset_dir, args.model_out, args.summary_out, section["model"], section["train"],
        args.checkpoint_dir, args.split, args.threads)
