"""Rule evaluate_allinone: validation metrics (top-1, mAP@0.5, mIoU, score) and per-class tables,
scored from the validation split's prediction files (written by predict_allinone)."""

from pathlib import Path

from trafficfm.allinone.evaluate import evaluate
from trafficfm.logs import setup_logging

setup_logging(snakemake.log[0])
evaluate(
    Path(snakemake.input.cls).parent,
    Path(snakemake.input.manifest).parent,
    snakemake.output.metrics,
    Path(snakemake.output.metrics).parent,
    snakemake.params.split,
)
