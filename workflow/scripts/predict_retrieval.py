"""Rule predict_retrieval: top-10 test images for every test query -> results/retrieval/test_rankings.csv."""

from trafficfm import runtime  # noqa: I001 (first: it sets the environment torch reads)

runtime.passive_omp_threads()  # a data-loading worker shares the cores

from pathlib import Path  # noqa: E402

from trafficfm.retrieval.predict import predict  # noqa: E402

runtime.start(snakemake.log[0], snakemake.threads)
predict(
    Path(snakemake.input.manifest).parent,
    snakemake.input.model,
    snakemake.input.rerank,
    snakemake.output.rankings,
    runtime.settings(snakemake).retrieval,
    workers=1 if snakemake.threads >= 2 else 0,
    embeddings_out=snakemake.output.embeddings,
)
