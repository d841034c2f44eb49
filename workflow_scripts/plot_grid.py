import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

start(snakemake)
from t2scaling.plots import plot_checkpoint_grid

plot_checkpoint_grid(snakemake.params.cells, snakemake.output[0])
