"""Rule fuse_allinone: an AllInOne ensemble's predictions of one split, fused from its members' soft
predictions (class and segmentation probabilities averaged, boxes fused by WBF or per-class NMS)."""

from trafficfm import runtime  # noqa: I001 (first: it sets the environment torch reads)

from pathlib import Path

from trafficfm.ensemble.allinone import fuse_predictions

logger = runtime.start(snakemake.log[0], snakemake.threads)
summary = fuse_predictions(snakemake.params.members, Path(snakemake.output.cls).parent,
                           snakemake.wildcards.aio_split, snakemake.params.fusion)
logger.info("fusion summary: %s", summary)
