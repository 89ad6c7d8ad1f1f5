"""Rule fetch_archive: download (or copy) one release archive, verify its SHA-256, resume partials."""

from pathlib import Path

from trafficfm.data.fetch import fetch, read_sha256sums
from trafficfm.logs import setup_logging

logger = setup_logging(snakemake.log[0])
url, dest, sha256 = snakemake.params.url, snakemake.output[0], snakemake.params.sha256
sums = snakemake.input.get("sums")
if sha256 is None and sums:
    # Demo archives: the hash comes from the SHA256SUMS written with them.
    sha256 = read_sha256sums(sums)[Path(dest).name]
if sha256 is None:
    logger.warning("%s: no sha256 configured; the download is not verified", url)
download = snakemake.params.download
logger.info("fetching %s -> %s", url, dest)
fetch(url, Path(dest), sha256, retries=download["retries"], backoff_s=download["backoff_s"],
      timeout_s=download["timeout_s"])
logger.info("done: %s", dest)
