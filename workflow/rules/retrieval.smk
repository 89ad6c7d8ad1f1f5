# The retrieval stage: canonical pairs -> fine-tuned open_clip model -> validation metrics and the
# re-ranking decision -> test rankings (results/retrieval/). Logic: package trafficfm.retrieval.


rule finetune_retrieval:
    input:
        manifest=RETRIEVAL_MANIFEST,
        pairs=f"{RETRIEVAL_DATA}/{RET.train}.csv",
    output:
        model=RETRIEVAL_MODEL,
        summary=f"{RETRIEVAL_DIR}/train_summary.json",
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
        split=RET.train,
        model=SETTINGS.retrieval.model.to_dict(),
        train=SETTINGS.retrieval.train.to_dict(),
        device=SETTINGS.retrieval.device,
        # not an output, so Snakemake never deletes it: an interrupted fine-tuning resumes from here
        checkpoint_dir=RETRIEVAL_CHECKPOINTS,
    script:
        "../scripts/finetune_retrieval.py"


rule evaluate_retrieval:
    input:
        manifest=RETRIEVAL_MANIFEST,
        pairs=f"{RETRIEVAL_DATA}/{RET.val}.csv",
        model=RETRIEVAL_MODEL,
    output:
        metrics=report(
            f"{RETRIEVAL_DIR}/val_metrics.json",
            category="Validation metrics",
            labels={"track": "retrieval", "file": "val mAP@10 and recall"},
            caption="../report/retrieval_metrics.rst",
        ),
        per_kind=report(
            f"{RETRIEVAL_DIR}/val_metrics_per_kind.json",
            category="Validation metrics",
            labels={"track": "retrieval", "file": "per kind, before/after"},
            caption="../report/retrieval_per_kind.rst",
        ),
        rerank=f"{RETRIEVAL_DIR}/rerank.json",
        rankings=paths.rankings(RET.val),
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
        split=RET.val,
        model=SETTINGS.retrieval.model.to_dict(),
        eval=SETTINGS.retrieval.eval.to_dict(),
        seed=SETTINGS.retrieval.train.seed,
        device=SETTINGS.retrieval.device,
    script:
        "../scripts/evaluate_retrieval.py"


rule predict_retrieval:
    input:
        manifest=RETRIEVAL_MANIFEST,
        images=f"{RETRIEVAL_DATA}/test_images.csv",
        queries=f"{RETRIEVAL_DATA}/test_queries.csv",
        model=RETRIEVAL_MODEL,
        rerank=f"{RETRIEVAL_DIR}/rerank.json",
    output:
        rankings=paths.rankings("test"),
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
        eval=SETTINGS.retrieval.eval.to_dict(),
        device=SETTINGS.retrieval.device,
    script:
        "../scripts/predict_retrieval.py"
