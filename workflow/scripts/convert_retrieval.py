"""Rule convert_retrieval: the retrieval release -> canonical pair, image and query tables."""

from pathlib import Path

from trafficfm.data.convert_retrieval import convert_retrieval
from trafficfm.logs import setup_logging

setup_logging(snakemake.log[0])
convert_retrieval(
    snakemake.params.root,
    Path(snakemake.output.manifest).parent,
    layout=snakemake.params.layout,
    on_error=snakemake.params.on_error,
)
