"""Rule convert_allinone: the AllInOne release -> canonical tables and COCO files (checked)."""

from pathlib import Path

from trafficfm.data.convert_allinone import convert_allinone
from trafficfm.logs import setup_logging

setup_logging(snakemake.log[0])
convert_allinone(
    snakemake.params.root,
    Path(snakemake.output.manifest).parent,
    layout=snakemake.params.layout,
    num_classes=snakemake.params.num_classes,
    on_error=snakemake.params.on_error,
)
