import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
from t2scaling.fit import fit_table

options = dict(snakemake.params.options)
law = options.pop("law")
result = fit_table(
    law,
    snakemake.input.observations,
    snakemake.output[0],
    task=snakemake.wildcards.task,
    seed=snakemake.params.seed,
    **options,
)
log.info("%s %s: params %s, R^2 %.4f, %.2f s", snakemake.wildcards.task, law, result.params, result.r2, result.seconds)
