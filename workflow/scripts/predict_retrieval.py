"""Rule predict_retrieval: top-10 test images for every test query -> results/retrieval/test_rankings.csv."""

from trafficfm import runtime  # noqa: I001 (first: it sets the environment torch reads)

runtime.passive_omp_threads()  # a data-loading worker shares the cores

import argparse  # noqa: E402
import os
from pathlib import Path

import yaml

from trafficfm.retrieval.predict import predict


def run(dataset_dir, model_path, rerank_path, out_csv, eval_cfg, threads):
    eval_cfg = {**eval_cfg, "workers": 1 if threads >= 2 else 0}
    predict(dataset_dir, model_path, rerank_path, out_csv, eval_cfg)


if "snakemake" in globals():
    runtime.start(snakemake.log[0], snakemake.threads)
    run(
        Path(snakemake.input.manifest).parent,
        snakemake.input.model,
        snakemake.input.rerank,
        snakemake.output.rankings,
        snakemake.params.eval,
        snakemake.threads,
    )
elif __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset_dir", help="canonical retrieval dataset (results/data/retrieval)")
    parser.add_argument("--model", default="results/retrieval/model.pt")
    parser.add_argument("--rerank", default="results/retrieval/rerank.json",
                        help="re-ranking decision from evaluate_retrieval ('' = plain ranking)")
    parser.add_argument("--out", default="results/retrieval/test_rankings.csv")
    parser.add_argument("--config", default="config.yaml", help="config file with a retrieval: section")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    runtime.start(None, args.threads)
    section = yaml.safe_load(Path(args.config).read_text())["retrieval"]
    run(args.dataset_dir, args.model, args.rerank or None, args.out, section["eval"], args.threads)
