# The submission stage: predictions -> the organisers' JSON, validated, in byte-reproducible zips
# (rules package_*); the validation split's predictions packaged the same way and scored with the
# organisers' metrics (rules package_*_val, score_*). Inputs: docs/data-contract.md, 'Predictions'.
from trafficfm.submission.paths import (
    ALLINONE_PREDICTIONS,
    RETRIEVAL_RESULTS,
    SUBMISSIONS_DIR,
    submission_outputs,
    validation_score_outputs,
)

SUBMISSION = SETTINGS.submission
AIO_TEST = SETTINGS.data.layout.allinone.test_split
SCORE_SPLIT = SUBMISSION.score_split


rule package_allinone:
    input:
        cls=f"{ALLINONE_PREDICTIONS}/cls_{AIO_TEST}.csv",
        det=f"{ALLINONE_PREDICTIONS}/det_{AIO_TEST}.json",
        seg=f"{ALLINONE_PREDICTIONS}/seg_{AIO_TEST}",
        manifest="results/data/allinone/manifest.json",
        tables=[
            f"results/data/allinone/{table}_{AIO_TEST}.{ext}"
            for table, ext in (("cls", "csv"), ("det", "json"), ("seg", "csv"))
        ],
    output:
        zip=f"{SUBMISSIONS_DIR}/allinone.zip",
        report=report(
            f"{SUBMISSIONS_DIR}/allinone.validation.json",
            category="Submissions",
            labels={"track": "AllInOne", "file": "validation report"},
            caption="../report/submission_validation.rst",
        ),
    log:
        "logs/package_allinone.log",
    benchmark:
        "benchmarks/package_allinone.tsv"
    conda:
        ENV
    threads: 2
    params:
        split=AIO_TEST,
        settings=SUBMISSION.to_dict(),
        max_dets=SETTINGS.allinone.inference.det_max_per_image,
    script:
        "../scripts/package_allinone.py"


use rule package_allinone as package_allinone_val with:
    input:
        cls=f"{ALLINONE_PREDICTIONS}/cls_{SCORE_SPLIT}.csv",
        det=f"{ALLINONE_PREDICTIONS}/det_{SCORE_SPLIT}.json",
        seg=f"{ALLINONE_PREDICTIONS}/seg_{SCORE_SPLIT}",
        manifest="results/data/allinone/manifest.json",
        tables=[
            f"results/data/allinone/{table}_{SCORE_SPLIT}.{ext}"
            for table, ext in (("cls", "csv"), ("det", "json"), ("seg", "csv"))
        ],
    output:
        zip=f"{SUBMISSIONS_DIR}/{SCORE_SPLIT}/allinone.zip",
        report=f"{SUBMISSIONS_DIR}/{SCORE_SPLIT}/allinone.validation.json",
    log:
        "logs/package_allinone_val.log",
    benchmark:
        "benchmarks/package_allinone_val.tsv"
    params:
        split=SCORE_SPLIT,
        settings=SUBMISSION.to_dict(),
        max_dets=SETTINGS.allinone.inference.det_max_per_image,


rule package_retrieval:
    input:
        rankings=f"{RETRIEVAL_RESULTS}/test_rankings.csv",
        manifest="results/data/retrieval/manifest.json",
        tables=[
            "results/data/retrieval/test_queries.csv",
            "results/data/retrieval/test_images.csv",
        ],
    output:
        zip=f"{SUBMISSIONS_DIR}/retrieval.zip",
        report=report(
            f"{SUBMISSIONS_DIR}/retrieval.validation.json",
            category="Submissions",
            labels={"track": "retrieval", "file": "validation report"},
            caption="../report/submission_validation.rst",
        ),
    log:
        "logs/package_retrieval.log",
    conda:
        ENV
    params:
        split="test",
        settings=SUBMISSION.to_dict(),
    script:
        "../scripts/package_retrieval.py"


use rule package_retrieval as package_retrieval_val with:
    input:
        rankings=f"{RETRIEVAL_RESULTS}/{SCORE_SPLIT}_rankings.csv",
        manifest="results/data/retrieval/manifest.json",
        tables=[f"results/data/retrieval/{SCORE_SPLIT}.csv"],
    output:
        zip=f"{SUBMISSIONS_DIR}/{SCORE_SPLIT}/retrieval.zip",
        report=f"{SUBMISSIONS_DIR}/{SCORE_SPLIT}/retrieval.validation.json",
    log:
        "logs/package_retrieval_val.log",
    params:
        split=SCORE_SPLIT,
        settings=SUBMISSION.to_dict(),


rule score_allinone:
    input:
        zip=f"{SUBMISSIONS_DIR}/{SCORE_SPLIT}/allinone.zip",
        manifest="results/data/allinone/manifest.json",
    output:
        scores=report(
            f"{SUBMISSIONS_DIR}/{SCORE_SPLIT}/allinone_scores.json",
            category="Validation metrics",
            labels={"track": "AllInOne", "file": "organisers' metrics"},
            caption="../report/submission_scores.rst",
        ),
    log:
        "logs/score_allinone.log",
    conda:
        ENV
    params:
        track="allinone",
        split=SCORE_SPLIT,
        form=SUBMISSION.allinone.form,
        box_tolerance=SUBMISSION.box_tolerance_px,
    script:
        "../scripts/score_submission.py"


rule score_retrieval:
    input:
        zip=f"{SUBMISSIONS_DIR}/{SCORE_SPLIT}/retrieval.zip",
        manifest="results/data/retrieval/manifest.json",
    output:
        scores=report(
            f"{SUBMISSIONS_DIR}/{SCORE_SPLIT}/retrieval_scores.json",
            category="Validation metrics",
            labels={"track": "retrieval", "file": "organisers' metrics"},
            caption="../report/submission_scores.rst",
        ),
    log:
        "logs/score_retrieval.log",
    conda:
        ENV
    params:
        track="retrieval",
        split=SCORE_SPLIT,
        top_k=SUBMISSION.retrieval.top_k,
    script:
        "../scripts/score_submission.py"
