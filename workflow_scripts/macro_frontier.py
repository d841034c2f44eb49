import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
from t2scaling.fitresult import load_fit
from t2scaling.frontier import frontier, write_csv

fits = [load_fit(path) for path in snakemake.input.fits]
table = frontier(fits, snakemake.params.c_train, snakemake.params.c_inf, macro=True)
write_csv(table, snakemake.output[0])
log.info("macro frontier of %d tasks: %d rows", len(fits), len(table))
