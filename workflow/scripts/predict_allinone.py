"""Rule predict_allinone: class ids, boxes and label maps of one split, in original image pixels
(and, for ensemble members, the soft predictions their ensembles fuse)."""

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
    soft_dir=snakemake.output.soft if snakemake.params.soft else None,
    soft_top_k=snakemake.params.soft_top_k,
)
Path(snakemake.output.soft).mkdir(parents=True, exist_ok=True)  # empty unless an ensemble member
logger.info("prediction summary: %s", summary)
