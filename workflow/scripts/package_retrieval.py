"""Rules package_retrieval / package_retrieval_val: a ranking -> validated zip + validation report."""

import logging
import sys
from pathlib import Path

from trafficfm import runtime
from trafficfm.logs import setup_logging
from trafficfm.submission.package import SubmissionRejected, package_retrieval

setup_logging(snakemake.log[0])
try:
    package_retrieval(snakemake.input.rankings, Path(snakemake.input.manifest).parent, snakemake.params.split,
                      snakemake.output.zip, snakemake.output.report, runtime.settings(snakemake))
except SubmissionRejected as error:
    logging.getLogger("trafficfm").error("%s", error)
    sys.exit(1)
