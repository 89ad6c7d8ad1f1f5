# Figures for `snakemake --report report.html`: per-class results and example validation
# predictions of the AllInOne model, the retrieval fine-tuning curve and example rankings.
# Logic: trafficfm.allinone.figures, trafficfm.retrieval.figures.


rule allinone_figures:
    input:
        manifest=ALLINONE_MANIFEST,
        tables=ALLINONE_TABLES,
        per_class=expand(
            f"{ALLINONE_DIR}/val_{{task}}_per_class.csv", task=["cls", "det", "seg"]
        ),
        cls=f"{ALLINONE_PREDICTIONS}/cls_{AIO.val}.csv",
        det=f"{ALLINONE_PREDICTIONS}/det_{AIO.val}.json",
        seg=f"{ALLINONE_PREDICTIONS}/seg_{AIO.val}",
    output:
        per_class=report(
            f"{ALLINONE_DIR}/figures/per_class.png",
            category="Validation metrics",
            subcategory="AllInOne",
            caption="../report/allinone_per_class.rst",
        ),
        examples=report(
            f"{ALLINONE_DIR}/figures/prediction_examples.png",
            category="Example predictions",
            subcategory="AllInOne",
            caption="../report/allinone_examples.rst",
        ),
    log:
        "logs/allinone_figures.log",
    conda:
        ENV
    params:
        split=AIO.val,
        examples=4,
    script:
        "../scripts/allinone_figures.py"


rule retrieval_figures:
    input:
        manifest=RETRIEVAL_MANIFEST,
        pairs=f"{RETRIEVAL_DATA}/{RET.val}.csv",
        summary=f"{RETRIEVAL_DIR}/train_summary.json",
        rankings=paths.rankings(RET.val),
    output:
        curve=report(
            f"{RETRIEVAL_DIR}/figures/training_curve.png",
            category="Training curves",
            subcategory="retrieval",
            caption="../report/retrieval_curve.rst",
        ),
        examples=report(
            f"{RETRIEVAL_DIR}/figures/ranking_examples.png",
            category="Example predictions",
            subcategory="retrieval",
            caption="../report/retrieval_examples.rst",
        ),
    log:
        "logs/retrieval_figures.log",
    conda:
        ENV
    params:
        split=RET.val,
        queries_per_kind=3,
    script:
        "../scripts/retrieval_figures.py"
