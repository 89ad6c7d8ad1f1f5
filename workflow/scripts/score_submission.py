"""Rules score_allinone / score_retrieval: the organisers' metrics of a packaged labelled-split zip."""

import argparse
import json
import logging
import sys
from pathlib import Path

from trafficfm import atomic
from trafficfm.logs import setup_logging
from trafficfm.submission.reference import AllInOneReference, RetrievalReference
from trafficfm.submission.score import NotScorable, score_allinone_file, score_retrieval_file


def run(track, zip_path, dataset_dir, split, scores_path, form=None, box_tolerance=1.0, top_k=10):
    log = logging.getLogger("trafficfm")
    try:
        if track == "allinone":
            reference = AllInOneReference.from_dataset(dataset_dir, split)
            scores, _ = score_allinone_file(zip_path, reference, form, box_tolerance)
        else:
            reference = RetrievalReference.from_dataset(dataset_dir, split)
            scores, _ = score_retrieval_file(zip_path, reference, top_k)
    except NotScorable as error:
        log.error("%s", error)
        sys.exit(1)
    scores["submission"] = str(zip_path)
    atomic.write_text(scores_path, json.dumps(scores, indent=1) + "\n")
    log.info("%s %s: %s", track, split, {k: round(v, 4) for k, v in scores.items() if isinstance(v, float)})


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    p = snakemake.params
    run(p.track, snakemake.input.zip, Path(snakemake.input.manifest).parent, p.split, snakemake.output.scores,
        form=p.get("form"), box_tolerance=p.get("box_tolerance", 1.0), top_k=p.get("top_k", 10))
elif __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("track", choices=["allinone", "retrieval"])
    parser.add_argument("zip", type=Path)
    parser.add_argument("scores", type=Path, help="JSON file to write the metrics to")
    parser.add_argument("--data", type=Path, help="canonical dataset folder (default: results/data/<track>)")
    parser.add_argument("--split", default="val")
    args = parser.parse_args()
    setup_logging()
    run(args.track, args.zip, args.data or Path(f"results/data/{args.track}"), args.split, args.scores)
