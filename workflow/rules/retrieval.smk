# The retrieval stage: canonical pairs -> fine-tuned open_clip model -> validation metrics and the
# re-ranking decision -> test rankings (results/retrieval/). Logic: package trafficfm.retrieval.

RETRIEVAL = SETTINGS.retrieval
RETRIEVAL_SPLITS = SETTINGS.data.layout.retrieval.train_splits
RETRIEVAL_TRAIN = RETRIEVAL_SPLITS[0]
RETRIEVAL_VAL = (
    RETRIEVAL_SPLITS[1] if len(RETRIEVAL_SPLITS) > 1 else RETRIEVAL_SPLITS[0]
)
# Not an output, so Snakemake never deletes it: an interrupted fine-tuning resumes from here.
RETRIEVAL_CHECKPOINTS = "results/retrieval/checkpoints"


rule finetune_retrieval:
    input:
        manifest="results/data/retrieval/manifest.json",
        pairs=f"results/data/retrieval/{RETRIEVAL_TRAIN}.csv",
    output:
        model="results/retrieval/model.pt",
        summary="results/retrieval/train_summary.json",
    log:
        "logs/finetune_retrieval.log",
    benchmark:
        "benchmarks/finetune_retrieval.tsv"
    conda:
        ENV
    threads: 8
    resources:
        mem_mb=8000,
    params:
        split=RETRIEVAL_TRAIN,
        model=RETRIEVAL.model.to_dict(),
        train=RETRIEVAL.train.to_dict(),
        device=RETRIEVAL.device,
        checkpoint_dir=RETRIEVAL_CHECKPOINTS,
    script:
        "../scripts/finetune_retrieval.py"


rule evaluate_retrieval:
    input:
        manifest="results/data/retrieval/manifest.json",
        pairs=f"results/data/retrieval/{RETRIEVAL_VAL}.csv",
        model="results/retrieval/model.pt",
    output:
        metrics=report(
            "results/retrieval/val_metrics.json",
            category="Validation metrics",
            labels={"track": "retrieval", "file": "val mAP@10 and recall"},
            caption="../report/retrieval_metrics.rst",
        ),
        per_kind=report(
            "results/retrieval/val_metrics_per_kind.json",
            category="Validation metrics",
            labels={"track": "retrieval", "file": "per kind, before/after"},
            caption="../report/retrieval_per_kind.rst",
        ),
        rerank="results/retrieval/rerank.json",
        rankings=f"results/retrieval/{RETRIEVAL_VAL}_rankings.csv",
    log:
        "logs/evaluate_retrieval.log",
    benchmark:
        "benchmarks/evaluate_retrieval.tsv"
    conda:
        ENV
    threads: 8
    resources:
        mem_mb=8000,
    params:
        split=RETRIEVAL_VAL,
        model=RETRIEVAL.model.to_dict(),
        eval=RETRIEVAL.eval.to_dict(),
        seed=RETRIEVAL.train.seed,
        device=RETRIEVAL.device,
    script:
        "../scripts/evaluate_retrieval.py"


rule predict_retrieval:
    input:
        manifest="results/data/retrieval/manifest.json",
        images="results/data/retrieval/test_images.csv",
        queries="results/data/retrieval/test_queries.csv",
        model="results/retrieval/model.pt",
        rerank="results/retrieval/rerank.json",
    output:
        rankings="results/retrieval/test_rankings.csv",
    log:
        "logs/predict_retrieval.log",
    benchmark:
        "benchmarks/predict_retrieval.tsv"
    conda:
        ENV
    threads: 8
    resources:
        mem_mb=8000,
    params:
        eval=RETRIEVAL.eval.to_dict(),
        device=RETRIEVAL.device,
    script:
        "../scripts/predict_retrieval.py"
