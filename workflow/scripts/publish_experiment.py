"""Rules publish_allinone and publish_retrieval: the selected experiment's (or ensemble's) files at
the track's documented paths, as copies: each named input goes to the output of the same name."""

from trafficfm.experiments import publish
from trafficfm.logs import setup_logging

setup_logging(snakemake.log[0])
outputs = dict(snakemake.output.items())
publish({k: v for k, v in snakemake.input.items() if k in outputs}, outputs)
