import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
from t2scaling.fitresult import load_fit
from t2scaling.frontier import frontier, write_csv

fit = load_fit(snakemake.input.fit)
table = frontier([fit], snakemake.params.c_train, snakemake.params.c_inf)
write_csv(table, snakemake.output[0])
log.info("%s %s frontier: %d budgets", fit.task, fit.law, len(table))
