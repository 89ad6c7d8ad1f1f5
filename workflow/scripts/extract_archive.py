"""Rule extract_archive: unpack one archive into the release root; record its top-level entries."""

from pathlib import Path

from trafficfm import atomic
from trafficfm.data.extract import extract
from trafficfm.logs import setup_logging

logger = setup_logging(snakemake.log[0])
archive, marker = snakemake.input[0], snakemake.output[0]
logger.info("extracting %s into %s", archive, snakemake.params.dest)
tops = extract(Path(archive), Path(snakemake.params.dest))
atomic.write_json(marker, {"archive": str(archive), "top_level": tops})
logger.info("extracted: %s", ", ".join(tops))
