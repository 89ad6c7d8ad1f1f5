"""Rules package_allinone / package_allinone_val: predictions -> validated zip + validation report."""

import argparse
import logging
import sys
from pathlib import Path

from trafficfm.logs import setup_logging
from trafficfm.submission import submission_settings
from trafficfm.submission.package import SubmissionRejected, package_allinone


def run(cls_csv, det_json, seg_dir, dataset_dir, zip_path, report_path, split, settings, threads):
    aio = settings["allinone"]
    try:
        package_allinone(
            cls_csv, det_json, seg_dir, dataset_dir, zip_path, report_path,
            split=split,
            json_name=aio["json_name"],
            form=aio["form"],
            max_dets_per_image=aio["max_dets_per_image"],
            small_contours=aio["small_contours"],
            box_tolerance=settings["box_tolerance_px"],
            threads=threads,
            max_listed=settings["max_listed"],
        )
    except SubmissionRejected as error:
        logging.getLogger("trafficfm").error("%s", error)
        sys.exit(1)


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    run(snakemake.input.cls, snakemake.input.det, snakemake.input.seg,
        Path(snakemake.input.manifest).parent, snakemake.output.zip, snakemake.output.report,
        snakemake.params.split, snakemake.params.settings, snakemake.threads)
elif __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("predictions", type=Path, help="folder with cls_<split>.csv, det_<split>.json, seg_<split>/")
    parser.add_argument("zip", type=Path, help="the zip to write; the report goes beside it")
    parser.add_argument("--data", type=Path, default=Path("results/data/allinone"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--form", choices=["list", "object"], default="list")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    setup_logging()
    settings = submission_settings({"allinone": {"form": args.form}})
    p = args.predictions
    run(p / f"cls_{args.split}.csv", p / f"det_{args.split}.json", p / f"seg_{args.split}", args.data, args.zip,
        args.zip.with_name(f"{args.zip.stem}.validation.json"), args.split, settings, args.threads)
