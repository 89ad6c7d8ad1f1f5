"""Checkpoints select_allinone and select_retrieval: which experiment or ensemble a track packages
(``experiments.select``: best by validation score, or a name) -> results/<track>/selection.json."""

from trafficfm.experiments import write_selection
from trafficfm.logs import setup_logging

setup_logging(snakemake.log[0])
write_selection(snakemake.params.plan, dict(zip(snakemake.params.names, snakemake.input.metrics)),
                snakemake.output.selection)
