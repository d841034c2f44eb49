import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
from t2scaling.fit import fit_table

# options: the law and the fit settings it reads (rules/common.smk FIT_OPTIONS)
result = fit_table(table_path=snakemake.input.observations, out_path=snakemake.output[0],
                   task=snakemake.wildcards.task, seed=snakemake.params.seed, **snakemake.params.options)
log.info("%s %s: params %s, R^2 %.4f, %.2f s", result.task, result.law, result.params, result.r2, result.seconds)
