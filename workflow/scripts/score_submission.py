"""Rules score_allinone / score_retrieval: the organisers' metrics of a packaged labelled-split zip."""

import json
import logging
import sys
from pathlib import Path

from trafficfm import atomic
from trafficfm.logs import setup_logging
from trafficfm.submission.reference import AllInOneReference, RetrievalReference
from trafficfm.submission.score import NotScorable, score_allinone_file, score_retrieval_file

setup_logging(snakemake.log[0])
log = logging.getLogger("trafficfm")
params, zip_path, dataset_dir = snakemake.params, snakemake.input.zip, Path(snakemake.input.manifest).parent
try:
    if params.track == "allinone":
        reference = AllInOneReference.from_dataset(dataset_dir, params.split)
        scores, _ = score_allinone_file(zip_path, reference, params.form, params.box_tolerance)
    else:
        reference = RetrievalReference.from_dataset(dataset_dir, params.split)
        scores, _ = score_retrieval_file(zip_path, reference, params.top_k)
except NotScorable as error:
    log.error("%s", error)
    sys.exit(1)
scores["submission"] = str(zip_path)
atomic.write_text(snakemake.output.scores, json.dumps(scores, indent=1) + "\n")
log.info("%s %s: %s", params.track, params.split, {k: round(v, 4) for k, v in scores.items() if isinstance(v, float)})
