rule collect:
    input:
        unpack(task_evals),
        imported=task_imports,
        library=library("collect"),
    output:
        "results/tasks/{task}/observations.parquet",
    log:
        "logs/collect/{task}.log",
    priority: CRITICAL_PATH_PRIORITY
    conda:
        "../envs/fit.yaml"
    params:
        sizes=checkpoint_sizes("collect"),
        checkpoints=CHECKPOINTS,
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
    priority: CRITICAL_PATH_PRIORITY
    conda:
        "../envs/fit.yaml"
    params:
        options=fit_options,
        seed=settings_for("fit")["seed"],
    script:
        "../workflow_scripts/fit.py"


rule pretrain_losses:
    input:
        losses=val_losses,
        library=library("pretrain_losses"),
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
        library=library("pretrain_fit"),
    output:
        "results/pretrain/chinchilla.json",
    log:
        "logs/pretrain_fit.log",
    conda:
        "../envs/fit.yaml"
    params:
        options=lambda wildcards: fit_options(
            wildcards, law="chinchilla", rule="pretrain_fit"
        ),
        seed=settings_for("pretrain_fit")["seed"],
    script:
        "../workflow_scripts/pretrain_fit.py"
