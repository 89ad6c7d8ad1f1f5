"""Rule retrieval_figures: the fine-tuning curve and example validation rankings."""

from pathlib import Path

from trafficfm.logs import setup_logging
from trafficfm.retrieval.figures import draw_rankings, plot_training

if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    plot_training(snakemake.input.summary, snakemake.output.curve)
    draw_rankings(Path(snakemake.input.manifest).parent, snakemake.input.rankings, snakemake.params.split,
                  snakemake.output.examples, snakemake.params.queries_per_kind)
