# The AllInOne stage: canonical datasets -> one jointly trained model (classification, detection,
# segmentation) -> validation metrics -> predictions of a split (results/allinone/).
# Logic: package trafficfm.allinone; contract: docs/data-contract.md, 'Predictions'.


wildcard_constraints:
    aio_split="[A-Za-z0-9-]+",


rule train_allinone:
    input:
        manifest=ALLINONE_MANIFEST,
        tables=ALLINONE_TABLES,
    output:
        model=ALLINONE_MODEL,
        history=f"{ALLINONE_DIR}/training_history.json",
        curve=report(
            f"{ALLINONE_DIR}/training_curve.png",
            category="Training curves",
            labels={"track": "AllInOne", "file": "loss per task, learning rate"},
            caption="../report/allinone_curve.rst",
        ),
    log:
        "logs/train_allinone.log",
    benchmark:
        "benchmarks/train_allinone.tsv"
    conda:
        ENV
    threads: 8
    resources:
        mem_mb=6000,
    params:
        seed=SETTINGS.allinone.seed,
        model=SETTINGS.allinone.model.to_dict(),
        train=SETTINGS.allinone.train.to_dict(),
        precision=SETTINGS.allinone.precision,
        device=SETTINGS.allinone.device,
        # not an output, so Snakemake never deletes it: a rerun resumes from the newest checkpoint
        checkpoint_dir=ALLINONE_CHECKPOINTS,
    script:
        "../scripts/train_allinone.py"


rule evaluate_allinone:
    input:
        cls=f"{ALLINONE_PREDICTIONS}/cls_{AIO.val}.csv",
        det=f"{ALLINONE_PREDICTIONS}/det_{AIO.val}.json",
        seg=f"{ALLINONE_PREDICTIONS}/seg_{AIO.val}",
        manifest=ALLINONE_MANIFEST,
        tables=ALLINONE_TABLES,
    output:
        metrics=report(
            f"{ALLINONE_DIR}/val_metrics.json",
            category="Validation metrics",
            labels={"track": "AllInOne", "file": "top-1, mAP@0.5, mIoU, score"},
            caption="../report/allinone_metrics.rst",
        ),
        per_class=expand(
            f"{ALLINONE_DIR}/val_{{task}}_per_class.csv", task=["cls", "det", "seg"]
        ),
    log:
        "logs/evaluate_allinone.log",
    benchmark:
        "benchmarks/evaluate_allinone.tsv"
    conda:
        ENV
    params:
        split=AIO.val,
    script:
        "../scripts/evaluate_allinone.py"


rule predict_allinone:
    input:
        model=ALLINONE_MODEL,
        manifest=ALLINONE_MANIFEST,
        tables=ALLINONE_TABLES,
    output:
        cls=f"{ALLINONE_PREDICTIONS}/cls_{{aio_split}}.csv",
        det=f"{ALLINONE_PREDICTIONS}/det_{{aio_split}}.json",
        seg=directory(f"{ALLINONE_PREDICTIONS}/seg_{{aio_split}}"),
    log:
        "logs/predict_allinone/{aio_split}.log",
    benchmark:
        "benchmarks/predict_allinone/{aio_split}.tsv"
    conda:
        ENV
    threads: 8
    resources:
        mem_mb=4000,
    params:
        inference=SETTINGS.allinone.inference.to_dict(),
        precision=SETTINGS.allinone.precision,
        device=SETTINGS.allinone.device,
    script:
        "../scripts/predict_allinone.py"
