import sys

sys.path.insert(0, snakemake.scriptdir)
from _setup import start

start(snakemake)
from t2scaling.inputs import grouped
from t2scaling.plots import write_frontier_comparison

p, out = snakemake.params, snakemake.output
write_frontier_comparison(grouped(snakemake.input, "frontiers"), p.c_train, p.c_inf, out.csv, out.markdown,
                          out.plot, html_path=out.html)
