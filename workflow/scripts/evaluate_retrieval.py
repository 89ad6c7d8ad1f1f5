"""Rule evaluate_retrieval: val mAP@10 / Recall@K before and after fine-tuning, per kind, the
re-ranking decision and the val rankings."""

from trafficfm import runtime  # noqa: I001 (first: it sets the environment torch reads)

runtime.passive_omp_threads()  # a data-loading worker shares the cores

import argparse  # noqa: E402
import os
from pathlib import Path

import yaml

from trafficfm.retrieval.evaluate import evaluate


def run(dataset_dir, model_path, outputs, model_cfg, eval_cfg, seed, split, threads):
    eval_cfg = {**eval_cfg, "workers": 1 if threads >= 2 else 0}
    evaluate(dataset_dir, model_path, outputs["metrics"], outputs["per_kind"], outputs["rerank"], model_cfg,
             eval_cfg, seed=seed, split=split, rankings_out=outputs["rankings"])


if "snakemake" in globals():
    runtime.start(snakemake.log[0], snakemake.threads)
    out = snakemake.output
    run(
        Path(snakemake.input.manifest).parent,
        snakemake.input.model,
        {"metrics": out.metrics, "per_kind": out.per_kind, "rerank": out.rerank, "rankings": out.rankings},
        snakemake.params.model,
        snakemake.params.eval,
        snakemake.params.seed,
        snakemake.params.split,
        snakemake.threads,
    )
elif __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset_dir", help="canonical retrieval dataset (results/data/retrieval)")
    parser.add_argument("--model", default="results/retrieval/model.pt")
    parser.add_argument("--out-dir", default="results/retrieval")
    parser.add_argument("--config", default="config.yaml", help="config file with a retrieval: section")
    parser.add_argument("--split", default="val")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    runtime.start(None, args.threads)
    section = yaml.safe_load(Path(args.config).read_text())["retrieval"]
    out = Path(args.out_dir)
    outputs = {"metrics": out / "val_metrics.json", "per_kind": out / "val_metrics_per_kind.json",
               "rerank": out / "rerank.json", "rankings": out / f"{args.split}_rankings.csv"}
    run(args.dataset_dir, args.model, outputs, section["model"], section["eval"],
        section["train"].get("seed", 0), args.split, args.threads)
