import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import call

# hints: the cell's WSD siblings and the validation tokens, kept out of the compared params (rules/common.smk)
p, i = snakemake.params, snakemake.input
call(snakemake, "t2scaling.train:train_job", snakemake.output[0], p.cell, p.settings, p.hints,
     train_tokens_path=i.train, val_tokens_path=i.val, tokenizer_dir=i.tokenizer, job_log=snakemake.log[0],
     threads=snakemake.threads, gpus=snakemake.resources.get("gpu", 0))
