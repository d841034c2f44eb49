import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
from t2scaling.fitresult import load_fit
from t2scaling.frontier import frontier_table, write_frontier

fits = [load_fit(path) for path in snakemake.input.fits]
table = frontier_table(fits, snakemake.params.c_train, snakemake.params.c_inf, macro=True)
write_frontier(table, snakemake.output[0])
log.info("macro frontier of %d tasks: %d rows", len(fits), len(table))
