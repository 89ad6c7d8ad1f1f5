"""Rules evaluate_retrieval_ensemble and predict_retrieval_ensemble: a retrieval ensemble's
validation metrics and rankings, or its test rankings, from the members' embeddings (per-query
standardised similarities averaged before the top 10)."""

from trafficfm import runtime  # noqa: I001 (first: it sets the environment torch reads)

from pathlib import Path

from trafficfm.ensemble.retrieval import evaluate_ensemble, predict_ensemble

runtime.start(snakemake.log[0], snakemake.threads)
data = Path(snakemake.input.manifest).parent
embeddings = list(snakemake.input.embeddings)
chunk = int(snakemake.params.fusion["chunk"])
if snakemake.params.stage == "evaluate":
    out = snakemake.output
    evaluate_ensemble(data, embeddings, {"metrics": out.metrics, "per_kind": out.per_kind, "rerank": out.rerank,
                                         "rankings": out.rankings}, snakemake.params.eval, chunk,
                      snakemake.params.split)
else:
    predict_ensemble(data, embeddings, snakemake.output.rankings, chunk)
