rule evaluate:
    input:
        checkpoint=checkpoint_dir,
        questions="results/tasks/{task}/questions.parquet",
    output:
        "results/eval/{task}/{cell}.parquet",
    log:
        "logs/evaluate/{task}/{cell}.log",
    benchmark:
        "benchmarks_out/evaluate/{task}/{cell}.tsv"
    priority: CRITICAL_PATH_PRIORITY
    conda:
        "../envs/torch.yaml"
    threads: CHECKPOINT_JOB_THREADS
    resources:
        gpu=min(1, config["training"]["gpus"]),
        runtime=30,
        mem_mb=checkpoint_mem_mb(),
    params:
        checkpoint=checkpoint_ref,
        settings=task_settings("evaluate"),
        version=version("evaluate"),
    script:
        "../workflow_scripts/evaluate.py"
