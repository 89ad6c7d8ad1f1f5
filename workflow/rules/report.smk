# Figures for `snakemake --report report.html`: per-class results and example validation
# predictions of the AllInOne model, the retrieval fine-tuning curve and example rankings.
# Logic: trafficfm.allinone.figures, trafficfm.retrieval.figures.


rule allinone_figures:
    input:
        manifest="results/data/allinone/manifest.json",
        tables=allinone_tables(),
        per_class=expand(
            f"{ALLINONE_DIR}/val_{{task}}_per_class.csv", task=["cls", "det", "seg"]
        ),
        cls=f"{ALLINONE_PREDICTIONS}/cls_{SCORE_SPLIT}.csv",
        det=f"{ALLINONE_PREDICTIONS}/det_{SCORE_SPLIT}.json",
        seg=f"{ALLINONE_PREDICTIONS}/seg_{SCORE_SPLIT}",
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
        split=SCORE_SPLIT,
        examples=4,
    script:
        "../scripts/allinone_figures.py"


rule retrieval_figures:
    input:
        manifest="results/data/retrieval/manifest.json",
        pairs=f"results/data/retrieval/{RETRIEVAL_VAL}.csv",
        summary="results/retrieval/train_summary.json",
        rankings=f"results/retrieval/{RETRIEVAL_VAL}_rankings.csv",
    output:
        curve=report(
            "results/retrieval/figures/training_curve.png",
            category="Training curves",
            subcategory="retrieval",
            caption="../report/retrieval_curve.rst",
        ),
        examples=report(
            "results/retrieval/figures/ranking_examples.png",
            category="Example predictions",
            subcategory="retrieval",
            caption="../report/retrieval_examples.rst",
        ),
    log:
        "logs/retrieval_figures.log",
    conda:
        ENV
    params:
        split=RETRIEVAL_VAL,
        queries_per_kind=3,
    script:
        "../scripts/retrieval_figures.py"
