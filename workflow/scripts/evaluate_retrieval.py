"""Rule evaluate_retrieval: val mAP@10 / Recall@K before and after fine-tuning, per kind, the
re-ranking decision and the val rankings."""

from trafficfm import runtime  # noqa: I001 (first: it sets the environment torch reads)

runtime.passive_omp_threads()  # a data-loading worker shares the cores

from pathlib import Path  # noqa: E402

from trafficfm.retrieval.evaluate import evaluate  # noqa: E402

runtime.start(snakemake.log[0], snakemake.threads)
out = snakemake.output
evaluate(
    Path(snakemake.input.manifest).parent,
    snakemake.input.model,
    out.metrics,
    out.per_kind,
    out.rerank,
    runtime.settings(snakemake).retrieval,
    snakemake.params.split,
    workers=1 if snakemake.threads >= 2 else 0,
    rankings_out=out.rankings,
    embeddings_out=out.embeddings,
)
