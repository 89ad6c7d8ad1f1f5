"""Rules score_allinone / score_retrieval: the organisers' metrics of a packaged labelled-split zip;
score_*_test: of the leaderboard zip on the demo's hidden test truth, beside the validation scores."""

import json
import logging
import sys
from pathlib import Path

from trafficfm import atomic
from trafficfm.logs import setup_logging
from trafficfm.submission.reference import AllInOneReference, RetrievalReference
from trafficfm.submission.score import NotScorable, score_allinone_file, score_retrieval_file

# the metrics whose validation-test gap is reported
HEADLINE = {"allinone": ("score", "cls_top1", "det_map50", "seg_miou"), "retrieval": ("map10",)}

setup_logging(snakemake.log[0])
log = logging.getLogger("trafficfm")
params, zip_path, dataset_dir = snakemake.params, snakemake.input.zip, Path(snakemake.input.manifest).parent
truth = snakemake.input.get("truth")
try:
    if params.track == "allinone":
        reference = AllInOneReference.from_dataset(dataset_dir, params.split)
        reference = reference.with_truth(truth) if truth else reference
        scores, _ = score_allinone_file(zip_path, reference, params.form, params.box_tolerance)
    else:
        reference = RetrievalReference.from_dataset(dataset_dir, params.split)
        reference = reference.with_truth(truth) if truth else reference
        scores, _ = score_retrieval_file(zip_path, reference, params.top_k)
except (NotScorable, ValueError) as error:
    log.error("%s", error)
    sys.exit(1)
scores["submission"] = str(zip_path)
if snakemake.input.get("val"):
    val = json.loads(Path(snakemake.input.val).read_text())
    scores["val_minus_test"] = gaps = {k: round(val[k] - scores[k], 4) for k in HEADLINE[params.track]}
    log.info("validation minus test: %s", gaps)
atomic.write_text(snakemake.output.scores, json.dumps(scores, indent=1) + "\n")
log.info("%s %s: %s", params.track, params.split, {k: round(v, 4) for k, v in scores.items() if isinstance(v, float)})
