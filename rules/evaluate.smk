rule evaluate:
    input:
        checkpoint=checkpoint_dir,
        questions="results/tasks/{task}/questions.parquet",
        library=library("evaluate"),
    output:
        "results/eval/{task}/{cell}.parquet",
    params:
        checkpoint=checkpoint_ref,
        evaluation=config["evaluation"],
        device=config["training"]["device"],
    threads: 1
    resources:
        gpu=min(1, config["training"]["gpus"]),
        runtime=30,
    group:
        "evaluate"
    log:
        "logs/evaluate/{task}/{cell}.log",
    benchmark:
        "benchmarks_out/evaluate/{task}/{cell}.tsv"
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/evaluate.py"
