# The AllInOne stage: canonical datasets -> one jointly trained model per experiment
# (classification, detection, segmentation) -> predictions of a split -> validation metrics;
# ensembles fused from their members' soft predictions (results/allinone/experiments/<name>/).
# Logic: packages trafficfm.allinone, trafficfm.ensemble; contract: docs/data-contract.md.


wildcard_constraints:
    aio_split="[A-Za-z0-9-]+",
    aio_trained=names_pattern(AIO_EXP.trained),
    aio_exp=names_pattern(AIO_EXP.settings),
    aio_ens=names_pattern(AIO_EXP.ensembles),
    aio_name=names_pattern(AIO_EXP.names),


rule train_allinone:
    input:
        manifest=ALLINONE_MANIFEST,
        tables=ALLINONE_TABLES,
    output:
        model=f"{AIO_EXP_DIR}/{{aio_trained}}/model.pt",
        history=f"{AIO_EXP_DIR}/{{aio_trained}}/training_history.json",
        curve=f"{AIO_EXP_DIR}/{{aio_trained}}/training_curve.png",
    log:
        "logs/train_allinone/{aio_trained}.log",
    benchmark:
        "benchmarks/train_allinone/{aio_trained}.tsv"
    conda:
        ENV
    threads: 8
    resources:
        mem_mb=6000,
    params:
        # the experiment's settings that change the model (the script reads them through the
        # loader, runtime.settings; as params they make Snakemake retrain when they change)
        settings=lambda w: {
            k: AIO_EXP.settings[w.aio_trained][k]
            for k in ("seed", "model", "train", "precision")
        },
        # Not an output, so Snakemake never deletes it: an interrupted (or --forcerun) training
        # resumes from its newest checkpoint when the settings are unchanged.
        checkpoint_dir=f"{AIO_EXP_DIR}/{{aio_trained}}/checkpoints",
        device=aio_setting("device"),
    script:
        "../scripts/train_allinone.py"


rule predict_allinone:
    input:
        model=lambda w: f"{AIO_EXP.folder(AIO_EXP.trained_by(w.aio_exp))}/model.pt",
        manifest=ALLINONE_MANIFEST,
        tables=ALLINONE_TABLES,
    output:
        cls=f"{AIO_EXP_DIR}/{{aio_exp}}/predictions/cls_{{aio_split}}.csv",
        det=f"{AIO_EXP_DIR}/{{aio_exp}}/predictions/det_{{aio_split}}.json",
        seg=directory(f"{AIO_EXP_DIR}/{{aio_exp}}/predictions/seg_{{aio_split}}"),
        # soft predictions of ensemble members (empty for other experiments)
        soft=directory(f"{AIO_EXP_DIR}/{{aio_exp}}/soft_{{aio_split}}"),
    log:
        "logs/predict_allinone/{aio_exp}/{aio_split}.log",
    benchmark:
        "benchmarks/predict_allinone/{aio_exp}/{aio_split}.tsv"
    conda:
        ENV
    threads: 8
    resources:
        mem_mb=4000,
    params:
        inference=aio_setting("inference"),
        precision=aio_setting("precision"),
        device=aio_setting("device"),
        soft=lambda w: w.aio_exp in AIO_EXP.members,
        soft_top_k=AIO_EXP.fusion["cls_top_k"],
    script:
        "../scripts/predict_allinone.py"


rule fuse_allinone:
    input:
        members=lambda w: [
            path
            for m in AIO_EXP.ensembles[w.aio_ens]
            for path in [
                *aio_predictions(m, w.aio_split).values(),
                f"{AIO_EXP.folder(m)}/soft_{w.aio_split}",
            ]
        ],
    output:
        cls=f"{AIO_EXP_DIR}/{{aio_ens}}/predictions/cls_{{aio_split}}.csv",
        det=f"{AIO_EXP_DIR}/{{aio_ens}}/predictions/det_{{aio_split}}.json",
        seg=directory(f"{AIO_EXP_DIR}/{{aio_ens}}/predictions/seg_{{aio_split}}"),
    log:
        "logs/fuse_allinone/{aio_ens}/{aio_split}.log",
    benchmark:
        "benchmarks/fuse_allinone/{aio_ens}/{aio_split}.tsv"
    conda:
        ENV
    threads: 2
    params:
        members=lambda w: [
            (
                f"{AIO_EXP.folder(m)}/predictions",
                f"{AIO_EXP.folder(m)}/soft_{w.aio_split}",
            )
            for m in AIO_EXP.ensembles[w.aio_ens]
        ],
        fusion=AIO_EXP.fusion,
    script:
        "../scripts/fuse_allinone.py"


rule evaluate_allinone:
    input:
        unpack(lambda w: aio_predictions(w.aio_name, AIO.val)),
        manifest=ALLINONE_MANIFEST,
        tables=ALLINONE_TABLES,
    output:
        metrics=f"{AIO_EXP_DIR}/{{aio_name}}/val_metrics.json",
        per_class=expand(
            f"{AIO_EXP_DIR}/{{{{aio_name}}}}/val_{{task}}_per_class.csv",
            task=["cls", "det", "seg"],
        ),
    log:
        "logs/evaluate_allinone/{aio_name}.log",
    benchmark:
        "benchmarks/evaluate_allinone/{aio_name}.tsv"
    conda:
        ENV
    params:
        split=AIO.val,
    script:
        "../scripts/evaluate_allinone.py"
