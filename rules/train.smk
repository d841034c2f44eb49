rule train:
    input:
        train="results/data/train.npy",
        val="results/data/val.npy",
        tokenizer="results/data/tokenizer",
        library=library("train"),
    output:
        directory("results/checkpoints/{cell}"),
    log:
        "logs/train/{cell}.log",
    benchmark:
        "benchmarks_out/train/{cell}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: config["training"]["threads"]
    resources:
        gpu=config["training"]["gpus"],
        runtime=config["training"]["runtime_min"],
        mem_mb=config["training"]["mem_mb"],
    params:
        cell=cell_params,
        model=settings(config["model"]),
        training=settings(config["training"]),
        val_tokens=config["evaluation"]["val_tokens"],
        vocab_size=config["corpus"]["vocab_size"],
        seed=config["seed"],
    script:
        "../workflow_scripts/train.py"
