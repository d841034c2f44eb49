# Post-training (DESIGN.md §2.7): every checkpoint fine-tuned on each task's train split (FT or SFT), then the
# base pipeline's evaluate -> collect -> fit -> frontier rules again under results/posttrain/{mode}/.


use rule task_table as task_train_table with:
    output:
        "results/tasks/{task}/train.parquet",
    log:
        "logs/task_table/{task}.train.log",
    params:
        split="train",


rule posttrain:
    input:
        checkpoint=posttrain_checkpoint,
        train="results/tasks/{task}/train.parquet",
    output:
        directory("results/posttrain/{mode}/checkpoints/{task}/{cell}"),
    log:
        "logs/posttrain/{mode}/{task}/{cell}.log",
    benchmark:
        "benchmarks_out/posttrain/{mode}/{task}/{cell}.tsv"
    group:
        "posttrain"
    conda:
        "../envs/torch.yaml"
    threads: CHECKPOINT_JOB_THREADS
    resources:
        gpu=min(1, config["training"]["gpus"]),
        runtime=60,
        mem_mb=checkpoint_mem_mb(fine_tune=True),
    params:
        settings=settings_for("posttrain"),
        version=version("posttrain"),
    script:
        "../workflow_scripts/posttrain.py"


use rule evaluate as posttrain_evaluate with:
    input:
        checkpoint="results/posttrain/{mode}/checkpoints/{task}/{cell}",
        questions="results/tasks/{task}/questions.parquet",
    output:
        "results/posttrain/{mode}/eval/{task}/{cell}.parquet",
    log:
        "logs/posttrain/{mode}/evaluate/{task}/{cell}.log",
    benchmark:
        "benchmarks_out/posttrain/{mode}/evaluate/{task}/{cell}.tsv"
    priority: 0
    group:
        "posttrain"
    params:
        checkpoint=lambda wildcards, input: input.checkpoint,


use rule collect as posttrain_collect with:
    input:
        unpack(posttrain_evals),
        imported=[],
        library=library("collect"),
    output:
        "results/posttrain/{mode}/tasks/{task}/observations.parquet",
    log:
        "logs/posttrain/{mode}/collect/{task}.log",
    priority: 0


use rule fit as posttrain_fit with:
    input:
        observations="results/posttrain/{mode}/tasks/{task}/observations.parquet",
        library=library("fit"),
    output:
        "results/posttrain/{mode}/tasks/{task}/fits/{law}.json",
    log:
        "logs/posttrain/{mode}/fit/{task}/{law}.log",
    benchmark:
        "benchmarks_out/posttrain/{mode}/fit/{task}/{law}.tsv"
    priority: 0


use rule frontier as posttrain_frontier with:
    input:
        fit="results/posttrain/{mode}/tasks/{task}/fits/{law}.json",
        library=library("frontier"),
    output:
        "results/posttrain/{mode}/tasks/{task}/frontier/{law}.csv",
    log:
        "logs/posttrain/{mode}/frontier/{task}/{law}.log",


rule posttrain_compare:
    input:
        unpack(posttrain_frontiers),
        library=library("posttrain_compare"),
    output:
        csv=report(
            "results/posttrain/comparison.csv",
            caption="../report/posttrain.rst",
            category="post-training",
            labels={"table": "base vs FT vs SFT (CSV)"},
        ),
        markdown="results/posttrain/comparison.md",
        html=report(
            "results/posttrain/comparison.html",
            caption="../report/posttrain.rst",
            category="post-training",
            labels={"table": "base vs FT vs SFT"},
        ),
        plot=report(
            "results/posttrain/plots/frontiers.png",
            caption="../report/posttrain.rst",
            category="post-training",
            labels={"figure": "base vs FT vs SFT frontiers"},
        ),
    log:
        "logs/posttrain/compare.log",
    conda:
        "../envs/fit.yaml"
    params:
        variants=["base", *POSTTRAIN_MODES],
        c_train=settings_for("posttrain_compare")["posttrain"]["compare_c_train"],
        c_inf=settings_for("posttrain_compare")["plots"]["c_inf"],
    script:
        "../workflow_scripts/posttrain_compare.py"
