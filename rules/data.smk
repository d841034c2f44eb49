rule world:
    input:
        library("world"),
    output:
        world="results/world/world.json",
        train="results/world/corpus/train.jsonl",
        val="results/world/corpus/val.jsonl",
        tasks=expand("results/world/tasks/{family}.jsonl", family=SYNTHETIC_KINDS),
    log:
        "logs/world.log",
    benchmark:
        "benchmarks_out/world.tsv"
    conda:
        "../envs/data.yaml"
    params:
        world=settings(config["world"]),
    script:
        "../workflow_scripts/world.py"


rule corpus:
    input:
        corpus_inputs,
        library("data"),
    output:
        train="results/data/train.npy",
        val="results/data/val.npy",
        summary="results/data/corpus.json",
        tokenizer=directory("results/data/tokenizer"),
    log:
        "logs/corpus.log",
    benchmark:
        "benchmarks_out/corpus.tsv"
    conda:
        "../envs/data.yaml"
    params:
        corpus=settings(config["corpus"]),
    script:
        "../workflow_scripts/corpus.py"


rule task_table:
    input:
        world_task_file,
        library("tasks"),
    output:
        "results/tasks/{task}/questions.parquet",
    log:
        "logs/task_table/{task}.log",
    conda:
        "../envs/data.yaml"
    params:
        task=lambda wildcards: settings(TASKS[wildcards.task]),
        split="test",
    script:
        "../workflow_scripts/task_table.py"
