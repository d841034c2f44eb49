import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import call

# options: law chinchilla and the fit settings it reads (rules/common.smk FIT_OPTIONS)
call(snakemake, "t2scaling.fit:fit_table", table_path=snakemake.input.losses, out_path=snakemake.output[0],
     task="pretrain", seed=snakemake.params.seed, **snakemake.params.options)
