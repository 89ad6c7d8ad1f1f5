"""Rule train_allinone: joint training of the AllInOne model (resumes from its checkpoints).
Given several GPUs (Snakemake resources gpu=N) the rule starts itself under torchrun."""

from trafficfm import runtime  # noqa: I001 (first: it sets the environment torch reads)

import logging
from pathlib import Path

from trafficfm.allinone.train import train

if not runtime.ran_as_ranks(snakemake):  # several GPUs: torchrun runs this script per GPU
    summary = train(
        Path(snakemake.input.manifest).parent,
        snakemake.output.model,
        snakemake.params.checkpoint_dir,
        runtime.settings(snakemake).allinone,
        curve_path=snakemake.output.curve,
        history_path=snakemake.output.history,
    )
    logging.getLogger("trafficfm").info("training summary: %s", summary)
