# The retrieval stage: canonical pairs -> a fine-tuned open_clip model per experiment ->
# validation metrics and the re-ranking decision -> test rankings; ensembles ranked from their
# members' embeddings (results/retrieval/experiments/<name>/). Logic: trafficfm.retrieval,
# trafficfm.ensemble.


wildcard_constraints:
    ret_trained=names_pattern(RET_EXP.trained),
    ret_exp=names_pattern(RET_EXP.settings),
    ret_ens=names_pattern(RET_EXP.ensembles),


rule finetune_retrieval:
    input:
        manifest=RETRIEVAL_MANIFEST,
        pairs=f"{RETRIEVAL_DATA}/{RET.train}.csv",
    output:
        model=f"{RET_EXP_DIR}/{{ret_trained}}/model.pt",
        summary=f"{RET_EXP_DIR}/{{ret_trained}}/train_summary.json",
    log:
        "logs/finetune_retrieval/{ret_trained}.log",
    benchmark:
        "benchmarks/finetune_retrieval/{ret_trained}.tsv"
    conda:
        ENV
    threads: 8
    resources:
        mem_mb=8000,
    params:
        split=RET.train,
        model=ret_setting("model", "ret_trained"),
        train=ret_setting("train", "ret_trained"),
        device=ret_setting("device", "ret_trained"),
        # Not an output, so Snakemake never deletes it: an interrupted fine-tuning resumes from here.
        checkpoint_dir=f"{RET_EXP_DIR}/{{ret_trained}}/checkpoints",
    script:
        "../scripts/finetune_retrieval.py"


rule evaluate_retrieval:
    input:
        manifest=RETRIEVAL_MANIFEST,
        pairs=f"{RETRIEVAL_DATA}/{RET.val}.csv",
        model=ret_model,
    output:
        metrics=f"{RET_EXP_DIR}/{{ret_exp}}/val_metrics.json",
        per_kind=f"{RET_EXP_DIR}/{{ret_exp}}/val_metrics_per_kind.json",
        rerank=f"{RET_EXP_DIR}/{{ret_exp}}/rerank.json",
        rankings=f"{RET_EXP_DIR}/{{ret_exp}}/{RET.val}_rankings.csv",
        embeddings=f"{RET_EXP_DIR}/{{ret_exp}}/embeddings_{RET.val}.npz",
    log:
        "logs/evaluate_retrieval/{ret_exp}.log",
    benchmark:
        "benchmarks/evaluate_retrieval/{ret_exp}.tsv"
    conda:
        ENV
    threads: 8
    resources:
        mem_mb=8000,
    params:
        split=RET.val,
        model=ret_setting("model"),
        eval=ret_setting("eval"),
        seed=lambda w: RET_EXP.settings[w.ret_exp]["train"]["seed"],
        device=ret_setting("device"),
    script:
        "../scripts/evaluate_retrieval.py"


rule predict_retrieval:
    input:
        manifest=RETRIEVAL_MANIFEST,
        images=f"{RETRIEVAL_DATA}/test_images.csv",
        queries=f"{RETRIEVAL_DATA}/test_queries.csv",
        model=ret_model,
        rerank=f"{RET_EXP_DIR}/{{ret_exp}}/rerank.json",
    output:
        rankings=f"{RET_EXP_DIR}/{{ret_exp}}/test_rankings.csv",
        embeddings=f"{RET_EXP_DIR}/{{ret_exp}}/embeddings_test.npz",
    log:
        "logs/predict_retrieval/{ret_exp}.log",
    benchmark:
        "benchmarks/predict_retrieval/{ret_exp}.tsv"
    conda:
        ENV
    threads: 8
    resources:
        mem_mb=8000,
    params:
        eval=ret_setting("eval"),
        device=ret_setting("device"),
    script:
        "../scripts/predict_retrieval.py"


rule evaluate_retrieval_ensemble:
    input:
        manifest=RETRIEVAL_MANIFEST,
        pairs=f"{RETRIEVAL_DATA}/{RET.val}.csv",
        embeddings=ret_member_files(f"embeddings_{RET.val}.npz"),
    output:
        metrics=f"{RET_EXP_DIR}/{{ret_ens}}/val_metrics.json",
        per_kind=f"{RET_EXP_DIR}/{{ret_ens}}/val_metrics_per_kind.json",
        rerank=f"{RET_EXP_DIR}/{{ret_ens}}/rerank.json",
        rankings=f"{RET_EXP_DIR}/{{ret_ens}}/{RET.val}_rankings.csv",
    log:
        "logs/evaluate_retrieval_ensemble/{ret_ens}.log",
    benchmark:
        "benchmarks/evaluate_retrieval_ensemble/{ret_ens}.tsv"
    conda:
        ENV
    threads: 2
    params:
        stage="evaluate",
        split=RET.val,
        eval=SETTINGS.retrieval.eval.to_dict(),
        fusion=RET_EXP.fusion,
    script:
        "../scripts/fuse_retrieval.py"


rule predict_retrieval_ensemble:
    input:
        manifest=RETRIEVAL_MANIFEST,
        images=f"{RETRIEVAL_DATA}/test_images.csv",
        queries=f"{RETRIEVAL_DATA}/test_queries.csv",
        embeddings=ret_member_files("embeddings_test.npz"),
    output:
        rankings=f"{RET_EXP_DIR}/{{ret_ens}}/test_rankings.csv",
    log:
        "logs/predict_retrieval_ensemble/{ret_ens}.log",
    benchmark:
        "benchmarks/predict_retrieval_ensemble/{ret_ens}.tsv"
    conda:
        ENV
    threads: 2
    params:
        stage="predict",
        fusion=RET_EXP.fusion,
    script:
        "../scripts/fuse_retrieval.py"
