"""Rule data_report: counts, image sizes and example images of both converted datasets."""

from pathlib import Path

from trafficfm.data.report import write_data_report
from trafficfm.logs import setup_logging

if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    write_data_report(
        Path(snakemake.input.allinone).parent,
        Path(snakemake.input.retrieval).parent,
        snakemake.output.summary,
        snakemake.output.counts,
        snakemake.output.sizes,
        snakemake.output.examples,
        examples=snakemake.params.examples,
    )
