import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)
from _setup import call

s, w = snakemake.params.settings, snakemake.wildcards
p = s["posttrain"]
call(snakemake, "t2scaling.posttrain:posttrain", snakemake.input.checkpoint, snakemake.input.train,
     snakemake.output[0], mode=w.mode, epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"],
     max_steps=p["max_steps"], seed=s["seed"], device=s["training"]["device"], threads=snakemake.threads,
     log_path=str(Path(snakemake.log[0]).with_suffix(".jsonl")), task=w.task)
