# Experiments side by side: which experiment or ensemble each track packages (checkpoints
# select_*: results/<track>/selection.json), its files at the track's documented paths (rules
# publish_*: copies), and the comparison of all of them (results/experiments/).
# Logic: trafficfm.experiments, trafficfm.comparison.


checkpoint select_allinone:
    input:
        metrics=[f"{AIO_EXP.folder(n)}/val_metrics.json" for n in AIO_EXP.names],
    output:
        selection=paths.selection("allinone"),
    log:
        "logs/select_allinone.log",
    conda:
        ENV
    params:
        plan=AIO_EXP,
        names=AIO_EXP.names,
    script:
        "../scripts/select_experiment.py"


checkpoint select_retrieval:
    input:
        metrics=[f"{RET_EXP.folder(n)}/val_metrics.json" for n in RET_EXP.names],
    output:
        selection=paths.selection("retrieval"),
    log:
        "logs/select_retrieval.log",
    conda:
        ENV
    params:
        plan=RET_EXP,
        names=RET_EXP.names,
    script:
        "../scripts/select_experiment.py"


rule publish_allinone:
    input:
        unpack(selected_inputs("allinone", aio_published)),
        selection=paths.selection("allinone"),
    output:
        **aio_published_outputs(),
    log:
        "logs/publish_allinone.log",
    conda:
        ENV
    script:
        "../scripts/publish_experiment.py"


rule publish_retrieval:
    input:
        unpack(selected_inputs("retrieval", ret_published)),
        selection=paths.selection("retrieval"),
    output:
        model=RETRIEVAL_MODEL,
        summary=f"{RETRIEVAL_DIR}/train_summary.json",
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
        val_rankings=paths.rankings(RET.val),
        test_rankings=paths.rankings("test"),
    log:
        "logs/publish_retrieval.log",
    conda:
        ENV
    script:
        "../scripts/publish_experiment.py"


rule compare_experiments:
    input:
        files=comparison_inputs(),
        aio_selection=paths.selection("allinone"),
        ret_selection=paths.selection("retrieval"),
    output:
        table=report(
            f"{COMPARISON_DIR}/comparison.csv",
            category="Experiments",
            labels={"file": "comparison table"},
            caption="../report/experiments_table.rst",
        ),
        curves=report(
            f"{COMPARISON_DIR}/training_curves.png",
            category="Experiments",
            labels={"file": "training curves"},
            caption="../report/experiments_curves.rst",
        ),
        per_class=report(
            f"{COMPARISON_DIR}/per_class.png",
            category="Experiments",
            labels={"file": "per class and per kind"},
            caption="../report/experiments_per_class.rst",
        ),
    log:
        "logs/compare_experiments.log",
    conda:
        ENV
    params:
        plans=EXPERIMENTS,
    script:
        "../scripts/compare_experiments.py"
