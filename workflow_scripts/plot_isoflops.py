import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import call
from t2scaling.inputs import grouped

# Per task, or the macro average when the rule hands over every task.
call(snakemake, "t2scaling.plots:plot_isoflop_files", grouped(snakemake.input, "observations"),
     list(snakemake.input.fits), snakemake.params.levels, snakemake.params.c_inf, snakemake.output[0])
