import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import call

# options: the law and the fit settings it reads (rules/common.smk FIT_OPTIONS)
call(snakemake, "t2scaling.fit:fit_table", table_path=snakemake.input.observations, out_path=snakemake.output[0],
     task=snakemake.wildcards.task, seed=snakemake.params.seed, **snakemake.params.options)
