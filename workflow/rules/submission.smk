# The submission stage: predictions -> the organisers' JSON, validated, in byte-reproducible zips
# (rules package_*); the validation split's predictions packaged the same way and scored with the
# organisers' metrics (rules package_*_val, score_*). Inputs: docs/data-contract.md, 'Predictions'.
# Packaging reads the submission settings and allinone.inference.det_max_per_image.


rule package_allinone:
    input:
        cls=f"{ALLINONE_PREDICTIONS}/cls_{AIO.test}.csv",
        det=f"{ALLINONE_PREDICTIONS}/det_{AIO.test}.json",
        seg=f"{ALLINONE_PREDICTIONS}/seg_{AIO.test}",
        manifest=ALLINONE_MANIFEST,
        tables=allinone_split_tables(AIO.test),
    output:
        zip=paths.submission_zip("allinone"),
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
        split=AIO.test,
        settings=SETTINGS.submission.to_dict(),
        max_dets=SETTINGS.allinone.inference.det_max_per_image,
    script:
        "../scripts/package_allinone.py"


use rule package_allinone as package_allinone_val with:
    input:
        cls=f"{ALLINONE_PREDICTIONS}/cls_{AIO.val}.csv",
        det=f"{ALLINONE_PREDICTIONS}/det_{AIO.val}.json",
        seg=f"{ALLINONE_PREDICTIONS}/seg_{AIO.val}",
        manifest=ALLINONE_MANIFEST,
        tables=allinone_split_tables(AIO.val),
    output:
        zip=paths.submission_zip("allinone", AIO.val),
        report=f"{SUBMISSIONS_DIR}/{AIO.val}/allinone.validation.json",
    log:
        "logs/package_allinone_val.log",
    benchmark:
        "benchmarks/package_allinone_val.tsv"
    params:
        split=AIO.val,
        settings=SETTINGS.submission.to_dict(),
        max_dets=SETTINGS.allinone.inference.det_max_per_image,


rule package_retrieval:
    input:
        rankings=paths.rankings("test"),
        manifest=RETRIEVAL_MANIFEST,
        tables=[
            f"{RETRIEVAL_DATA}/test_queries.csv",
            f"{RETRIEVAL_DATA}/test_images.csv",
        ],
    output:
        zip=paths.submission_zip("retrieval"),
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
        settings=SETTINGS.submission.to_dict(),
    script:
        "../scripts/package_retrieval.py"


use rule package_retrieval as package_retrieval_val with:
    input:
        rankings=paths.rankings(RET.val),
        manifest=RETRIEVAL_MANIFEST,
        tables=[f"{RETRIEVAL_DATA}/{RET.val}.csv"],
    output:
        zip=paths.submission_zip("retrieval", RET.val),
        report=f"{SUBMISSIONS_DIR}/{RET.val}/retrieval.validation.json",
    log:
        "logs/package_retrieval_val.log",
    params:
        split=RET.val,
        settings=SETTINGS.submission.to_dict(),


rule score_allinone:
    input:
        zip=paths.submission_zip("allinone", AIO.val),
        manifest=ALLINONE_MANIFEST,
    output:
        scores=report(
            paths.scores("allinone", AIO.val),
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
        split=AIO.val,
        form=SETTINGS.submission.allinone.form,
        box_tolerance=SETTINGS.submission.box_tolerance_px,
    script:
        "../scripts/score_submission.py"


rule score_retrieval:
    input:
        zip=paths.submission_zip("retrieval", RET.val),
        manifest=RETRIEVAL_MANIFEST,
    output:
        scores=report(
            paths.scores("retrieval", RET.val),
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
        split=RET.val,
        top_k=SETTINGS.submission.retrieval.top_k,
    script:
        "../scripts/score_submission.py"


# The demo release only: its leaderboard zips scored on the generator's hidden test truth, as the
# organisers would score them, beside the validation scores (how far validation is from test).
use rule score_allinone as score_allinone_test with:
    input:
        zip=paths.submission_zip("allinone"),
        manifest=ALLINONE_MANIFEST,
        truth=f"{DEMO_DIR}/truth",
        val=paths.scores("allinone", AIO.val),
    output:
        scores=report(
            paths.scores("allinone", AIO.test),
            category="Test scores (demo truth)",
            labels={"track": "AllInOne", "file": "organisers' metrics"},
            caption="../report/submission_test_scores.rst",
        ),
    log:
        "logs/score_allinone_test.log",
    params:
        track="allinone",
        split=AIO.test,
        form=SETTINGS.submission.allinone.form,
        box_tolerance=SETTINGS.submission.box_tolerance_px,


use rule score_retrieval as score_retrieval_test with:
    input:
        zip=paths.submission_zip("retrieval"),
        manifest=RETRIEVAL_MANIFEST,
        truth=f"{DEMO_DIR}/truth",
        val=paths.scores("retrieval", RET.val),
    output:
        scores=report(
            paths.scores("retrieval", RET.test),
            category="Test scores (demo truth)",
            labels={"track": "retrieval", "file": "organisers' metrics"},
            caption="../report/submission_test_scores.rst",
        ),
    log:
        "logs/score_retrieval_test.log",
    params:
        track="retrieval",
        split=RET.test,
        top_k=SETTINGS.submission.retrieval.top_k,
