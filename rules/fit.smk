rule collect:
    input:
        evals=task_evals,
        imported=task_imports,
        library=library("collect"),
    output:
        "results/tasks/{task}/observations.parquet",
    log:
        "logs/collect/{task}.log",
    conda:
        "../envs/fit.yaml"
    params:
        sizes=checkpoint_sizes(),
        checkpoints=CHECKPOINTS,
        param_count=config["fits"]["param_count"],
    script:
        "../workflow_scripts/collect.py"


rule fit:
    input:
        observations="results/tasks/{task}/observations.parquet",
        library=library("fit"),
    output:
        "results/tasks/{task}/fits/{law}.json",
    log:
        "logs/fit/{task}/{law}.log",
    benchmark:
        "benchmarks_out/fit/{task}/{law}.tsv"
    conda:
        "../envs/fit.yaml"
    params:
        options=fit_options,
        seed=config["seed"],
    script:
        "../workflow_scripts/fit.py"


rule pretrain_losses:
    input:
        checkpoints=trained_checkpoints,
    output:
        "results/pretrain/losses.csv",
    log:
        "logs/pretrain_losses.log",
    conda:
        "../envs/fit.yaml"
    script:
        "../workflow_scripts/pretrain_losses.py"


rule pretrain_fit:
    input:
        losses="results/pretrain/losses.csv",
        library=library("fit"),
    output:
        "results/pretrain/chinchilla.json",
    log:
        "logs/pretrain_fit.log",
    conda:
        "../envs/fit.yaml"
    params:
        options=lambda wildcards: fit_options(wildcards, law="chinchilla"),
        seed=config["seed"],
    script:
        "../workflow_scripts/pretrain_fit.py"
