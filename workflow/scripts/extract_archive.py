"""Rule extract_archive: unpack one archive into the release root; record its top-level entries."""

import argparse
from pathlib import Path

from trafficfm import atomic
from trafficfm.data.extract import extract
from trafficfm.logs import setup_logging


def main(archive, dest_root, marker, log=None):
    logger = setup_logging(log)
    logger.info("extracting %s into %s", archive, dest_root)
    tops = extract(Path(archive), Path(dest_root))
    atomic.write_json(marker, {"archive": str(archive), "top_level": tops})
    logger.info("extracted: %s", ", ".join(tops))


if "snakemake" in globals():
    main(snakemake.input[0], snakemake.params.dest, snakemake.output[0], snakemake.log[0])
elif __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("archive")
    parser.add_argument("dest_root")
    parser.add_argument("marker")
    args = parser.parse_args()
    main(args.archive, args.dest_root, args.marker)
