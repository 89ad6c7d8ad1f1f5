"""Rule allinone_figures: per-class bar charts and example validation predictions."""

from pathlib import Path

from trafficfm.allinone.figures import draw_predictions, plot_per_class
from trafficfm.logs import setup_logging

if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    plot_per_class(*snakemake.input.per_class, snakemake.output.per_class)
    draw_predictions(Path(snakemake.input.manifest).parent, Path(snakemake.input.cls).parent,
                     snakemake.params.split, snakemake.output.examples, snakemake.params.examples)
