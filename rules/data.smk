rule world:
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
        settings=settings_for("world"),
        version=version("world"),
    script:
        "../workflow_scripts/world.py"


rule corpus:
    input:
        unpack(corpus_inputs),
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
        settings=settings_for("corpus"),
        version=version("corpus"),
    script:
        "../workflow_scripts/corpus.py"


rule task_table:
    input:
        world=world_task_file,
    output:
        "results/tasks/{task}/questions.parquet",
    log:
        "logs/task_table/{task}.log",
    conda:
        "../envs/data.yaml"
    params:
        settings=task_settings("task_table"),
        split="test",
        version=version("task_table"),
    script:
        "../workflow_scripts/task_table.py"
