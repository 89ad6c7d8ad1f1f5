"""Rules package_retrieval / package_retrieval_val: a ranking -> validated zip + validation report."""

import argparse
import logging
import sys
from pathlib import Path

from trafficfm.logs import setup_logging
from trafficfm.submission import submission_settings
from trafficfm.submission.package import SubmissionRejected, package_retrieval


def run(rankings_csv, dataset_dir, zip_path, report_path, split, settings):
    try:
        package_retrieval(
            rankings_csv, dataset_dir, zip_path, report_path,
            split=split,
            json_name=settings["retrieval"]["json_name"],
            top_k=settings["retrieval"]["top_k"],
            max_listed=settings["max_listed"],
        )
    except SubmissionRejected as error:
        logging.getLogger("trafficfm").error("%s", error)
        sys.exit(1)


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    run(snakemake.input.rankings, Path(snakemake.input.manifest).parent, snakemake.output.zip,
        snakemake.output.report, snakemake.params.split, snakemake.params.settings)
elif __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("rankings", type=Path, help="<split>_rankings.csv (query, text, rank, name)")
    parser.add_argument("zip", type=Path, help="the zip to write; the report goes beside it")
    parser.add_argument("--data", type=Path, default=Path("results/data/retrieval"))
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    setup_logging()
    run(args.rankings, args.data, args.zip, args.zip.with_name(f"{args.zip.stem}.validation.json"), args.split,
        submission_settings(None))
