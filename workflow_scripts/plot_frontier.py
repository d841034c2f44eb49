import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

log = start(snakemake)
from t2scaling.plots import plot_frontiers

plot_frontiers(list(snakemake.input.frontiers), snakemake.output[0], c_inf=snakemake.params.c_inf)
log.info("frontier plot from %d frontier tables", len(snakemake.input.frontiers))
