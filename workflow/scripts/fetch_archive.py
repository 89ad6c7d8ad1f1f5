"""Rule fetch_archive: download (or copy) one release archive, verify its SHA-256, resume partials."""

import argparse
from pathlib import Path

from trafficfm.data.fetch import fetch, read_sha256sums
from trafficfm.logs import setup_logging


def main(url, dest, sha256=None, sums=None, download=None, log=None):
    logger = setup_logging(log)
    if sha256 is None and sums:
        # Demo archives: the hash comes from the SHA256SUMS written with them.
        sha256 = read_sha256sums(sums)[Path(dest).name]
    if sha256 is None:
        logger.warning("%s: no sha256 configured; the download is not verified", url)
    download = download or {}
    logger.info("fetching %s -> %s", url, dest)
    fetch(url, Path(dest), sha256, retries=download.get("retries", 5),
          backoff_s=download.get("backoff_s", 2.0), timeout_s=download.get("timeout_s", 60))
    logger.info("done: %s", dest)


if "snakemake" in globals():
    main(snakemake.params.url, snakemake.output[0], snakemake.params.sha256,
         snakemake.input.get("sums"), snakemake.params.download, snakemake.log[0])
elif __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("dest")
    parser.add_argument("--sha256")
    args = parser.parse_args()
    main(args.url, args.dest, args.sha256)
