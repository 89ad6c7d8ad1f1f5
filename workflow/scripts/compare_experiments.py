"""Rule compare_experiments: every experiment and ensemble of both tracks in one table
(results/experiments/comparison.csv), training curves overlaid and per-class results side by side."""

from trafficfm.comparison import compare
from trafficfm.logs import setup_logging

logger = setup_logging(snakemake.log[0])
out = snakemake.output
frame = compare(snakemake.params.plans, {"allinone": snakemake.input.aio_selection,
                                         "retrieval": snakemake.input.ret_selection},
                out.table, out.curves, out.per_class)
logger.info("comparison of %d experiments and ensembles:\n%s", len(frame), frame.to_string())
