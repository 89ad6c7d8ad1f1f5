"""Rule make_demo_archives: draw the demo release in the organisers' layout and pack its archives."""

import shutil
import tempfile
from pathlib import Path

from trafficfm.data.demo import archive_folders, make_demo_release, pack_archives
from trafficfm.logs import setup_logging


def main(demo, layout, archives, archive_dir, truth_dir, log=None):
    logger = setup_logging(log)
    archive_dir = Path(archive_dir)
    archive_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=archive_dir, prefix=".build-") as build:
        release = Path(build) / "release"
        counts = make_demo_release(release, demo, layout)
        logger.info("demo release drawn: %s", counts)
        pack_archives(release, archive_dir, archives, folders=archive_folders(layout))
        # The hidden test answers stay outside every archive; keep them to score the demo end to end.
        truth = Path(build) / "demo_truth"
        shutil.rmtree(truth_dir, ignore_errors=True)
        if truth.is_dir():
            shutil.move(str(truth), truth_dir)
        else:
            Path(truth_dir).mkdir(parents=True)
    logger.info("archives written to %s", archive_dir)


if "snakemake" in globals():
    main(snakemake.params.demo, snakemake.params.layout, snakemake.params.archives,
         Path(snakemake.output.sums).parent, snakemake.output.truth, snakemake.log[0])
