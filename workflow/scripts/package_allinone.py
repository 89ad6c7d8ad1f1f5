"""Rules package_allinone / package_allinone_val: predictions -> validated zip + validation report."""

import logging
import sys
from pathlib import Path

from trafficfm import runtime
from trafficfm.logs import setup_logging
from trafficfm.submission.package import SubmissionRejected, package_allinone

setup_logging(snakemake.log[0])
try:
    package_allinone(Path(snakemake.input.cls).parent, Path(snakemake.input.manifest).parent,
                     snakemake.params.split, snakemake.output.zip, snakemake.output.report,
                     runtime.settings(snakemake), threads=snakemake.threads)
except SubmissionRejected as error:
    logging.getLogger("trafficfm").error("%s", error)
    sys.exit(1)
