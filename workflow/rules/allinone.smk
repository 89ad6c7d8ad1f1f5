# The AllInOne stage: canonical datasets -> one jointly trained model (classification, detection,
# segmentation) -> validation metrics -> predictions of a split (results/allinone/).
# Logic: package trafficfm.allinone; contract: docs/data-contract.md, 'Predictions'.

ALLINONE = SETTINGS.allinone
ALLINONE_DIR = "results/allinone"
# Not an output, so Snakemake never deletes it: an interrupted (or --forcerun) training resumes
# from its newest checkpoint when the settings are unchanged, and starts over when they changed.
ALLINONE_CHECKPOINTS = f"{ALLINONE_DIR}/checkpoints"
# The validation split: predicted by predict_allinone like the test split, then scored.
AIO_VAL = SETTINGS.data.layout.allinone.train_splits[-1]


wildcard_constraints:
    aio_split="[A-Za-z0-9-]+",


rule train_allinone:
    input:
        manifest="results/data/allinone/manifest.json",
        tables=allinone_tables(),
    output:
        model=f"{ALLINONE_DIR}/model.pt",
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
        seed=ALLINONE.seed,
        model=ALLINONE.model.to_dict(),
        train=ALLINONE.train.to_dict(),
        precision=ALLINONE.precision,
        checkpoint_dir=ALLINONE_CHECKPOINTS,
        device=ALLINONE.device,
    script:
        "../scripts/train_allinone.py"


rule evaluate_allinone:
    input:
        cls=f"{ALLINONE_DIR}/predictions/cls_{AIO_VAL}.csv",
        det=f"{ALLINONE_DIR}/predictions/det_{AIO_VAL}.json",
        seg=f"{ALLINONE_DIR}/predictions/seg_{AIO_VAL}",
        manifest="results/data/allinone/manifest.json",
        tables=allinone_tables(),
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
        split=AIO_VAL,
    script:
        "../scripts/evaluate_allinone.py"


rule predict_allinone:
    input:
        model=f"{ALLINONE_DIR}/model.pt",
        manifest="results/data/allinone/manifest.json",
        tables=allinone_tables(),
    output:
        cls=f"{ALLINONE_DIR}/predictions/cls_{{aio_split}}.csv",
        det=f"{ALLINONE_DIR}/predictions/det_{{aio_split}}.json",
        seg=directory(f"{ALLINONE_DIR}/predictions/seg_{{aio_split}}"),
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
        inference=ALLINONE.inference.to_dict(),
        precision=ALLINONE.precision,
        device=ALLINONE.device,
    script:
        "../scripts/predict_allinone.py"
