import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import call
from t2scaling.inputs import grouped

p, out = snakemake.params, snakemake.output
call(snakemake, "t2scaling.plots:write_frontier_comparison", grouped(snakemake.input, "frontiers"), p.c_train,
     p.c_inf, out.csv, out.markdown, out.plot, html_path=out.html)
