"""Rule finetune_retrieval: canonical training pairs -> fine-tuned open_clip model (+ summary).
Given several GPUs (Snakemake resources gpu=N) the rule starts itself under torchrun."""

from trafficfm import runtime  # noqa: I001 (first: it sets the environment torch reads)

runtime.passive_omp_threads()  # a data-loading worker shares the cores

from pathlib import Path  # noqa: E402

from trafficfm.retrieval.train import finetune  # noqa: E402

if not runtime.ran_as_ranks(snakemake):  # several GPUs: torchrun runs this script per GPU
    finetune(
        Path(snakemake.input.manifest).parent,
        snakemake.output.model,
        runtime.settings(snakemake).retrieval,
        snakemake.params.checkpoint_dir,
        snakemake.output.summary,
        snakemake.params.split,
        workers=1 if snakemake.threads >= 2 else 0,
    )
