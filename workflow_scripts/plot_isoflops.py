import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

start(snakemake)
from t2scaling.inputs import grouped
from t2scaling.plots import plot_isoflop_files

# Per task, or the macro average when the rule hands over every task.
plot_isoflop_files(grouped(snakemake.input, "observations"), list(snakemake.input.fits), snakemake.params.levels,
                   snakemake.params.c_inf, snakemake.output[0])
