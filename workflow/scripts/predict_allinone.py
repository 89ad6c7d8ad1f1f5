"""Rule predict_allinone: class ids, boxes and label maps of one split, in original image pixels."""

from trafficfm import runtime  # noqa: I001 (first: it sets the environment torch reads)

from pathlib import Path

from trafficfm.allinone.predict import predict

logger = runtime.start(snakemake.log[0], snakemake.threads)
summary = predict(
    snakemake.input.model,
    Path(snakemake.input.manifest).parent,
    Path(snakemake.output.cls).parent,
    snakemake.wildcards.aio_split,
    runtime.settings(snakemake).allinone,
)
logger.info("prediction summary: %s", summary)
