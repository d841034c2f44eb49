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
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        gpu=min(1, config["training"]["gpus"]),
        runtime=30,
    params:
        checkpoint=checkpoint_ref,
        settings=task_settings("evaluate"),
        version=version("evaluate"),
    script:
        "../workflow_scripts/evaluate.py"
